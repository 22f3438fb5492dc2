"""pipeline/inference/calibration.py: temperature scaling and the expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core import layout
from pipeline.core.atomic import write_json_atomic
from pipeline.inference import calibration


def _overconfident(n: int = 4000, seed: int = 0):
    """Verdicts right 60 % of the time, each given with 0.95 confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    predicted = np.where(rng.random(n) < 0.6, labels, (labels + 1) % 4)
    probabilities = np.full((n, 4), 0.05 / 3)
    probabilities[np.arange(n), predicted] = 0.95
    return probabilities, labels


def test_temperature_keeps_the_verdict_and_rows_summing_to_one():
    probabilities, _ = _overconfident(50)
    for t in (0.5, 1.0, 3.0):
        scaled = calibration.apply_temperature(probabilities, t)
        assert np.allclose(scaled.sum(axis=1), 1)
        assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert calibration.apply_temperature(probabilities, 3.0).max() < 0.95  # softer
    assert calibration.apply_temperature(probabilities, 0.5).max() > 0.95  # sharper


def test_ece_of_overconfident_verdicts_is_the_gap_and_the_fit_closes_it():
    probabilities, labels = _overconfident()
    accuracy = (probabilities.argmax(1) == labels).mean()
    assert calibration.expected_calibration_error(probabilities, labels) == pytest.approx(
        0.95 - accuracy)
    t = calibration.fit_temperature(probabilities, labels)
    assert t > 1
    scaled = calibration.apply_temperature(probabilities, t)
    assert scaled.max(axis=1).mean() == pytest.approx(accuracy, abs=0.02)
    figures = calibration.figures(probabilities, labels, t)
    assert figures["ece_calibrated"] < 0.02 < 0.3 < figures["ece"]
    assert figures["nll_calibrated"] < figures["nll"]


def test_perfectly_calibrated_verdicts_have_zero_ece_and_need_no_temperature():
    rng = np.random.default_rng(1)
    probabilities = np.tile([0.7, 0.1, 0.1, 0.1], (20000, 1))
    labels = rng.choice(4, size=20000, p=[0.7, 0.1, 0.1, 0.1])
    assert calibration.expected_calibration_error(probabilities, labels) < 0.01
    assert calibration.fit_temperature(probabilities, labels) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="no rows"):
        calibration.fit_temperature(probabilities[:0], labels[:0])


def test_a_fitted_temperature_belongs_only_to_its_recipe(tmp_path):
    recipe = {"epochs": 120, "val_folds": 1, "model": {"pooling": "attention"}}
    assert calibration.matching(tmp_path, recipe) is None
    write_json_atomic(layout.calibration_file(tmp_path), {"temperature": 1.7, "recipe": recipe})
    cv_recipe = {**recipe, "val_folds": 0}  # the CV and final runs hold no validation actors
    assert calibration.matching(tmp_path, cv_recipe)["temperature"] == 1.7
    assert calibration.matching(tmp_path, {**recipe, "epochs": 160}) is None
