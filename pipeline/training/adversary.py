"""Speaker-adversarial training: an actor classifier on the pooled embedding behind a
gradient-reversal layer (Ganin & Lempitsky, 2015, "Unsupervised Domain Adaptation by
Backpropagation"). The classifier learns to name the training actor; the reversed
gradient pushes the network toward an embedding from which it cannot, i.e. one that
holds less of who is speaking. Used only in training: the saved model is the
``EmotionCNN`` alone, so ``predict`` is unchanged."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.network.model import EmotionCNN


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient multiplied by ``-scale`` backward."""
    return _Reverse.apply(x, scale)


class Adversarial(nn.Module):
    """``model`` with an actor head: ``forward(x, normalised=True)`` returns ``(emotion
    logits (batch, n_classes), actor logits (batch, n_actors))``; the actor head sees the
    pooled embedding through ``reverse_gradient``."""

    def __init__(self, model: EmotionCNN, n_actors: int):
        super().__init__()
        self.model = model
        width = model.head[2].in_features  # the pooled embedding's width
        self.actor_head = nn.Sequential(nn.Linear(width, model.config.hidden),
                                        nn.ReLU(inplace=True),
                                        nn.Linear(model.config.hidden, n_actors))

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.normalise(features)

    def forward(self, x: torch.Tensor, *, normalised: bool = False):
        pooled = self.model.embed(x if normalised else self.model.normalise(x))
        return self.model.head(pooled), self.actor_head(reverse_gradient(pooled.flatten(1)))


def actor_targets(actor_column: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, int]:
    """``(target per row (n,) int64, n_actors)``: each training actor's index in sorted
    order; rows of other actors get -100 (``cross_entropy``'s ignore index)."""
    actors = np.unique(actor_column[train_rows])
    targets = np.full(len(actor_column), -100, dtype=np.int64)
    for i, actor in enumerate(actors):
        targets[actor_column == actor] = i
    targets[np.setdiff1d(np.arange(len(actor_column)), train_rows)] = -100
    return targets, len(actors)
