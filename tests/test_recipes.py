"""pipeline.corpus.recipes: the named corpora's recipes on tiny trees named the corpus's way,
find_rows' refusals, Found.summary and detect."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_tiny_tree
from pipeline.core import labels
from pipeline.core.errors import CorpusError
from pipeline.corpus import recipes
from pipeline.corpus.manifest import Row


make = write_tiny_tree  # a tiny audio file at each root-relative path


def by_name(found: recipes.Found) -> dict[str, Row]:
    return {Path(row.path).name: row for row in found.rows}


def fields(row: Row) -> tuple[str, str, str, str, str]:
    return row.label, row.emotion, row.speaker, row.gender, row.clip_id


def test_ravdess_speech_rows_song_skipped_clip_id_is_the_stem(tmp_path):
    root = make(tmp_path / "RAVDESS", "Actor_12/03-01-05-01-02-01-12.wav",
                "Actor_01/03-01-08-02-01-02-01.flac", "flat/03-01-01-01-01-01-07.wav",
                "Actor_01/03-02-03-01-01-01-01.wav", "Actor_01/notes.txt",
                "Actor_01/03-01-09-01-01-01-01.wav")
    found = recipes.find_rows("ravdess", root)
    rows = by_name(found)
    assert fields(rows["03-01-05-01-02-01-12.wav"]) == (
        "05", "angry", "12", "female", "03-01-05-01-02-01-12")
    assert fields(rows["03-01-08-02-01-02-01.flac"]) == (
        "08", "surprised", "01", "male", "03-01-08-02-01-02-01")
    assert rows["03-01-01-01-01-01-07.wav"].emotion == "neutral"  # any subfolder
    assert all(row.corpus == "ravdess" and Path(row.path).is_absolute() for row in found.rows)
    assert [row.path for row in found.rows] == sorted(row.path for row in found.rows)
    assert found.skipped["song, not speech"] == ["Actor_01/03-02-03-01-01-01-01.wav"]
    assert found.skipped["not audio (.txt)"] == ["Actor_01/notes.txt"]
    assert list(found.skipped[
        "name does not follow ravdess's layout (Actor_01/03-01-05-01-02-01-01.wav)"]) == [
        "Actor_01/03-01-09-01-01-01-01.wav"]
    assert found.left_out == {}


def test_two_copies_of_a_clip_share_its_id_for_the_caller_to_keep_one(tmp_path):
    # (pipeline.corpus.duplicates.by_clip_id keeps the lossless copy: index and evaluate use it)
    root = make(tmp_path / "r", "Actor_01/03-01-05-01-02-01-01.wav",
                "audio_speech_actors_01-24/Actor_01/03-01-05-01-02-01-01.flac")
    found = recipes.find_rows("ravdess", root)
    assert [row.clip_id for row in found.rows] == ["03-01-05-01-02-01-01"] * 2


def test_emovo_actor_from_the_name_not_the_folder(tmp_path):
    root = make(tmp_path / "EMOVO", "f1/dis-f1-b1.flac", "m3/sor-m3-n5.wav",
                "f2/tri-m2-l4.wav", "f1/xyz-f1-b1.wav", "f1/dis-f4-b1.wav")
    rows = by_name(recipes.find_rows("emovo", root))
    assert fields(rows["dis-f1-b1.flac"]) == ("dis", "disgust", "f1", "female", "emovo/dis-f1-b1")
    assert fields(rows["sor-m3-n5.wav"]) == ("sor", "surprised", "m3", "male", "emovo/sor-m3-n5")
    assert fields(rows["tri-m2-l4.wav"])[:4] == ("tri", "sad", "m2", "male")
    assert set(rows) == {"dis-f1-b1.flac", "sor-m3-n5.wav", "tri-m2-l4.wav"}
    assert {recipes.RECIPES["emovo"].labels[c] for c in ("gio", "pau", "rab", "neu")} == {
        "happy", "fearful", "angry", "neutral"}


def test_urdu_speaker_and_gender_from_the_name(tmp_path):
    root = make(tmp_path / "URDU", "Angry/SM1_F10_A010.wav", "Happy/SF12_F3_H007.flac",
                "Sad/SM1_F2_S001.wav", "Neutral/SX1_F2_N001.wav")
    found = recipes.find_rows("urdu", root)
    rows = by_name(found)
    assert fields(rows["SM1_F10_A010.wav"]) == ("A", "angry", "M1", "male", "urdu/SM1_F10_A010")
    assert fields(rows["SF12_F3_H007.flac"])[:4] == ("H", "happy", "F12", "female")
    assert rows["SM1_F2_S001.wav"].emotion == "sad"
    assert len(found.rows) == 3 and sum(map(len, found.skipped.values())) == 1


def test_cremad_without_demographics_has_no_gender(tmp_path):
    root = make(tmp_path / "CREMA-D", "AudioWAV/1001_DFA_ANG_XX.wav",
                "AudioWAV/1002_IEO_FEA_HI.wav", "AudioWAV/1003_IEO_CON_HI.wav")
    rows = by_name(recipes.find_rows("cremad", root))
    assert fields(rows["1001_DFA_ANG_XX.wav"]) == (
        "ANG", "angry", "1001", "", "cremad/1001_DFA_ANG_XX")
    assert fields(rows["1002_IEO_FEA_HI.wav"])[:4] == ("FEA", "fearful", "1002", "")
    assert len(rows) == 2


@pytest.mark.parametrize("where", ["root", "parent"])
def test_cremad_gender_from_video_demographics(tmp_path, where):
    top = make(tmp_path / "CREMA-D", "AudioWAV/1001_DFA_ANG_XX.wav",
               "AudioWAV/1002_IEO_HAP_LO.wav", "AudioWAV/1003_IEO_SAD_MD.wav")
    (top / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n")
    root = top if where == "root" else top / "AudioWAV"
    rows = by_name(recipes.find_rows("cremad", root))
    assert rows["1001_DFA_ANG_XX.wav"].gender == "male"
    assert rows["1002_IEO_HAP_LO.wav"].gender == "female"
    assert rows["1003_IEO_SAD_MD.wav"].gender == ""  # not listed


def test_cremad_demographics_without_its_columns_is_refused(tmp_path):
    root = make(tmp_path / "CREMA-D", "AudioWAV/1001_DFA_ANG_XX.wav")
    (root / "VideoDemographics.csv").write_text("Actor,Gender\n1001,Male\n")
    with pytest.raises(CorpusError, match="VideoDemographics.csv has no ActorID and Sex"):
        recipes.find_rows("cremad", root)


def test_tess_ps_and_any_case(tmp_path):
    root = make(tmp_path / "TESS", "OAF_angry/OAF_back_angry.wav", "YAF_dog_ps.wav",
                "YAF_fear/YAF_germ_Fear.wav", "OAF_Pleasant_surprise/OAF_bar_PS.wav",
                "oaf_neutral/oaf_chair_NEUTRAL.wav", "OAF_calm/OAF_back_calm.wav")
    found = recipes.find_rows("tess", root)
    rows = by_name(found)
    assert fields(rows["OAF_back_angry.wav"]) == (
        "angry", "angry", "OAF", "female", "tess/OAF_back_angry")
    assert fields(rows["YAF_dog_ps.wav"]) == ("ps", "surprised", "YAF", "female", "tess/YAF_dog_ps")
    assert fields(rows["YAF_germ_Fear.wav"])[:3] == ("fear", "fearful", "YAF")
    assert rows["OAF_bar_PS.wav"].emotion == "surprised"
    assert fields(rows["oaf_chair_NEUTRAL.wav"])[1:3] == ("neutral", "OAF")
    assert "OAF_back_calm.wav" not in rows and len(found.rows) == 5


def test_emodb_boredom_left_out_and_said(tmp_path):
    root = make(tmp_path / "emodb", "wav/03a01Fa.wav", "wav/08b10Ab.wav", "wav/16a05Lc.wav",
                "wav/11a04Ld.wav", "wav/03a01F.wav", "wav/04a01Fa.wav")
    found = recipes.find_rows("emodb", root)
    rows = by_name(found)
    assert fields(rows["03a01Fa.wav"]) == ("F", "happy", "03", "male", "emodb/03a01Fa")
    assert fields(rows["08b10Ab.wav"]) == ("A", "fearful", "08", "female", "emodb/08b10Ab")
    assert found.left_out == {"L": 2}
    skipped = "name does not follow emodb's layout (wav/03a01Fa.wav)"
    assert found.skipped == {skipped: ["wav/03a01F.wav", "wav/04a01Fa.wav"]}
    assert found.summary() == (
        f"emodb: 2 clips from 2 speakers; left out: L boredom (2 files) — the model has no "
        f"such emotion; skipped 2 files ({skipped}: 2)")


@pytest.mark.parametrize("layout", ["folders", "flat"])
def test_savee_both_layouts(tmp_path, layout):
    names = ["DC/a01.wav", "JK/sa15.wav", "KL/su03.flac", "JE/n30.wav"]
    if layout == "flat":
        names = [f"ALL/{name.replace('/', '_')}" for name in names]
    found = recipes.find_rows("savee", make(tmp_path / "SAVEE", *[
        f"AudioData/{name}" if layout == "folders" else name for name in names]))
    rows = {row.clip_id: row for row in found.rows}
    assert fields(rows["savee/DC_a01"]) == ("a", "angry", "DC", "male", "savee/DC_a01")
    assert fields(rows["savee/JK_sa15"])[:3] == ("sa", "sad", "JK")
    assert fields(rows["savee/KL_su03"])[:3] == ("su", "surprised", "KL")
    assert rows["savee/JE_n30"].emotion == "neutral"


def test_savee_file_outside_a_speaker_folder_is_skipped(tmp_path):
    found = recipes.find_rows("savee", make(tmp_path / "s", "DC/a01.wav", "XX/a01.wav"))
    assert [row.speaker for row in found.rows] == ["DC"]
    assert sum(map(len, found.skipped.values())) == 1


def test_find_rows_refuses_an_unknown_recipe_option_or_root(tmp_path):
    with pytest.raises(CorpusError, match="no recipe 'iemocap': choose one of ravdess, emovo"):
        recipes.find_rows("iemocap", tmp_path)
    with pytest.raises(CorpusError, match="has no option speaker_pattern"):
        recipes.find_rows("emodb", tmp_path, speaker_pattern="x")
    with pytest.raises(CorpusError, match="does not exist: pass the folder"):
        recipes.find_rows("emodb", tmp_path / "missing")
    make(tmp_path, "a.wav")
    with pytest.raises(CorpusError, match="is a file, not a folder"):
        recipes.find_rows("tess", tmp_path / "a.wav")


def test_a_root_with_no_labelled_file_names_the_root_and_layout(tmp_path):
    root = make(tmp_path / "mine", "clips/one.wav")
    with pytest.raises(CorpusError, match=r"no audio file under .*mine follows the "
                                          r"layout wav/03a01Fa.wav"):
        recipes.find_rows("emodb", root)


def test_a_root_of_boredom_only_is_refused_naming_it(tmp_path):
    with pytest.raises(CorpusError, match="L boredom"):
        recipes.find_rows("emodb", make(tmp_path / "e", "03a01La.wav"))


LAYOUTS = {
    "ravdess": ["Actor_01/03-01-05-01-02-01-01.wav", "Actor_02/03-01-03-01-02-01-02.wav"],
    "emovo": ["f1/dis-f1-b1.wav", "m1/gio-m1-n2.wav"],
    "urdu": ["Angry/SM1_F10_A010.wav", "Sad/SF2_F1_S003.wav"],
    "cremad": ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1091_TIE_SAD_LO.wav"],
    "tess": ["OAF_angry/OAF_back_angry.wav", "YAF_ps/YAF_dog_ps.wav"],
    "emodb": ["wav/03a01Fa.wav", "wav/16b10Lb.wav"],
    "savee": ["AudioData/DC/a01.wav", "AudioData/KL/su02.wav"],
    "folders": ["Anger/take1.wav", "joy/x/take2.wav"],
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_detect_picks_the_recipe_of_each_layout(tmp_path, name):
    # a stray file named no recipe's way does not matter
    root = make(tmp_path / "corpus", *LAYOUTS[name], "stray.wav")
    assert recipes.detect(root).name == name


def test_detect_refuses_an_unlabelled_folder_naming_every_layout(tmp_path):
    root = make(tmp_path / "unlabelled", "recordings/one.wav", "two.flac")
    with pytest.raises(CorpusError) as caught:
        recipes.detect(root)
    for recipe in recipes.RECIPES.values():
        if recipe.root_kind == "folder":
            assert recipe.layout in str(caught.value)
    with pytest.raises(CorpusError, match="does not exist"):
        recipes.detect(tmp_path / "missing")


def test_every_recipe_maps_onto_the_model_emotions():
    for recipe in recipes.RECIPES.values():
        assert recipe.language and recipe.reference and recipe.layout
        assert set(recipe.labels.values()) - {None} <= set(labels.EMOTIONS)


@pytest.mark.realdata
@pytest.mark.parametrize("name, per_speaker", [("ravdess", 60), ("emovo", 98), ("urdu", None)])
def test_real_copies_in_shared(name, per_speaker):
    from collections import Counter

    from conftest import SHARED_RAVDESS, need

    root = SHARED_RAVDESS.parent / name
    need(root.is_dir(), f"{name} copy not found at {root}")
    assert recipes.detect(root).name == name
    found = recipes.find_rows(name, root)
    assert found.left_out == {} and all(r.gender in ("female", "male") for r in found.rows)
    assert len({row.clip_id for row in found.rows}) == len(found.rows)
    speakers = Counter(row.speaker for row in found.rows)
    if per_speaker:
        assert set(speakers.values()) == {per_speaker}
    else:  # URDU: 400 utterances of 29 speaker codes (its README)
        assert (len(found.rows), len(speakers)) == (400, 29)
