"""Tests of pipeline/duplicates.py, and of evaluate counting one clip once however many
copies of it a folder holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.duplicates import audio_sha256, by_audio, by_name
from pipeline.results import FileResult


def test_same_name_in_several_formats_and_folders_keeps_the_lossless_copy():
    files = [Path("a/x.mp3"), Path("a/x.WAV"), Path("a/x.flac"), Path("a/y.ogg"),
             Path("backup/x.mp3"), Path("b/z.mp3")]
    kept, dropped = by_name(files)
    # lossless first, then path order ("W" sorts before "f"); the input order is kept
    assert kept == [Path("a/x.WAV"), Path("a/y.ogg"), Path("b/z.mp3")]
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
