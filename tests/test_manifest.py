"""Tests of pipeline/corpus/manifest.py: JSONL and CSV manifests read and written, each bad
manifest refused in one line naming the row and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.errors import CorpusError
from pipeline.corpus import manifest
from pipeline.corpus.manifest import Row


@pytest.fixture
def clips(tmp_path) -> Path:
    for name in ("a.wav", "b.wav", "sub/c.flac"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"RIFF")
    return tmp_path


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_jsonl_rows_get_absolute_paths_and_defaults(clips) -> None:
    rows = manifest.read(_jsonl(clips / "mine.jsonl", [
        {"path": "a.wav", "emotion": "angry", "speaker": "s1"},
        {"path": "sub/c.flac", "label": "joy", "emotion": "happy", "speaker": "s2",
         "corpus": "other", "gender": "female", "clip_id": "c-1"}]))
    assert rows[0] == Row(path=str(clips / "a.wav"), label="angry", emotion="angry",
                          speaker="s1", corpus="mine", gender="", clip_id="mine/a")
    assert rows[1].label == "joy" and rows[1].corpus == "other" and rows[1].clip_id == "c-1"
    manifest.check(rows, source="mine.jsonl", need_speakers=True)


def test_written_manifests_read_back_the_same_in_both_formats(clips) -> None:
    rows = [Row(str(clips / "a.wav"), "W", "angry", "03", "emodb", "male", "emodb/a"),
            Row(str(clips / "b.wav"), "T, sad", "sad", "", "x", "", "x/b")]
    for name in ("out.jsonl", "out.csv"):
        manifest.write(rows, clips / name)
        assert manifest.read(clips / name) == rows


@pytest.mark.parametrize("text, message", [
    ('{"path": "a.wav"}\n', r"line 1: no emotion"),
    ('{"path": "a.wav", "emotion": "boredom"}\n', r"line 1: emotion 'boredom' is not one of the model's"),
    ('{"path": "a.wav", "emotion": "xyz"}\n', r"line 1: emotion 'xyz' is not one of the model's"),
    ('{"path": "C:\\\\clips\\\\a.wav", "emotion": "sad"}\n', r"line 1: .* is a Windows drive path"),
    ('{"path": "a.wav", "emotion": "sad", "gender": "w"}\n', r"line 1: gender 'w'"),
    ('{"path": "a.wav", "emotion": "sad"}\nnot json\n', r"line 2 is not JSON"),
    ('["a.wav", "sad"]\n', r"line 1 is not a JSON object"),
    ("", r"has no rows"),
])
def test_bad_jsonl_is_one_line_naming_the_row_and_the_fix(clips, text, message) -> None:
    path = clips / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(CorpusError, match=message) as caught:
        manifest.read(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_csv_without_the_required_columns_names_them(clips) -> None:
    path = clips / "bad.csv"
    path.write_text("file,label\na.wav,angry\n")
    with pytest.raises(CorpusError, match=r"no column path, emotion in its header"):
        manifest.read(path)
    path.write_text("path,emotion\na.wav,angry\nb.wav,\n")
    with pytest.raises(CorpusError, match=r"bad.csv line 3: no emotion"):
        manifest.read(path)


@pytest.mark.parametrize("rows, need_speakers, message", [
    ([("missing.wav", "s1", "m/1")], False, r"row 1: .*missing.wav does not exist"),
    ([("a.wav", "s1", "m/1"), ("a.wav", "s2", "m/2")], False, r"path .*a.wav is listed 2 times"),
    ([("a.wav", "s1", "m/1"), ("b.wav", "s2", "m/1")], False, r"clip_id m/1 is listed 2 times"),
    ([("a.wav", "s1", "m/1"), ("b.wav", "", "m/2")], True, r"row 2 .*no speaker, and folds"),
])
def test_each_bad_manifest_case_is_refused(clips, rows, need_speakers, message) -> None:
    built = [Row(str(clips / p), "angry", "angry", s, "m", "", c) for p, s, c in rows]
    with pytest.raises(CorpusError, match=message) as caught:
        manifest.check(built, source="m.jsonl", need_speakers=need_speakers)
    assert "\n" not in str(caught.value)


def test_a_word_for_an_emotion_is_mapped_and_kept_as_the_label(clips) -> None:
    path = clips / "words.csv"
    path.write_text("path,emotion,speaker\na.wav,Anger,s1\n")
    [row] = manifest.read(path)
    assert (row.emotion, row.label) == ("angry", "Anger")


def test_a_file_name_that_is_not_utf8_is_refused_naming_the_fix(clips) -> None:
    odd = Row(str(clips / "caf\udce9.wav"), "angry", "angry", "s1", "m", "", "m/x")
    with pytest.raises(CorpusError, match=r"row 1: the file name .* is not valid UTF-8: rename"):
        manifest.check([odd], source="m.jsonl", need_speakers=False)


def test_rows_without_speakers_pass_where_no_folds_are_made(clips) -> None:
    rows = [Row(str(clips / "a.wav"), "angry", "angry", "", "m", "", "m/a")]
    manifest.check(rows, source="m.jsonl", need_speakers=False)
