"""The ``index`` stage (``pipeline/corpus/index.py``): what is indexed and what is left out,
duplicates and stereo files, the cache, actor-disjoint gender-balanced folds, the CLI
command, and (marked ``realdata``) the facts of the shared RAVDESS copy."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED_RAVDESS, clip_name, synth_speech, write_corpus
from pipeline.core import layout
from pipeline.core.errors import CorpusError, PipelineError
from pipeline.core.labels import EMOTIONS
from pipeline.corpus.download import download
from pipeline.corpus.index import (
    Clip,
    IndexConfig,
    Source,
    build_index,
    clips_hash,
    load_index,
    summary,
)
from pipeline.corpus.manifest import read as read_manifest


def _prepare(tmp_path: Path, corpus: Path) -> Path:
    """A data folder whose download stage points at ``corpus`` (used in place)."""
    data_dir = tmp_path / "data"
    download(data_dir=data_dir, source=str(corpus))
    return data_dir


def _write_clip(path: Path, *, emotion: int = 1, seed: int = 0, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, synth_speech(emotion=emotion, seed=seed, channels=channels), 16000)
    return path


def _fold_balance(assignment: dict[str, int], genders: dict[str, str], folds: int) -> None:
    """Assert fold sizes, and the count of each gender per fold, differ by at most one."""
    sizes = Counter(assignment.values())
    counts = [sizes[fold] for fold in range(folds)]
    assert max(counts) - min(counts) <= 1, counts
    for gender in set(genders.values()):
        per_fold = Counter(assignment[a] for a, g in genders.items() if g == gender)
        counts = [per_fold[fold] for fold in range(folds)]
        assert max(counts) - min(counts) <= 1, (gender, counts)


# --- what is indexed, what is left out --------------------------------------------------

@pytest.fixture
def messy_corpus(tmp_path) -> tuple[Path, dict[str, str]]:
    """4 actors x 2 emotions x 2 takes (16 good clips) plus files that must be left out;
    returns the root and {relative path: reason it is skipped}."""
    root = tmp_path / "messy"
    write_corpus(root, actors=(1, 2, 3, 4), emotions=(1, 5), takes=2)
    bad = {
        "Actor_01/03-01-01-01-01-01.wav": "name does not parse",       # six fields
        "Actor_01/recording.wav": "name does not parse",
        "Actor_02/03-01-09-01-01-01-02.wav": "name does not parse",   # emotion 09
        "Actor_02/03-01-03-01-01-01-02.wav": "not readable audio",    # text under a clip name
        "Actor_03/03-02-01-01-01-01-03.wav": "song, not speech",
        "Actor_03/03-02-05-02-02-01-03.wav": "song, not speech",
        "Actor_04/03-01-06-01-01-01-04.wav": "no audio frames",
        "notes.txt": "not audio (.txt)",
        "Actor_04/._03-01-05-01-01-01-04.wav": "hidden",  # a macOS resource fork
        ".cache/03-01-05-01-01-02-04.wav": "hidden",
    }
    for relative, reason in bad.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if reason == "not readable audio" or relative.endswith(".txt"):
            path.write_text("not audio at all\n")
        elif reason == "no audio frames":
            soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
        else:
            _write_clip(path, seed=len(relative))
    return root, bad


def test_bad_files_are_reported_and_left_out(tmp_path, messy_corpus) -> None:
    root, bad = messy_corpus
    result = build_index(data_dir=_prepare(tmp_path, root), config=IndexConfig(folds=2))
    assert len(result.clips) == 16
    reported = {Path(path).relative_to(root).as_posix(): reason
                for reason, paths in result.skipped.items() for path in paths}
    assert set(reported) == set(bad)
    words = {"name does not parse": "layout", "song, not speech": "song, not speech",
             "not readable audio": "not readable audio", "no audio frames": "no audio frames",
             "not audio (.txt)": "not audio", "hidden": "hidden"}
    for path, reason in bad.items():
        assert words[reason] in reported[path], (path, reported[path])
    indexed = {clip.path for clip in result.clips}
    assert not indexed & {str(root / p) for p in bad}
    assert {c.emotion for c in result.clips} == {"neutral", "angry"}
    assert {c.label for c in result.clips} == {"01", "05"}  # RAVDESS's own codes
    text = summary(result)
    assert "left out (song, not speech): 2 file(s)" in text
    assert "left out (not readable audio): 1 file(s)" in text
    assert "ravdess labels: 01 -> neutral, 03 -> happy, 05 -> angry, 06 -> fearful" in text


def test_a_clip_id_found_twice_is_indexed_once(tmp_path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, actors=(1, 2), emotions=(1,), takes=1)
    name = clip_name(emotion=1, actor=1)
    _write_clip(root / "Actor_01" / f"{name}.flac", seed=99)  # same id, another container
    result = build_index(data_dir=_prepare(tmp_path, root), config=IndexConfig(folds=2))
    assert [c.clip_id for c in result.clips].count(name) == 1
    [(reason, paths)] = [(r, p) for r, p in result.skipped.items() if "copy" in r or "clip id" in r]
    assert paths in ([f"Actor_01/{name}.wav"], [str(root / "Actor_01" / f"{name}.wav")])


def test_identical_audio_is_flagged_as_duplicate(tmp_path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, actors=(1, 2), emotions=(1, 3), takes=2)
    original = clip_name(emotion=3, actor=1, statement=2, repetition=1)
    copy = clip_name(emotion=3, actor=1, statement=2, repetition=2)
    shutil.copy(root / "Actor_01" / f"{original}.wav", root / "Actor_01" / f"{copy}.wav")
    result = build_index(data_dir=_prepare(tmp_path, root), config=IndexConfig(folds=2))
    flagged = {c.clip_id: c.duplicate_of for c in result.clips if c.duplicate_of}
    assert flagged == {copy: original}
    by_id = {c.clip_id: c for c in result.clips}
    assert by_id[copy].content_hash == by_id[original].content_hash
    assert len({c.content_hash for c in result.clips}) == len(result.clips) - 1
    manifest = json.loads(layout.index_manifest(tmp_path / "data").read_text())
    assert manifest["duplicates"] == {copy: original}
    assert f"{copy} is identical to {original}" in summary(result)


def test_stereo_files_have_two_channels(tmp_path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, actors=(1, 2), emotions=(1,), takes=1)
    stereo = clip_name(emotion=2, actor=2, statement=2)
    _write_clip(root / "Actor_02" / f"{stereo}.wav", emotion=2, channels=2)
    result = build_index(data_dir=_prepare(tmp_path, root), config=IndexConfig(folds=2))
    channels = {c.clip_id: c.channels for c in result.clips}
    assert channels.pop(stereo) == 2
    assert set(channels.values()) == {1}
    assert "more than one channel (mixed to mono later): 1" in summary(result)


def test_csv_has_every_field_and_round_trips(tmp_path, corpus) -> None:
    data_dir = _prepare(tmp_path, corpus)
    result = build_index(data_dir=data_dir, config=IndexConfig(folds=2))
    csv_path, json_path = layout.index_csv(data_dir), layout.index_manifest(data_dir)
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == [f.name for f in fields(Clip)]
    assert len(rows) == len(result.clips) == 64
    for row in rows:
        empty = {name for name, value in row.items() if value == ""}
        assert empty <= {"duplicate_of"}, row
    assert load_index(data_dir) == result.clips
    first = result.clips[0]
    assert first.path == str(corpus.resolve() / "Actor_01" / f"{first.clip_id}.wav")
    assert first.corpus == "ravdess" and first.speaker == "ravdess:01"
    assert first.sample_rate == 16000 and first.channels == 1
    written = soundfile.info(first.path)
    assert first.num_samples == written.frames > 16000
    assert first.duration == pytest.approx(written.frames / 16000, abs=1e-4)  # stored rounded
    assert first.emotion in EMOTIONS and first.label == f"{EMOTIONS.index(first.emotion) + 1:02d}"
    assert first.gender == "male" and result.clips[-1].gender == "female"
    manifest = json.loads(json_path.read_text())
    assert manifest["clips"] == 64 and manifest["index_hash"] == result.index_hash
    assert manifest["clips_hash"] == clips_hash(result.clips)
    assert manifest["speakers"] == [f"ravdess:{a:02d}" for a in (1, 2, 3, 4)]
    rows = read_manifest(layout.corpus_manifest(data_dir))  # the manifest of what was indexed
    assert [(r.path, r.emotion, r.speaker_key) for r in rows] == \
        [(c.path, c.emotion, c.speaker) for c in sorted(result.clips, key=lambda c: c.path)]


def test_an_index_written_by_an_older_version_says_to_rerun_index(tmp_path, corpus) -> None:
    data_dir = _prepare(tmp_path, corpus)
    build_index(data_dir=data_dir, config=IndexConfig(folds=2))
    csv_path = layout.index_csv(data_dir)
    csv_path.write_text(csv_path.read_text().replace("num_samples", "frames", 1))
    with pytest.raises(CorpusError, match="another version.*rerun 'ser index'"):
        load_index(data_dir)


# --- the cache -------------------------------------------------------------------------

def test_rerun_is_cached_and_force_rebuilds(tmp_path, messy_corpus) -> None:
    data_dir = _prepare(tmp_path, messy_corpus[0])
    config = IndexConfig(folds=2, seed=3)
    first = build_index(data_dir=data_dir, config=config)
    assert not first.cached
    again = build_index(data_dir=data_dir, config=config)
    assert again.cached
    assert again.clips == first.clips
    assert again.index_hash == first.index_hash
    assert again.skipped == first.skipped
    forced = build_index(data_dir=data_dir, config=config, force=True)
    assert not forced.cached
    assert forced.index_hash == first.index_hash  # same corpus, same config: same index


def test_changed_config_or_corpus_rebuilds(tmp_path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, actors=(1, 2, 3), emotions=(1,), takes=1)
    data_dir = _prepare(tmp_path, root)
    first = build_index(data_dir=data_dir, config=IndexConfig(folds=2))
    three = build_index(data_dir=data_dir, config=IndexConfig(folds=3))
    assert not three.cached
    assert {c.fold for c in three.clips} == {0, 1, 2}
    assert three.index_hash != first.index_hash
    # the clips hash, which features are keyed on, ignores folds and the split seed
    reseeded = build_index(data_dir=data_dir, config=IndexConfig(folds=3, seed=5))
    assert clips_hash(three.clips) == clips_hash(first.clips) == clips_hash(reseeded.clips)

    _write_clip(root / "Actor_03" / f"{clip_name(emotion=4, actor=3)}.wav", emotion=4)
    grown = build_index(data_dir=data_dir, config=IndexConfig(folds=3))
    assert not grown.cached
    assert len(grown.clips) == len(three.clips) + 1


def test_interrupted_rebuild_is_not_trusted(tmp_path, corpus, monkeypatch) -> None:
    """A run that wrote index.csv but died before its manifest must not make the next
    run return that CSV under the old manifest's name."""
    import pipeline.corpus.index as index_module

    data_dir = _prepare(tmp_path, corpus)
    two = build_index(data_dir=data_dir, config=IndexConfig(folds=2))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(index_module, "write_json_atomic", crash)
        with pytest.raises(KeyboardInterrupt):
            build_index(data_dir=data_dir, config=IndexConfig(folds=4))

    again = build_index(data_dir=data_dir, config=IndexConfig(folds=2))
    assert {c.fold for c in again.clips} == {0, 1}
    assert again.clips == two.clips
    assert again.index_hash == two.index_hash
    assert load_index(data_dir) == two.clips


