"""SIGTERM and Ctrl-C (SIGINT) during ``ser predict FOLDER -o out.csv -j 2``: the joblib
worker processes (and loky's resource tracker) end with the command instead of running
on as orphans, the exit status is 128 + the signal, one line says what was kept, and a
rerun resumes to every file (pipeline/core/engines.py, pipeline/cli/base.py)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile

from conftest import synth_speech
from pipeline.core import engines

psutil = pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[1]
FILES = 24


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """24 recordings of synthetic speech; every other one lasts 45 s, so that scoring them
    with two workers takes several seconds even without torch (ONNX)."""
    folder = tmp_path_factory.mktemp("signals") / "in"
    folder.mkdir()
    for number in range(FILES):
        seconds = 45.0 if number % 2 else 2.0
        soundfile.write(folder / f"clip{number:02d}.wav",
                        synth_speech(emotion=1 + number % 8, seconds=seconds, seed=number), 16000)
    return folder


def _predict(folder: Path, out: Path, log: Path) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # output to a file, not a pipe: orphaned workers would hold a pipe open, and the test hang
    with log.open("w") as handle:
        return subprocess.Popen([sys.executable, "-m", "pipeline", "predict", str(folder),
                                 "-o", str(out), "-j", "2"], cwd=out.parent, env=env,
                                stdout=handle, stderr=subprocess.STDOUT,
                                preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal() -> None:
    """SIGINT as a terminal's Ctrl-C finds it: a suite started in the background by a
    non-interactive shell runs with SIGINT ignored, which every child inherits (and
    Python then installs no handler for it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _rows(out: Path) -> list[dict]:
    if not out.exists():
        return []
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _interrupt(process: subprocess.Popen, out: Path, signum: int) -> tuple[list, list[str]]:
    """Wait (bounded) until ``out`` holds a scored file, then send ``signum``; returns the
    processes the command had started and their command lines, recorded just before."""
    deadline = time.monotonic() + 300
    while not _rows(out):
        assert process.poll() is None, "predict ended before scoring a file"
        assert time.monotonic() < deadline, "no file scored in 300 s"
        time.sleep(0.1)
    children = psutil.Process(process.pid).children(recursive=True)
    commands = [" ".join(child.cmdline()) for child in children]
    process.send_signal(signum)
    return children, commands


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_predict_leaves_no_workers_behind_and_resumes(recordings, tmp_path,
                                                                      signum):
    out, log = tmp_path / "out.csv", tmp_path / "predict.log"
    process = _predict(recordings, out, log)
    children, commands = _interrupt(process, out, signum)
    try:
        status = process.wait(timeout=120)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"still running 10 s after the command ended: {alive}"
    finally:
        for leftover in [process, *children]:
            try:
                leftover.kill()
            except (OSError, psutil.Error):
                pass
    assert sum("popen_loky" in command for command in commands) == 2  # the two workers ran
    assert status == 128 + signum
    kept = _rows(out)
    assert 0 < len(kept) < FILES
    assert log.read_text().splitlines()[-1] == (f"interrupted: {len(kept)} file(s) scored into "
                                                f"{out}; rerun to resume")

    if signum == signal.SIGTERM:  # once is enough: the rerun takes the rest of the time
        rerun = _predict(recordings, out, log)
        assert rerun.wait(timeout=600) == 0, log.read_text()
        rows = _rows(out)
        assert sorted(row["path"] for row in rows) == sorted(
            str(path) for path in recordings.iterdir())
        assert all(row["emotion"] and not row["error"] for row in rows)
        assert "resuming" in log.read_text()


# -- the pieces, in this process -------------------------------------------------------


def test_sigterm_raises_interrupted_in_the_block_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(engines.Interrupted) as caught:
        with engines.raise_on_sigterm():
            # never the default action here: it would kill the test run
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, before)
            signal.raise_signal(signal.SIGTERM)
            time.sleep(1)
    assert isinstance(caught.value, KeyboardInterrupt)  # unwinds like Ctrl-C
    assert (caught.value.signum, caught.value.exit_status) == (signal.SIGTERM, 143)
    assert signal.getsignal(signal.SIGTERM) == before


def test_outside_the_main_thread_sigterm_is_left_alone():
    before, seen = signal.getsignal(signal.SIGTERM), []

    def enter() -> None:
        with engines.raise_on_sigterm():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [before]


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_stop_workers_ends_the_workers_of_a_run_left_open():
    outputs = engines.run(_pid_after, [0.0, 0.0] + [30.0] * 4, jobs=2)
    next(outputs)  # the run is under way; the caller is then interrupted elsewhere
    workers = [child for child in psutil.Process().children(recursive=True)
               if "popen_loky" in " ".join(child.cmdline())]
    assert len(workers) == 2
    engines.stop_workers()
    _, alive = psutil.wait_procs(workers, timeout=10)
    for leftover in alive:
        leftover.kill()
    assert not alive
    outputs.close()
