"""The loss of one training batch: cross-entropy with label smoothing (Szegedy et al.,
2016), weighted per class or per row, and mixed as mixup mixes the inputs (Zhang et al.,
2018). Shared by the loop of one model (``train``) and of several at once
(``together``)."""

from __future__ import annotations


def batch_loss(logits, y, *, lam: float = 1.0, partner=None, class_weights=None,
               row_weights=None, label_smoothing: float = 0.0):
    """The mean loss of a batch, a 0-d float32 tensor. ``logits`` ``(batch, n_classes)``
    (cast to float32), ``y`` ``(batch,)`` class indices; ``class_weights``
    ``(n_classes,)`` or ``row_weights`` ``(batch,)`` (the loss then is the rows' weighted
    mean); with mixup, ``partner`` ``(batch,)`` is the permutation each row was mixed with
    and ``lam`` its own share: the loss is ``lam * loss(y) + (1 - lam) * loss(y[partner])``."""
    loss = _weighted(logits, y, row_weights, class_weights, label_smoothing)
    if partner is None:
        return loss
    partner_weights = None if row_weights is None else row_weights[partner]
    return lam * loss + (1 - lam) * _weighted(logits, y[partner], partner_weights,
                                              class_weights, label_smoothing)


def _weighted(logits, y, row_weights, class_weights, label_smoothing: float):
    import torch.nn.functional as F

    kw = dict(weight=class_weights, label_smoothing=label_smoothing)
    if row_weights is None:
        return F.cross_entropy(logits.float(), y, **kw)
    per_row = F.cross_entropy(logits.float(), y, reduction="none", **kw)
    return (per_row * row_weights).sum() / row_weights.sum().clamp_min(1e-12)