# --- corpus shape and errors -------------------------------------------------------------

def test_whatever_actors_are_present_are_indexed(tmp_path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, actors=(2, 5, 9), emotions=(1, 8), takes=1)
    result = build_index(data_dir=_prepare(tmp_path, root), config=IndexConfig(folds=3))
    assert sorted({c.speaker for c in result.clips}) == ["ravdess:02", "ravdess:05", "ravdess:09"]
    assert len(result.clips) == 6


def test_too_many_folds_is_a_corpus_error(tmp_path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, actors=(1, 2, 3), emotions=(1,), takes=1)
    data_dir = _prepare(tmp_path, root)
    with pytest.raises(CorpusError, match="--folds 4 is more than the 3 speakers"):
        build_index(data_dir=data_dir, config=IndexConfig(folds=4))
    assert not any(path.exists() for path in (layout.index_csv(data_dir),
                                               layout.index_manifest(data_dir)))


def test_corpus_without_clips_is_a_corpus_error(tmp_path) -> None:
    root = tmp_path / "corpus"
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_01" / "readme.txt").write_text("nothing here")
    with pytest.raises(CorpusError, match="Actor_01/03-01-05-01-02-01-01"):
        build_index(data_dir=_prepare(tmp_path, root))


def test_index_before_download_names_the_fix(tmp_path) -> None:
    with pytest.raises(PipelineError, match="ser download"):
        build_index(data_dir=tmp_path / "data")
    with pytest.raises(CorpusError, match="ser index"):
        load_index(tmp_path / "data")


