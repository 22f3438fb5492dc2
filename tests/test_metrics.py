"""Metrics against values worked out by hand on a small example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core.labels import EMOTIONS
from pipeline.core.metrics import confusion, cross_corpus, summarise

LABELS = ("a", "b", "c", "d")
# class d never occurs in the truth but is predicted once
TRUE = np.array([0, 0, 1, 1, 1, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 0, 2, 3])


def test_confusion_counts_rows_true_columns_predicted():
    matrix = confusion(TRUE, PREDICTED, 4)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[1, 1, 0, 0],
                               [1, 2, 0, 0],
                               [0, 0, 1, 1],
                               [0, 0, 0, 0]]


def test_confusion_counts_repeated_pairs():
    # np.add.at, not fancy-index assignment: three identical pairs count three times
    assert confusion(np.array([2, 2, 2]), np.array([1, 1, 1]), 3)[2, 1] == 3


def test_summary_matches_hand_computed_values():
    metrics = summarise(confusion(TRUE, PREDICTED, 4), LABELS)
    assert metrics["n"] == 7
    assert metrics["wa"] == pytest.approx(4 / 7)
    # recalls 1/2, 2/3, 1/2 (d is absent from the truth and left out)
    assert metrics["ua"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    per_class = metrics["per_class"]
    assert per_class["a"] == pytest.approx({"recall": 0.5, "precision": 0.5, "f1": 0.5, "support": 2})
    assert per_class["b"] == pytest.approx({"recall": 2 / 3, "precision": 2 / 3, "f1": 2 / 3, "support": 3})
    assert per_class["c"] == pytest.approx({"recall": 0.5, "precision": 1.0, "f1": 2 / 3, "support": 2})
    # F1 of a, b, c: 1/2, 2/3, 2/3
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert metrics["confusion"][2] == [0, 0, 1, 1]
    # the report names the matrix's order (JSON reports sort per_class by name)
    assert metrics["labels"] == list(LABELS)


def test_class_missing_from_truth_has_nan_recall_and_does_not_count():
    metrics = summarise(confusion(TRUE, PREDICTED, 4), LABELS)
    missing = metrics["per_class"]["d"]
    assert math.isnan(missing["recall"])
    assert missing["support"] == 0
    assert missing["precision"] == 0.0  # predicted once, never right
    assert missing["f1"] == 0.0
    assert not math.isnan(metrics["ua"]) and not math.isnan(metrics["macro_f1"])


def test_perfect_and_empty_predictions():
    perfect = summarise(confusion(np.arange(4), np.arange(4), 4), LABELS)
    assert perfect["wa"] == perfect["ua"] == perfect["macro_f1"] == 1.0
    empty = summarise(np.zeros((4, 4), dtype=int), LABELS)
    assert empty["n"] == 0
    assert math.isnan(empty["wa"]) and math.isnan(empty["ua"]) and math.isnan(empty["macro_f1"])


def test_agrees_with_scikit_learn_when_every_class_occurs(rng):
    metrics_module = pytest.importorskip("sklearn.metrics")
    true = np.concatenate([np.arange(8), rng.integers(0, 8, 200)])
    predicted = np.where(rng.random(true.size) < 0.6, true, rng.integers(0, 8, true.size))
    ours = summarise(confusion(true, predicted, 8), tuple("abcdefgh"))
    assert ours["wa"] == pytest.approx(metrics_module.accuracy_score(true, predicted))
    assert ours["ua"] == pytest.approx(metrics_module.balanced_accuracy_score(true, predicted))
    assert ours["macro_f1"] == pytest.approx(metrics_module.f1_score(true, predicted, average="macro"))


# --- a corpus with fewer emotions than the model (URDU's four) ----------------------

def _onehot(rows: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros((len(rows), len(EMOTIONS)))
    for i, row in enumerate(rows):
        for label, p in row.items():
            out[i, EMOTIONS.index(label)] = p
    return out


def test_cross_corpus_counts_calm_as_wrong_8_way_and_as_neutral_4_way():
    urdu = ("neutral", "happy", "sad", "angry")
    true = np.array([EMOTIONS.index(e) for e in ("neutral", "neutral", "angry", "sad")])
    probabilities = _onehot([
        {"calm": 0.5, "neutral": 0.2, "happy": 0.3},   # 8-way calm (wrong); 4-way neutral 0.7
        {"neutral": 0.6, "angry": 0.4},                 # right both ways
        {"surprised": 0.6, "angry": 0.4},               # 8-way wrong; 4-way angry
        {"fearful": 0.5, "sad": 0.2, "happy": 0.3},     # wrong both ways (happy 4-way)
    ])
    figures = cross_corpus(true, probabilities, urdu, EMOTIONS)
    eight, four = figures["pooled"]["per_class"], figures["restricted"]["per_class"]
    assert eight["neutral"]["recall"] == 0.5 and four["neutral"]["recall"] == 1.0
    assert eight["angry"]["recall"] == 0.0 and four["angry"]["recall"] == 1.0
    assert eight["sad"]["recall"] == 0.0 and four["sad"]["recall"] == 0.0
    # UA is the mean over the corpus's emotions that occur (happy has no clip here)
    assert figures["pooled"]["ua"] == pytest.approx((0.5 + 0.0 + 0.0) / 3)
    assert figures["restricted"]["ua"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert figures["predicted_share"] == pytest.approx(
        {**{e: 0.0 for e in EMOTIONS}, "calm": 0.25, "neutral": 0.25, "surprised": 0.25,
         "fearful": 0.25})
    assert figures["emotions"] == list(urdu)


def test_cross_corpus_on_all_eight_emotions_has_no_restricted_figure():
    true = np.arange(8)
    figures = cross_corpus(true, np.eye(8), EMOTIONS, EMOTIONS)
    assert figures["pooled"]["ua"] == 1.0 and "restricted" not in figures
