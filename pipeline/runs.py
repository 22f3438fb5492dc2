"""Trained runs on disk: how run folders are named, and the ``model.pt`` each holds.

A run is ``fold-K`` (trained without the actors of test fold K), ``final`` (every actor:
the model to ship) or ``random`` (the leaky clip-level contrast); ensemble member m > 0
of a run lives in ``<run>.m<m>``. ``model.pt`` holds the kept weights (normalisation
buffers included) with the model, training and feature configs, the label order and the
run's info, as plain tensors and JSON text, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import ravdess
from pipeline.errors import TrainingError
from pipeline.model import ModelConfig
from pipeline.stages import atomic_path

if TYPE_CHECKING:
    from pipeline.train import TrainConfig


def run_name(fold: int | str | None) -> str:
    """``fold-K``, ``final`` (None) or ``random`` (the leaky clip-level contrast)."""
    if fold is None:
        return "final"
    return "random" if fold == "random" else f"fold-{fold}"


def member_run(run: str, member: int = 0) -> str:
    """The run folder of ensemble member ``member`` of ``run``: ``fold-K``, then
    ``fold-K.m1``, ``fold-K.m2``, ..."""
    return run if member == 0 else f"{run}.m{member}"


def member_runs(run: str, members: int) -> list[str]:
    """The run folders of the first ``members`` members of ``run``."""
    return [member_run(run, member) for member in range(members)]


def save_model(path: Path, model, *, train_config: "TrainConfig", feature_config: dict,
               info: dict) -> None:
    """The trained model: weights (with normalisation buffers) and the configs, as plain
    tensors and JSON text (loadable with ``weights_only=True``)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "model_config": json.dumps(model.config.to_dict()),
                    "train_config": json.dumps(train_config.to_dict()),
                    "feature_config": json.dumps(feature_config),
                    "label_map": json.dumps(list(ravdess.EMOTIONS)),
                    "info": json.dumps(info, default=str)}, tmp)


def load_model(path: Path):
    """``(model in eval mode on CPU, saved dict with JSON fields decoded)``."""
    import torch

    from pipeline.model import EmotionCNN

    if not Path(path).exists():
        raise TrainingError(f"no trained model at {path}: run 'cli.py train' for it first")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    meta = {k: json.loads(v) for k, v in saved.items() if k != "state_dict"}
    model = EmotionCNN(ModelConfig.from_dict(meta["model_config"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, meta


def load_members(artifacts_dir: Path, run: str, members: int):
    """``(model, saved dicts)`` for the first ``members`` members of ``run`` (``fold-K``,
    ``final``, ``random``): the model alone for one member, an ``Ensemble`` of them
    otherwise. Members must share the features and every setting but the seed."""
    from pipeline.model import Ensemble

    loaded = []
    for member, folder in enumerate(member_runs(run, members)):
        path = Path(artifacts_dir) / "runs" / folder / "model.pt"
        if not path.exists():
            target = {"final": "--final", "random": "--fold random"}.get(
                run, f"--fold {run.removeprefix('fold-')}")
            raise TrainingError(f"no trained model at {path} (ensemble member {member + 1} of "
                                f"{members}): run 'cli.py train {target} --members {members}'")
        loaded.append(load_model(path))
    first = loaded[0][1]
    for _, saved in loaded[1:]:
        same = {**saved["train_config"], "seed": 0} == {**first["train_config"], "seed": 0}
        if not same or saved["info"]["features_key"] != first["info"]["features_key"]:
            raise TrainingError(f"the members of {run} were trained with different settings or "
                                f"features: retrain them with 'cli.py train --members {members} "
                                "--force'")
    models = [model for model, _ in loaded]
    return (models[0] if members == 1 else Ensemble(models)).eval(), [saved for _, saved in loaded]
