"""pipeline.corpus.recipes.custom: a user's emotion folders and CSV file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_tiny_tree
from pipeline.core.errors import CorpusError
from pipeline.corpus import recipes


make = write_tiny_tree  # a tiny audio file at each root-relative path


def test_folders_synonyms_nesting_and_boredom_left_out(tmp_path):
    root = make(tmp_path / "mylabels", "Anger/a1.wav", "Joy/deep/er/j1.flac",
                "neutral/n1.wav", "pleasant surprise/p1.wav", "Boredom/b1.wav",
                "Boredom/b2.wav", "loose.wav")
    found = recipes.find_rows("folders", root)
    rows = {row.clip_id: row for row in found.rows}
    assert set(rows) == {"mylabels/Anger/a1", "mylabels/Joy/deep/er/j1", "mylabels/neutral/n1",
                         "mylabels/pleasant surprise/p1"}
    anger = rows["mylabels/Anger/a1"]
    assert (anger.label, anger.emotion, anger.speaker, anger.gender, anger.corpus) == (
        "Anger", "angry", "", "", "mylabels")
    assert anger.path == str(root.resolve() / "Anger/a1.wav")
    assert rows["mylabels/Joy/deep/er/j1"].emotion == "happy"
    assert rows["mylabels/pleasant surprise/p1"].emotion == "surprised"
    assert found.left_out == {"Boredom": 2}
    assert list(found.skipped.values()) == [["loose.wav"]]
    assert "not in an emotion folder" in next(iter(found.skipped))
    assert "left out: Boredom (2 files)" in found.summary()


def test_folders_refuses_a_folder_that_names_no_emotion(tmp_path):
    root = make(tmp_path / "mine", "angry/a.wav", "Misc/m.wav", "takes/t.wav")
    with pytest.raises(CorpusError, match=r"folders Misc, takes under .*mine name no emotion: "
                                          r"rename each to one of neutral, calm, .* or move it "
                                          r"out of"):
        recipes.find_rows("folders", root)


@pytest.mark.parametrize("pattern, expected", [
    (r"/(?P<speaker>spk[0-9]+)_", ["spk1", "spk2", ""]),
    (r"/(spk[0-9]+)_", ["spk1", "spk2", ""]),
    (r"spk[0-9]+", ["spk1", "spk2", ""]),
    (None, ["", "", ""]),
])
def test_folders_speaker_pattern(tmp_path, pattern, expected):
    root = make(tmp_path / "c", "angry/spk1_a.wav", "sad/deeper/spk2_b.wav", "sad/other.wav")
    found = recipes.find_rows("folders", root, speaker_pattern=pattern)
    by_file = {Path(row.path).name: row.speaker for row in found.rows}
    assert [by_file[name] for name in ("spk1_a.wav", "spk2_b.wav", "other.wav")] == expected


def test_folders_refuses_an_invalid_speaker_pattern(tmp_path):
    root = make(tmp_path / "c", "angry/a.wav")
    with pytest.raises(CorpusError, match=r"speaker pattern '\(spk' is not a valid regular"):
        recipes.find_rows("folders", root, speaker_pattern="(spk")


def test_folders_with_only_loose_files_is_refused(tmp_path):
    with pytest.raises(CorpusError, match="no audio file under .* follows the layout angry/"):
        recipes.find_rows("folders", make(tmp_path / "c", "a.wav"))


def _csv(tmp_path: Path, text: str, *audio: str) -> Path:
    make(tmp_path, *audio)
    path = tmp_path / "mine.csv"
    path.write_text(text)
    return path


def test_csv_good(tmp_path):
    path = _csv(tmp_path, "path,emotion,speaker,gender\nclips/a.wav,Anger,s1,female\n"
                          "clips/b.flac,joy,s2,Male\n./c.wav,boredom,,\n\n"
                          f"{tmp_path / 'd.wav'},neutral,s1,\n",
                "clips/a.wav", "clips/b.flac", "c.wav", "d.wav")
    found = recipes.find_rows("csv", path)
    rows = {row.clip_id: row for row in found.rows}
    assert set(rows) == {"mine/clips/a", "mine/clips/b", "mine/d"}
    a = rows["mine/clips/a"]
    assert (a.label, a.emotion, a.speaker, a.gender, a.corpus) == (
        "Anger", "angry", "s1", "female", "mine")
    assert a.path == str(tmp_path.resolve() / "clips/a.wav")
    assert (rows["mine/clips/b"].emotion, rows["mine/clips/b"].gender) == ("happy", "male")
    assert found.left_out == {"boredom": 1} and found.skipped == {}
    assert found.summary().startswith("mine: 3 clips from 2 speakers; left out: boredom (1 file)")


@pytest.mark.parametrize("text, message", [
    ("file,emotion\na.wav,angry\n", r"mine.csv line 1: no column path in the header \(it has "
                                    r"file, emotion\): the first line must name the columns"),
    ("path,emotion\na.wav,angry\nb.wav,grumpy\n",
     r"mine.csv row 2 \(line 3\): emotion 'grumpy' is not one the tool knows: write one of "
     r"neutral, calm"),
    ("path,emotion\na.wav,angry\nmissing.wav,sad\n",
     r"mine.csv row 2 \(line 3\): missing.wav is not a file .*: fix the path"),
    ("path,emotion\na.wav,angry\n./a.wav,sad\n",
     r"mine.csv row 2 \(line 3\): ./a.wav is listed again \(first at row 1\): keep one row"),
    ("path,emotion,gender\na.wav,angry,F\n",
     r"mine.csv row 1 \(line 2\): gender 'F': write female, male or leave it empty"),
    ("path,emotion\n,angry\n", r"mine.csv row 1 \(line 2\): no path: every row needs"),
    ("path,emotion\nnotes.txt,angry\n", r"notes.txt is not an audio file .*list audio files"),
    ("path,emotion\n", r"mine.csv has no data rows"),
    ("path,emotion\na.wav,boredom\n", r"every labelled file .* is of an emotion the model "
                                      r"lacks"),
])
def test_csv_refusals_name_the_row_and_the_fix(tmp_path, text, message):
    path = _csv(tmp_path, text, "a.wav", "notes.txt")
    with pytest.raises(CorpusError, match=message):
        recipes.find_rows("csv", path)


def test_csv_root_must_be_a_file(tmp_path):
    with pytest.raises(CorpusError, match="is not a file: pass the file itself"):
        recipes.find_rows("csv", tmp_path)


def test_folders_loses_a_tie_to_a_named_recipe(tmp_path):
    # URDU's emotion folders are also a folders corpus: the named recipe wins the tie
    root = make(tmp_path / "urdu", "Angry/SM1_F10_A010.wav", "Sad/SF2_F1_S003.wav")
    assert recipes.detect(root).name == "urdu"
    assert len(recipes.find_rows("folders", root).rows) == 2


def test_detect_never_reads_a_csv(tmp_path):
    root = make(tmp_path / "c", "one.wav")
    (root / "labels.csv").write_text("path,emotion\none.wav,angry\n")
    with pytest.raises(CorpusError, match="list them in a CSV with columns path,emotion"):
        recipes.detect(root)
