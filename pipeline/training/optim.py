"""The optimiser and learning-rate schedule of a training run."""

from __future__ import annotations

import math

from pipeline.network.recipe import TrainConfig


def optimiser_and_schedule(model, config: TrainConfig, *, rows: int):
    """``(optimiser, schedule)`` of a run: AdamW (Loshchilov & Hutter, 2019) at
    ``config.lr`` with ``config.weight_decay``, and the one-cycle schedule (Smith &
    Topin, 2019) over ``config.epochs`` epochs of ``rows`` training samples in batches of
    ``config.batch_size``."""
    import torch

    steps_per_epoch = math.ceil(rows / config.batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return optimiser, one_cycle(optimiser, lr=config.lr, total_steps=config.epochs * steps_per_epoch)


def one_cycle(optimiser, *, lr: float, total_steps: int):
    """One-cycle schedule, warming up over the first 20 % of the steps. torch's OneCycleLR
    divides by ``pct_start * total_steps - 1``, which is zero at exactly 5 steps, so there
    the warm-up takes 25 %."""
    import torch

    warmup = 0.25 if 0.2 * total_steps == 1 else 0.2
    return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=total_steps,
                                               pct_start=warmup)
