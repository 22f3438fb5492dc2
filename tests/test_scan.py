"""Tests of pipeline/corpus/scan.py: one rule for finding audio in folders (formats libsndfile
decodes, hidden files skipped, a summary of what was skipped)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile

from pipeline.corpus.scan import audio_suffixes, scan


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


def _deep_file(root, *, levels=20) -> str:
    """A WAV nested in ``levels`` folders of 250-byte names (a path over PATH_MAX, built
    through folder descriptors as a copy tool would); returns its path as a string."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("deep.wav", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(out, b"RIFF")
        os.close(out)
    finally:
        os.close(fd)
    return os.path.join(str(root), *["d" * 250] * levels, "deep.wav")


def test_a_path_longer_than_the_system_allows_is_kept_for_its_error_row(tmp_path):
    _write(tmp_path / "a.wav")
    deep = _deep_file(tmp_path)
    assert len(deep.encode()) > 4096
    found = scan([tmp_path, tmp_path / ("n" * 300 + ".wav")])
    assert [str(p) for p in found.files] == [str(tmp_path / "a.wav"), deep,
                                             str(tmp_path / ("n" * 300 + ".wav"))]
    assert not found.skipped


def test_predict_gives_a_too_long_path_its_error_row_and_scores_the_rest(tmp_path, runner):
    import csv

    from cli import cli
    from conftest import synth_speech

    folder = tmp_path / "in"
    folder.mkdir()
    soundfile.write(folder / "speech.wav", synth_speech(emotion=3), 16000)
    deep = _deep_file(folder)
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, ["-q", "predict", str(folder), "-j", "1", "-o", str(out)],
                           env={"SER_BUNDLE": None})
    assert result.exit_code == 1 and "1 of 2 file(s) could not be scored" in result.output
    rows = {row["path"]: row for row in csv.DictReader(out.open())}
    assert rows[deep]["error"] == "cannot open (File name too long)"
    speech = rows[str(folder / "speech.wav")]
    assert speech["emotion"] and not speech["error"]


def test_an_unreadable_folder_is_named_and_the_walk_goes_on(tmp_path, monkeypatch):
    import errno

    _write(tmp_path / "a.wav")
    _write(tmp_path / "locked" / "b.wav")
    _write(tmp_path / "z" / "c.wav")
    real_open = os.open

    def refuse_locked(path, flags, *args, dir_fd=None, **kwargs):
        if os.fspath(path) == "locked":  # as a folder without read permission refuses a user
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "open", refuse_locked)
    found = scan([tmp_path])
    assert found.files == [tmp_path / "a.wav", tmp_path / "z" / "c.wav"]
    assert found.unreadable == {tmp_path / "locked": "Permission denied"}
    assert found.summary() == (f"2 audio files; skipped 1 (1 unreadable folder); cannot list "
                               f"{tmp_path / 'locked'} (Permission denied): give read and "
                               "search permission, or leave the folder out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its permissions "
                                               "(the test above refuses it by hand)")
def test_a_folder_without_read_permission_is_named(tmp_path):
    _write(tmp_path / "a.wav")
    _write(tmp_path / "locked" / "b.wav")
    (tmp_path / "locked").chmod(0)
    try:
        found = scan([tmp_path])
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert found.files == [tmp_path / "a.wav"]
    assert found.unreadable == {tmp_path / "locked": "Permission denied"}


def test_links_to_folders_are_not_followed_and_broken_links_are_kept(tmp_path):
    _write(tmp_path / "in" / "a.wav")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")  # followed, it would never end
    (tmp_path / "in" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "linked").symlink_to(tmp_path / "in")  # a folder given as a link is walked
    assert scan([tmp_path / "in"]).files == [tmp_path / "in" / "a.wav",
                                             tmp_path / "in" / "gone.wav"]
    assert scan([tmp_path / "linked"]).files == [tmp_path / "linked" / "a.wav",
                                                 tmp_path / "linked" / "gone.wav"]


def test_a_pipe_found_in_a_folder_is_skipped_not_waited_on(tmp_path):
    """Reading a named pipe blocks until something writes to it: in a folder scan it is
    skipped and counted, never opened."""
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    os.mkfifo(tmp_path / "pipe.wav")
    found = scan([tmp_path])
    assert found.files == [tmp_path / "clip.wav"]
    assert found.skipped["not a regular file (a pipe, device or socket)"] == [tmp_path / "pipe.wav"]
    assert "1 not a regular file (a pipe, device or socket)" in found.summary()
