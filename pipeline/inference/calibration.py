"""Calibrated confidence: temperature scaling of the final probabilities (Guo, Pleiss,
Sun & Weinberger, 2017, "On Calibration of Modern Neural Networks", ICML), fitted on
validation actors, and the expected calibration error that measures it (Naeini, Cooper
& Hauskrecht, 2015, AAAI; equal-width confidence bins as in Guo et al.).

The temperature acts on what a scorer outputs last: the probabilities averaged over
ensemble members and test-time views, ``p_i^(1/T) / sum_j p_j^(1/T)`` (a softmax of
``log p / T``). T > 1 softens overconfident verdicts; the argmax, and so every accuracy
figure, is unchanged. ``scripts/calibrate.py`` fits T and writes
``reports/calibration.json``; ``export`` stamps it into the bundle when the recipe
matches (``matching``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core import layout
from pipeline.core.atomic import read_json
from pipeline.core.progress import log

BINS = 15
# A verdict is weak when its confidence is below this: the default for bundles without a
# fitted one (the shipped model among them), fitted by ``weak_threshold`` on validation
# actors' calibrated probabilities (scripts/calibrate.py r10-calib --folds 0,2: 480 clips
# of 8 RAVDESS actors, T = 0.873; there 33 % of verdicts fell below it, right 40 % of the
# time, against 74 % for the rest; docs/experiments.md, "Weak verdicts").
WEAK_BELOW = 0.483


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``probabilities`` ``(n, classes)`` rescaled by ``temperature`` (> 0); same shape,
    rows summing to 1."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean ``-log p(true class)`` over rows (nats)."""
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising the negative log-likelihood of ``labels``
    ``(n,)`` under ``apply_temperature(probabilities, T)``; bounded search over log T.
    Raises ``ValueError`` for no rows."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        raise ValueError("no rows to fit a temperature on")
    found = minimize_scalar(
        lambda log_t: negative_log_likelihood(apply_temperature(probabilities, np.exp(log_t)),
                                              labels),
        bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = BINS) -> float:
    """ECE: the verdicts grouped into ``bins`` equal-width bins of confidence (the top
    probability); the mean over bins of |accuracy - mean confidence|, weighted by each
    bin's share of rows. 0 is perfectly calibrated; in [0, 1]."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def weak_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The confidence below which a verdict is more likely wrong than right: where a
    logistic fit of correctness (verdict == label) on confidence (the top probability)
    crosses one half; ``probabilities`` ``(n, classes)`` as scored (calibrated), labels
    ``(n,)``. Clipped to [1 / classes, 1]. Raises ``ValueError`` when correctness does not
    rise with confidence (no threshold separates them) or for no rows."""
    from scipy.optimize import minimize

    if len(labels) == 0:
        raise ValueError("no rows to fit a threshold on")
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)

    def loss(ab: np.ndarray) -> float:  # logistic negative log-likelihood
        z = ab[0] + ab[1] * confidence
        return float(np.mean(np.logaddexp(0.0, z) - correct * z))

    a, b = minimize(loss, np.zeros(2), method="BFGS").x
    if b <= 0:
        raise ValueError("correctness does not rise with confidence on these rows")
    return float(np.clip(-a / b, 1.0 / probabilities.shape[1], 1.0))


def weak_figures(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Share of verdicts below ``threshold`` and the accuracy of those below and at or
    above it (``None`` for an empty side)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    weak = confidence < threshold

    def accuracy(rows: np.ndarray) -> float | None:
        return float(correct[rows].mean()) if rows.any() else None

    return {"weak_below": threshold, "weak_share": float(weak.mean()),
            "accuracy_weak": accuracy(weak), "accuracy_firm": accuracy(~weak)}


def figures(probabilities: np.ndarray, labels: np.ndarray,
            temperature: float | None = None) -> dict:
    """ECE and NLL as scored, and with ``temperature`` applied when one is given."""
    out = {"ece": expected_calibration_error(probabilities, labels),
           "nll": negative_log_likelihood(probabilities, labels), "bins": BINS}
    if temperature is not None:
        calibrated = apply_temperature(probabilities, temperature)
        out.update(temperature=temperature,
                   ece_calibrated=expected_calibration_error(calibrated, labels),
                   nll_calibrated=negative_log_likelihood(calibrated, labels))
    return out


def matching(artifacts_dir: Path, recipe: dict) -> dict | None:
    """``reports/calibration.json`` when it was fitted on runs of ``recipe`` (a
    ``recipe_of`` dict; the validation-fold count aside, as the fitting runs hold
    validation actors out), else None."""
    record = read_json(layout.calibration_file(artifacts_dir))
    if not record or "recipe" not in record:
        return None
    return record if _canonical(record["recipe"]) == _canonical(recipe) else None


def _canonical(recipe: dict) -> dict:
    """A recipe with every setting it leaves out at its default (a recipe saved before a
    setting existed trained with the default), minus the validation-fold count."""
    from pipeline.network.recipe import TrainConfig, recipe_of

    full = TrainConfig.from_dict({"grad_clip": TrainConfig.grad_clip, **recipe}).to_dict()
    return {k: v for k, v in recipe_of(full).items() if k != "val_folds"}


def bundle_fields(artifacts_dir: Path, train_config: dict) -> dict:
    """What ``export`` adds to a bundle's metadata: the ``temperature`` fitted for the run's
    recipe (``train_config``) and where it came from, when ``reports/calibration.json``
    matches it; {} (temperature 1) otherwise, with a warning only when a temperature for
    another recipe is there."""
    from pipeline.network.recipe import recipe_of

    fitted = matching(artifacts_dir, recipe_of(train_config))
    if fitted is None:
        (log.warning if layout.calibration_file(artifacts_dir).exists() else log.info)(
            "no temperature fitted for this recipe in %s: the bundle's confidences are the "
            "network's own (scripts/calibrate.py fits one on validation actors)",
            layout.calibration_file(artifacts_dir))
        return {}
    return {"temperature": fitted["temperature"],
            **({"weak_below": fitted["weak_below"]} if "weak_below" in fitted else {}),
            "calibration": {k: fitted[k] for k in ("fitted_on", "validation") if k in fitted}}
