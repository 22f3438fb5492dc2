"""Tests of pipeline/scan.py: one rule for finding audio in folders (formats libsndfile
decodes, hidden files skipped, a summary of what was skipped)."""

from __future__ import annotations

import numpy as np
import soundfile

from pipeline.scan import audio_suffixes, scan


def _write(path, fmt=None, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    y = (0.3 * np.sin(np.arange(4800) / 10)).astype(np.float32)
    soundfile.write(path, y, 48000, format=fmt, subtype=subtype)


def test_the_formats_come_from_the_installed_decoder():
    suffixes = audio_suffixes()
    assert {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".opus"} <= suffixes
    assert ".txt" not in suffixes and ".raw" not in suffixes  # headerless RAW is not guessed


def test_every_decodable_format_is_found_and_hidden_files_are_skipped(tmp_path):
    _write(tmp_path / "a.aiff")
    _write(tmp_path / "b.opus", fmt="OGG", subtype="OPUS")
    _write(tmp_path / "sub" / "c.FLAC", fmt="FLAC")
    (tmp_path / "._a.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # macOS resource fork
    _write(tmp_path / ".git" / "d.wav")
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "README").write_text("no suffix")

    found = scan([tmp_path])
    assert found.files == [tmp_path / "a.aiff", tmp_path / "b.opus", tmp_path / "sub" / "c.FLAC"]
    assert {reason: len(paths) for reason, paths in found.skipped.items()} == {
        "hidden": 2, "not audio (.txt)": 1, "not audio (no suffix)": 1}
    assert found.summary() == ("3 audio files; skipped 4 (2 hidden, 1 not audio (.txt), "
                               "1 not audio (no suffix))")
    for path in found.files:  # everything found really decodes
        assert soundfile.info(str(path)).frames == 4800


def test_files_named_explicitly_are_kept_whatever_their_name(tmp_path):
    named = [tmp_path / "._fork.wav", tmp_path / "missing.xyz"]
    found = scan(named)
    assert found.files == named and not found.skipped
    assert found.summary() == "2 audio files"
