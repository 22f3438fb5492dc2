"""Classification metrics: confusion matrix, per-class recall / precision / F1, overall
accuracy (WA), unweighted accuracy (UA: mean per-class recall) and macro-F1."""

from __future__ import annotations

import numpy as np


def confusion(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` int counts, rows true, columns predicted."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, int), np.asarray(predicted, int)), 1)
    return matrix


def summarise(matrix: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict:
    """Every figure from a confusion matrix. Classes absent from the truth get recall NaN
    and are left out of UA and macro-F1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    hits = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = matrix.sum()
    return {
        "n": int(total),
        "wa": float(hits.sum() / total) if total else float("nan"),
        "ua": float(np.nanmean(recall[present])) if present.any() else float("nan"),
        "macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "per_class": {label: {"recall": float(recall[i]), "precision": float(precision[i]),
                              "f1": float(f1[i]), "support": int(support[i])}
                      for i, label in enumerate(labels)},
        "labels": list(labels),  # row (true) and column (predicted) order of "confusion"
        "confusion": matrix.astype(int).tolist(),
    }


def cross_corpus(true: np.ndarray, probabilities: np.ndarray, emotions: tuple[str, ...],
                 labels: tuple[str, ...]) -> dict:
    """Figures of ``probabilities`` ``(n, len(labels))`` against ``true`` label indices
    ``(n,)`` from a corpus that has only ``emotions`` (a subset of ``labels``):

    - ``pooled``: the argmax over every label (a verdict outside ``emotions``, e.g. calm,
      is wrong); UA is the mean recall over ``emotions``;
    - ``restricted`` (only when ``emotions`` is not all of ``labels``, and more than one):
      calm's probability
      added to neutral's when the corpus has neutral and no calm, then the argmax over
      ``emotions`` alone;
    - ``predicted_share``: the share of clips given each label (argmax over all).
    """
    labels = tuple(labels)
    predicted = probabilities.argmax(axis=1)
    figures = {"pooled": summarise(confusion(true, predicted, len(labels)), labels),
               "predicted_share": {label: float(np.mean(predicted == i))
                                   for i, label in enumerate(labels)}}
    if set(emotions) != set(labels) and len(emotions) > 1:
        present = np.array([labels.index(e) for e in labels if e in emotions])
        folded = probabilities.copy()
        if "neutral" in emotions and "calm" not in emotions and "calm" in labels:
            folded[:, labels.index("neutral")] += folded[:, labels.index("calm")]
        restricted = present[folded[:, present].argmax(axis=1)]
        figures["restricted"] = summarise(confusion(true, restricted, len(labels)), labels)
        figures["emotions"] = [e for e in labels if e in emotions]
    return figures
