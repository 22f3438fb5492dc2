"""Tests of pipeline/training/checkpoints.py: what a resumed run gets back, and what is refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from pipeline.core.errors import TrainingError
from pipeline.training.checkpoints import FRESH, load_checkpoint, save_checkpoint


@dataclass
class _Session:
    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    schedule: object
    device: torch.device = torch.device("cpu")
    adversary: torch.nn.Module | None = None  # the actor head, with TrainConfig.adversary


def _session(seed: int) -> _Session:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=1, gamma=0.5)
    return _Session(model, optimiser, schedule)


def test_a_saved_checkpoint_restores_weights_optimiser_schedule_and_state(tmp_path):
    saved = _session(0)
    for _ in range(2):
        saved.model(torch.ones(1, 3)).sum().backward()
        saved.optimiser.step()
        saved.schedule.step()
    state = {"epoch": 2, "history": [{"epoch": 1}, {"epoch": 2}], "best_ua": 0.4,
             "best_epoch": 1, "best_state": {k: v.clone() for k, v in saved.model.state_dict().items()}}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, "key-1", saved, state)

    restored = _session(1)  # other initial weights
    back = load_checkpoint(path, "key-1", restored, resume=True)
    assert back["epoch"] == 2 and back["history"] == state["history"] and back["best_epoch"] == 1
    for name, tensor in saved.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], tensor)
    assert restored.schedule.get_last_lr() == saved.schedule.get_last_lr()
    assert restored.optimiser.state_dict()["state"].keys() == saved.optimiser.state_dict()["state"].keys()


def test_without_resume_or_without_a_file_the_state_is_fresh_and_independent(tmp_path):
    session = _session(0)
    state = load_checkpoint(tmp_path / "none.pt", "k", session, resume=True)
    assert state == FRESH
    state["history"].append({"epoch": 1})
    assert FRESH["history"] == []  # the module's template is never shared
    save_checkpoint(tmp_path / "c.pt", "k", session, {**FRESH, "epoch": 3})
    assert load_checkpoint(tmp_path / "c.pt", "k", session, resume=False)["epoch"] == 0


def test_a_checkpoint_of_another_run_is_refused_with_the_fix(tmp_path):
    session = _session(0)
    save_checkpoint(tmp_path / "c.pt", "old-key", session, dict(FRESH))
    with pytest.raises(TrainingError, match="another config.*drop --resume"):
        load_checkpoint(tmp_path / "c.pt", "new-key", session, resume=True)
