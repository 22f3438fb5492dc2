"""The training loop reads nothing back from the device inside its steps (issue 32):
losses, accuracies and gradient norms are summed where they are computed and read once
per epoch, so a GPU is never stalled by a host synchronisation per batch. Checked on the
CPU by counting every read-back (``item``, ``float``, ``int``, ``bool``, ``tolist``,
``numpy``, ``cpu``) that this project's code makes during an epoch: the count must not grow
with the number of steps."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest
import torch

from pipeline.training import train as train_module
from test_train import SMALL, _run, write_store

READS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy", "cpu")


def count_reads(monkeypatch, owner, attribute: str) -> dict:
    """Counts read-backs called from ``pipeline`` code while ``owner.attribute`` (a
    function or method: an epoch loop) runs: ``{"reads": n}``, reset by the caller."""
    counted = {"inside": False, "reads": 0}
    for name in READS:
        real = getattr(torch.Tensor, name)

        def wrapper(self, *args, _real=real, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if counted["inside"] and caller.startswith("pipeline."):
                counted["reads"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    real_epoch = getattr(owner, attribute)

    def epoch(*args, **kwargs):
        counted["inside"] = True
        try:
            return real_epoch(*args, **kwargs)
        finally:
            counted["inside"] = False

    monkeypatch.setattr(owner, attribute, epoch)
    return counted


@pytest.fixture
def reads(monkeypatch):
    """Counts read-backs called from ``pipeline`` code while ``train_epoch`` runs."""
    return count_reads(monkeypatch, train_module, "train_epoch")


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_an_epochs_reads_do_not_grow_with_its_steps(tmp_path, reads, mixup):
    store = write_store(tmp_path)
    counts = []
    for batch_size in (64, 8):  # then eight times the steps
        reads["reads"] = 0
        _run(store, replace(SMALL, epochs=1, batch_size=batch_size, mixup_alpha=mixup),
             fold=0, force=True)
        counts.append(reads["reads"])
    assert counts[0] == counts[1], counts
    assert counts[0] <= 4  # the loss, the accuracy, the gradient norms: once each


def test_a_non_finite_loss_names_its_epoch(tmp_path):
    """Checked once per epoch, after its last step, and before anything is saved."""
    from pipeline.core.errors import TrainingError

    store = write_store(tmp_path)
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) in epoch 1: lower --lr"):
        _run(store, replace(SMALL, epochs=3, lr=1e30), fold=0)
    assert not (store[1] / "runs" / "fold-0" / "model.pt").exists()
