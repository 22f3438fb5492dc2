"""Tests of pipeline/training/optim.py: the run's optimiser and schedule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.network.recipe import TrainConfig
from pipeline.training import optim


@pytest.mark.parametrize("total_steps", range(1, 13))
def test_one_cycle_schedule_runs_for_any_number_of_steps(total_steps):
    # 5 steps once divided by zero inside torch's OneCycleLR (a 1-epoch CLI run hit it)
    optimiser = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = optim.one_cycle(optimiser, lr=1e-3, total_steps=total_steps)
    rates = []
    for _ in range(total_steps):
        optimiser.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert all(np.isfinite(rates)) and max(rates) <= 1e-3 * (1 + 1e-9)


def test_the_schedule_spans_every_step_of_the_run_and_peaks_at_the_recipe_lr():
    config = replace(TrainConfig(), epochs=10, batch_size=10, lr=2e-3, weight_decay=0.05)
    model = torch.nn.Linear(2, 2)
    optimiser, schedule = optim.optimiser_and_schedule(model, config, rows=25)  # 3 batches
    assert isinstance(optimiser, torch.optim.AdamW)
    assert optimiser.param_groups[0]["weight_decay"] == 0.05
    rates = []
    for _ in range(10 * 3):
        optimiser.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert max(rates) == pytest.approx(2e-3, rel=0.05)
    assert rates[-1] < rates[0] < max(rates)
