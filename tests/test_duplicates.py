"""Tests of pipeline/corpus/duplicates.py, and of evaluate counting one clip once however many
copies of it a folder holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.corpus.duplicates import by_audio, by_clip_id
from pipeline.corpus.manifest import Row
from pipeline.inference.results import FileResult
from pipeline.signal.audio import audio_sha256


def _row(path: str, clip_id: str) -> Row:
    return Row(path=path, label="angry", emotion="angry", speaker="1", corpus="c",
               clip_id=clip_id)


def test_same_clip_in_several_formats_and_folders_keeps_the_lossless_copy():
    rows = [_row("a/x.mp3", "x"), _row("a/x.WAV", "x"), _row("a/x.flac", "x"),
            _row("a/y.ogg", "y"), _row("backup/x.mp3", "x"), _row("b/z.mp3", "z"),
            _row("sad/x.wav", "sad/x")]  # the same name, another clip (a folders corpus)
    kept, dropped = by_clip_id(rows)
    # lossless first, then path order ("W" sorts before "f"); the input order is kept
    assert [r.path for r in kept] == ["a/x.WAV", "a/y.ogg", "b/z.mp3", "sad/x.wav"]
    assert dropped == {"a/x.mp3": "a/x.WAV", "a/x.flac": "a/x.WAV", "backup/x.mp3": "a/x.WAV"}


def test_identical_audio_is_kept_once_and_unscored_files_are_all_kept():
    one, other = np.arange(10, dtype=np.float32), np.arange(10, dtype=np.float32) + 1
    results = [FileResult("p1", audio_sha256=audio_sha256(one, 16000)),
               FileResult("p2", audio_sha256=audio_sha256(other, 16000)),
               FileResult("p3", audio_sha256=audio_sha256(one.copy(), 16000)),
               FileResult("p4", audio_sha256=audio_sha256(one, 22050)),  # another rate: not equal
               FileResult("bad1", error="x"), FileResult("bad2", error="x")]
    kept, dropped = by_audio(results)
    assert [r.path for r in kept] == ["p1", "p2", "p4", "bad1", "bad2"]
    assert dropped == {"p3": "p1"}
