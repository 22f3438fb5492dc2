"""Tests of scripts/calibrate.py, which decides the temperature every ``export`` ships:
it reads the folders it is given (not ./data and ./artifacts), scores validation actors
only, and writes the calibration record."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import prepare_store

REPO = Path(__file__).resolve().parents[1]


def _script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_temperature_is_fitted_on_validation_actors_of_the_folders_given(tmp_path):
    _, data_dir, artifacts_dir = prepare_store(tmp_path / "work", folds=4)
    elsewhere = tmp_path / "elsewhere"  # neither ./data nor ./artifacts exist here
    elsewhere.mkdir()
    dirs = ["--data-dir", str(data_dir), "--artifacts-dir", str(artifacts_dir)]
    _script("experiment.py", "cal", "--folds", "0", "--set", "epochs=2", *dirs, cwd=elsewhere)
    done = _script("calibrate.py", "cal", "--folds", "0", "--jobs", "1", *dirs, cwd=elsewhere)
    assert "temperature" in done.stdout and not (elsewhere / "artifacts").exists()

    record = json.loads((artifacts_dir / "reports" / "calibration.json").read_text())
    assert math.isfinite(record["temperature"]) and record["temperature"] > 0
    model = artifacts_dir / "experiments" / "cal" / "runs" / "fold-0" / "model.pt"
    import torch

    saved = torch.load(model, map_location="cpu", weights_only=False)
    actors = json.loads(saved["info"])["actors"]
    assert record["fitted_on"]["validation_actors"] == sorted(actors["val"])
    assert not set(actors["val"]) & set(actors["test"])  # the test fold is never read
    assert record["fitted_on"]["clips"] == 16 * len(actors["val"])  # 16 clips per actor
    # the temperature minimises the negative log-likelihood (T = 1 is among those tried)
    assert record["validation"]["nll_calibrated"] <= record["validation"]["nll"] + 1e-6