# --- several corpora, manifests, and what is refused ---------------------------------

def _folders_corpus(root: Path, speakers=("spk1", "spk2"), emotions=("Anger", "joy")) -> Path:
    for number, (speaker, emotion) in enumerate(itertools.product(speakers, emotions)):
        _write_clip(root / emotion / f"{speaker}_take{number}.wav", seed=500 + number)
    (root / "boredom").mkdir()
    _write_clip(root / "boredom" / "spk1_b.wav", seed=999)
    return root


def test_two_corpora_index_together_with_their_own_speakers_and_labels(tmp_path) -> None:
    ravdess_root = tmp_path / "rav"
    write_corpus(ravdess_root, actors=(1, 2, 3, 4), emotions=(1, 5), takes=1)
    mine = _folders_corpus(tmp_path / "mylabels")
    result = build_index(data_dir=tmp_path / "data", config=IndexConfig(folds=3), sources=[
        Source("ravdess", str(ravdess_root)),
        Source.parse(f"folders={mine}", speaker_pattern=r"(?P<speaker>spk[0-9]+)_")])
    by_corpus = Counter(c.corpus for c in result.clips)
    assert by_corpus == {"ravdess": 8, "mylabels": 4}
    assert {c.speaker for c in result.clips if c.corpus == "mylabels"} == {
        "mylabels:spk1", "mylabels:spk2"}
    assert {(c.label, c.emotion) for c in result.clips if c.corpus == "mylabels"} == {
        ("Anger", "angry"), ("joy", "happy")}
    folds = {c.speaker: c.fold for c in result.clips}
    assert len({f for s, f in folds.items() if s.startswith("mylabels")}) == 2  # spread
    text = summary(result)
    assert "mylabels labels: Anger -> angry, joy -> happy; left out, the model has no such " \
           "emotion: boredom (1 files)" in text


