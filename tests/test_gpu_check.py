"""scripts/gpu_check.sh, the one command a GPU machine runs for issue 32, run here on the
CPU with a tiny corpus and one epoch, so that it is known to work before it meets a GPU:
it writes its environment, the training benchmark, the run's log and the figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_corpus

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_on_a_cpu(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, actors=(1, 2, 3, 4, 5), takes=1)  # one actor per fold
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "SER_GPU_CHECK_PROFILE": "quick",
           "SER_GPU_CHECK_EPOCHS": "1", "SER_GPU_CHECK_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "SER_GPU_CHECK_BENCH": "--epochs 1 --models 2", "SER_STACK": "on"}
    done = subprocess.run(["bash", str(SCRIPT), str(out), str(corpus)], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr + (
        (out / "run.log").read_text() if (out / "run.log").exists() else "")
    figures = (out / "figures.txt").read_text()
    assert "device cpu" in figures and "samples/s" in figures
    assert "one model" in figures and "stacked" in figures  # one model, then two at once
    assert '"models_in_step": 1' in next((out / "work" / "artifacts").rglob("metrics.jsonl")
                                         ).read_text()  # trained by the stacked loop
    assert "ser run --profile quick, extract included:" in figures
    assert "[ser train:" in figures and "quick profile finished in" in figures
    assert "torch" in (out / "env.txt").read_text()
