"""Tests of pipeline/inference/sink.py through real ``ser predict`` processes (the shipped model):
two runs on one ``--output``, a file size limit hit mid-run, and file names that a
spreadsheet would run or that hold a carriage return, resumed."""

from __future__ import annotations

import csv
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from conftest import synth_speech

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _predict(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "-q", "predict", "--no-tta",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def _clips(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, name in enumerate(names):
        soundfile.write(folder / name, synth_speech(emotion=1 + k % 8, seconds=1.5, seed=k),
                        16000)
        paths.append(folder / name)
    return paths


def _rows(out: Path) -> list[list[str]]:
    with open(out, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


def _contents(path: Path) -> bytes | None:
    """The file's bytes, None while it does not exist (a run takes the output's lock
    before it opens the output)."""
    return path.read_bytes() if path.exists() else None


def test_a_second_run_on_the_same_output_is_refused_and_nothing_is_lost(tmp_path):
    first = _clips(tmp_path / "A", [f"a{k}.wav" for k in range(8)])
    _clips(tmp_path / "B", ["b0.wav", "b1.wav"])
    out, lock = tmp_path / "out.csv", tmp_path / ".out.csv.lock"
    running = _predict(str(tmp_path / "A"), "-o", str(out))
    deadline = time.monotonic() + 120
    while not lock.exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock.exists(), "the first run never took the output's lock"
    os.kill(running.pid, signal.SIGSTOP)  # hold it there, lock taken, while the second runs
    try:
        before = _contents(out)
        second = _predict(str(tmp_path / "B"), "-o", str(out))
        _, error = second.communicate(timeout=120)
        assert _contents(out) == before
    finally:
        os.kill(running.pid, signal.SIGCONT)
    running.communicate(timeout=300)
    assert second.returncode == 1
    assert f"is being written by process {running.pid} on " in error
    assert "predict" in error and "Traceback" not in error
    assert running.returncode == 0
    assert sorted(row[0] for row in _rows(out)) == sorted(map(str, first))


def test_a_file_size_limit_hit_mid_run_ends_the_output_at_a_whole_row(tmp_path):
    _clips(tmp_path / "in", [f"c{k}.wav" for k in range(3)])
    out = tmp_path / "out.csv"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (700, 700))  # the header and about one row

    run = _predict(str(tmp_path / "in"), "-o", str(out), preexec_fn=small_files)
    _, error = run.communicate(timeout=300)
    assert run.returncode == 1
    assert "writing failed (File too large); it ends at the last whole row" in error
    assert "Traceback" not in error
    rows = _rows(out)
    assert rows and all(len(row) == len(rows[0]) and row[1] for row in rows)
    assert out.read_bytes().endswith(b"\r\n")
    again = _predict(str(tmp_path / "in"), "-o", str(out))  # and it resumes to every file
    again.communicate(timeout=300)
    assert again.returncode == 0 and len(_rows(out)) == 3


def test_formula_and_carriage_return_names_are_one_row_each_and_resume(tmp_path):
    names = ['=HYPERLINK("x.example","x").wav', "@SUM(1+1).wav", "-2+3.wav",
             "line\rbreak.wav"]
    _clips(tmp_path / "in", names)
    out = tmp_path / "out.csv"
    here = {"cwd": tmp_path / "in", "env": {**os.environ, "PYTHONPATH": str(ROOT)}}
    run = _predict("-o", str(out), "--", *names, **here)  # relative: the cells start with them
    _, error = run.communicate(timeout=300)
    assert run.returncode == 0, error
    rows = _rows(out)
    assert len(rows) == len(names)
    assert [row[0] for row in rows if row[0] != "line\rbreak.wav"] == ["'" + n for n in names[:3]]
    again = _predict("-o", str(out), "--", *names, **here)
    output, error = again.communicate(timeout=300)
    assert again.returncode == 0, error
    assert len(_rows(out)) == len(names)  # nothing scored twice, no row split in two
    assert f"{len(names) - 1} file(s) already in it are skipped" in error  # the last is redone
    assert "1 file(s) scored" in output