def test_the_same_audio_under_another_speaker_is_left_out(tmp_path) -> None:
    mine = _folders_corpus(tmp_path / "mylabels")
    shutil.copy(mine / "Anger" / "spk1_take0.wav", mine / "Anger" / "spk2_copy.wav")
    result = build_index(data_dir=tmp_path / "data", config=IndexConfig(folds=2), sources=[
        Source.parse(f"folders={mine}", speaker_pattern=r"(spk[0-9]+)_")])
    assert result.skipped["identical audio to a clip of another speaker"] == [
        str(mine.resolve() / "Anger" / "spk2_copy.wav")]
    assert len(result.clips) == 4


def test_a_speaker_pattern_that_misses_a_file_names_both(tmp_path) -> None:
    mine = _folders_corpus(tmp_path / "mylabels")
    _write_clip(mine / "joy" / "nobody.wav", seed=7)
    with pytest.raises(CorpusError, match=r"--speaker-pattern '\(spk\[0-9\]\+\)_' matched no "
                                          r"speaker in .*nobody.wav"):
        build_index(data_dir=tmp_path / "data", sources=[
            Source.parse(f"folders={mine}", speaker_pattern=r"(spk[0-9]+)_")])


def test_a_manifest_is_indexed_and_a_bad_one_writes_nothing(tmp_path) -> None:
    mine = _folders_corpus(tmp_path / "mylabels")
    good = tmp_path / "mine.jsonl"
    good.write_text("".join(json.dumps({"path": str(p), "emotion": p.parent.name,
                                        "speaker": p.name.split("_")[0]}) + "\n"
                            for p in sorted(mine.glob("[Aj]*/*.wav"))))
    data_dir = tmp_path / "data"
    result = build_index(data_dir=data_dir, config=IndexConfig(folds=2),
                         sources=[Source("manifest", str(good))])
    assert {c.corpus for c in result.clips} == {"mine"} and len(result.clips) == 4
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + json.dumps({"path": "gone.wav", "emotion": "sad",
                                                  "speaker": "x"}) + "\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl row 5: .*gone.wav does not exist"):
        build_index(data_dir=data_dir, config=IndexConfig(folds=2),
                    sources=[Source("manifest", str(bad))])
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before  # nothing written


# --- folds (pipeline/corpus/folds.py has the assignment's own tests) ---------------------------

