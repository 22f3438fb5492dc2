"""Tests of pipeline/core/locks.py: one job per output at a time, the holder named, a dead
holder's lock taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.core.locks import LockedError, job_lock

REPO = Path(__file__).resolve().parents[1]


def _hold(folder: Path) -> subprocess.Popen:
    """A child process that holds the lock of ``folder`` until killed."""
    ready = folder.parent / f"{folder.name}.held"
    script = ("import sys, time, pathlib\n"
              "from pipeline.core.locks import job_lock\n"
              "with job_lock(pathlib.Path(sys.argv[1]), 'extract'):\n"
              "    pathlib.Path(sys.argv[2]).touch()\n"
              "    time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", script, str(folder), str(ready)], env=env)
    for _ in range(200):
        if ready.exists():
            return child
        time.sleep(0.05)
    child.kill()
    raise AssertionError("the child never took the lock")


def test_a_second_holder_is_refused_naming_the_lock_and_the_process(tmp_path):
    child = _hold(tmp_path / "features")
    try:
        with pytest.raises(LockedError) as caught:
            with job_lock(tmp_path / "features", "extract"):
                pass
        message = str(caught.value)
        assert str(tmp_path / "features" / ".lock") in message
        assert f"process {child.pid}" in message and "another extract" in message
    finally:
        child.kill()
        child.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    child = _hold(tmp_path / "features")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with job_lock(tmp_path / "features", "extract") as path:
        assert f"process {os.getpid()}" in path.read_text()


def test_other_folders_and_sequential_jobs_do_not_conflict(tmp_path):
    with job_lock(tmp_path / "a", "train") as first:
        with job_lock(tmp_path / "b", "train") as second:  # another folder: no refusal
            assert (first.parent.name, second.parent.name) == ("a", "b")
            assert f"process {os.getpid()}" in second.read_text()
    with job_lock(tmp_path / "a", "train") as again:  # released on the way out
        assert again == first and f"process {os.getpid()}" in again.read_text()


def test_non_zero_torchrun_ranks_work_under_rank_zeros_lock(tmp_path, monkeypatch):
    with job_lock(tmp_path / "run", "train"):
        monkeypatch.setenv("RANK", "1")
        with job_lock(tmp_path / "run", "train") as path:  # no refusal: the same job
            assert path is None


def test_a_second_extract_on_the_cli_is_refused_at_once(tmp_path, runner):
    from cli import cli

    artifacts = tmp_path / "artifacts"
    child = _hold(artifacts / "features")
    try:
        started = time.monotonic()
        result = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "--artifacts-dir",
                                     str(artifacts), "extract", "--jobs", "1"])
        assert time.monotonic() - started < 30  # refused, not queued
    finally:
        child.kill()
        child.wait()
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {artifacts / 'features' / '.lock'} is held by "
                                    f"process {child.pid}")


def test_a_second_training_of_the_same_run_is_refused_before_any_work(tmp_path):
    from pipeline.training.train import train

    artifacts = tmp_path / "artifacts"
    child = _hold(artifacts / "runs" / "fold-0")
    try:
        with pytest.raises(LockedError, match=f"process {child.pid}.*another training of this run"):
            train(data_dir=tmp_path / "no-data", artifacts_dir=artifacts, fold=0)
        # another run (member 1 of the same fold) is not blocked by it
        with pytest.raises(Exception) as other:
            train(data_dir=tmp_path / "no-data", artifacts_dir=artifacts, fold=0, member=1)
        assert not isinstance(other.value, LockedError)
    finally:
        child.kill()
        child.wait()
