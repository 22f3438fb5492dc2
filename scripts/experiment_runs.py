"""Shared by the experiment scripts: a run of a recipe experiment scored at its last
epoch (the default recipe keeps the last epoch; an experiment's ``model.pt`` holds the
best validation epoch, picked on the very actors it is scored on)."""

from __future__ import annotations

from pathlib import Path


def last_epoch_scorer(artifacts_dir: Path, run: str, views):
    """A ``pipeline.inference.scorer.Scorer`` of ``run`` under ``artifacts_dir`` with the weights of
    its last epoch (from ``checkpoint.pt``) and the test-time ``views``."""
    import torch

    from pipeline.core import layout
    from pipeline.inference.scorer import from_run

    scorer = from_run(artifacts_dir, run, 1, views)
    last = torch.load(layout.checkpoint_file(artifacts_dir, run), map_location="cpu",
                      weights_only=True)["model"]
    scorer.model.load_state_dict(last)
    return scorer