@pytest.fixture(scope="module")
def seven_actors(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seven") / "corpus"
    write_corpus(root, actors=range(1, 8), emotions=(1, 2), takes=1)
    return root


_runs = itertools.count()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(folds=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_index_folds_never_split_an_actor(seven_actors, tmp_path_factory, folds: int,
                                          seed: int) -> None:
    data_dir = tmp_path_factory.mktemp(f"folds{next(_runs)}") / "data"
    download(data_dir=data_dir, source=str(seven_actors))
    result = build_index(data_dir=data_dir, config=IndexConfig(folds=folds, seed=seed))
    actor_folds: dict[str, set[int]] = {}
    for clip in result.clips:
        actor_folds.setdefault(clip.speaker, set()).add(clip.fold)
    assert all(len(folds_of_actor) == 1 for folds_of_actor in actor_folds.values())
    assignment = {actor: folds_of_actor.pop() for actor, folds_of_actor in actor_folds.items()}
    genders = {clip.speaker: clip.gender for clip in result.clips}
    _fold_balance(assignment, genders, folds)
    assert {c.fold for c in load_index(data_dir)} == set(range(folds))


# --- CLI -------------------------------------------------------------------------------



def test_cli_download_then_index(tmp_path, corpus, runner) -> None:
    from cli import cli

    data = ["--data-dir", str(tmp_path / "data")]
    fetched = runner.invoke(cli, [*data, "download", "--source", str(corpus)])
    assert fetched.exit_code == 0, fetched.output
    indexed = runner.invoke(cli, [*data, "index", "--folds", "2"])
    assert indexed.exit_code == 0, indexed.output
    assert "64 clips, 4 speakers" in indexed.output
    assert "fold 0: 32 clips" in indexed.output and "fold 1: 32 clips" in indexed.output
    assert len(load_index(tmp_path / "data")) == 64
    before = {c.clip_id: c.fold for c in load_index(tmp_path / "data")}
    reseeded = runner.invoke(cli, [*data, "index", "--folds", "2", "--seed", "2"])
    assert reseeded.exit_code == 0, reseeded.output
    assert {c.clip_id: c.fold for c in load_index(tmp_path / "data")} != before


@pytest.mark.parametrize("download_first, args, message", [
    (False, ["index"], "run 'ser download"),
    (True, ["index", "--folds", "9"], "--folds 9 is more than the 4 speakers"),
])
def test_cli_index_errors_are_one_clean_line(tmp_path, corpus, runner, download_first: bool,
                                             args: list[str], message: str) -> None:
    from cli import cli

    data_dir = tmp_path / "data"
    if download_first:
        download(data_dir=data_dir, source=str(corpus))
    result = runner.invoke(cli, ["--data-dir", str(data_dir), *args])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0]


def test_cli_index_refuses_one_fold(tmp_path, runner) -> None:
    from cli import cli

    result = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "index", "--folds", "1"])
    assert result.exit_code == 2  # a usage error, caught by click before the stage runs
    assert "--folds" in result.output


# --- the real corpus -------------------------------------------------------------------

REAL_STEREO = {
    "03-01-02-01-01-02-01", "03-01-08-01-02-02-01", "03-01-02-01-02-02-05",
    "03-01-03-01-02-01-20", "03-01-06-01-01-02-20",
}


@pytest.mark.realdata
@pytest.mark.slow
def test_real_corpus_facts(tmp_path) -> None:
    data_dir = tmp_path / "data"
    fetched = download(data_dir=data_dir, source=str(SHARED_RAVDESS))
    assert fetched.root == SHARED_RAVDESS.resolve()
    result = build_index(data_dir=data_dir, config=IndexConfig(folds=5))
    clips = result.clips
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "download.json", "index.csv", "index.json", "manifest.jsonl"]  # no audio copied
    assert len(clips) == 1200
    actors = [f"ravdess:{a:02d}" for a in range(1, 21)]
    assert sorted({c.speaker for c in clips}) == actors
    per_emotion = Counter(c.emotion for c in clips)
    assert per_emotion == {e: 80 if e == "neutral" else 160 for e in EMOTIONS}
    assert Counter(c.speaker for c in clips) == {actor: 60 for actor in actors}
    assert {c.clip_id for c in clips if c.channels == 2} == REAL_STEREO
    assert {c.clip_id: c.duplicate_of for c in clips if c.duplicate_of} == {
        "03-01-03-01-02-02-07": "03-01-03-01-02-01-07"}
    assert {c.sample_rate for c in clips} == {48000}
    # only the folder's own notes (README, checksums) are left out, never a clip
    skipped = [path for paths in result.skipped.values() for path in paths]
    assert not [path for path in skipped if path.startswith("Actor_")]
    actor_folds: dict[str, set[int]] = {}
    for clip in clips:
        actor_folds.setdefault(clip.speaker, set()).add(clip.fold)
    assert all(len(folds) == 1 for folds in actor_folds.values())
    assignment = {actor: next(iter(folds)) for actor, folds in actor_folds.items()}
    assert Counter(assignment.values()) == {fold: 4 for fold in range(5)}
    _fold_balance(assignment, {c.speaker: c.gender for c in clips}, 5)
