"""A training run's checkpoint: everything needed to continue after an interruption and
end where an uninterrupted run would (weights, optimiser, schedule, the loop's state),
keyed by the run's cache key so that a checkpoint of another run is never resumed."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import TrainingError
from pipeline.core.progress import log

FRESH = {"epoch": 0, "history": [], "best_ua": -1.0, "best_epoch": 0, "best_state": None}


def save_checkpoint(path: Path, key: str, session, state: dict) -> None:
    """Write ``session``'s model, optimiser and schedule and the loop's ``state`` (epoch,
    history, best UA, best epoch and weights) atomically, tagged with the run's ``key``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({"key": key, "model": session.model.state_dict(),
                    "optimiser": session.optimiser.state_dict(),
                    "schedule": session.schedule.state_dict(),
                    **({"adversary": session.adversary.state_dict()}
                       if session.adversary is not None else {}), **state}, tmp)


def load_checkpoint(path: Path, key: str, session, *, resume: bool) -> dict:
    """The loop's state: fresh (a copy of ``FRESH``), or, with ``resume`` and a
    checkpoint at ``path``, the saved one, with ``session``'s model, optimiser and
    schedule restored. Raises ``TrainingError`` when the checkpoint has another key."""
    import torch

    state = {k: (list(v) if isinstance(v, list) else v) for k, v in FRESH.items()}
    if resume and path.exists():
        saved = torch.load(path, map_location=session.device, weights_only=True)
        if saved.get("key") != key:
            raise TrainingError(f"{path} is from another config, feature store or code "
                                "version; drop --resume to start afresh")
        session.model.load_state_dict(saved["model"])
        session.optimiser.load_state_dict(_steps_on_cpu(saved["optimiser"]))
        session.schedule.load_state_dict(saved["schedule"])
        if session.adversary is not None:
            session.adversary.load_state_dict(saved["adversary"])
        state = {k: saved[k] for k in state}
        log.info("resuming %s after epoch %d", path.parent.name, state["epoch"])
    elif resume:
        log.info("no checkpoint in %s; starting from epoch 1", path.parent)
    return state


def _steps_on_cpu(optimiser_state: dict) -> dict:
    """The optimiser's state with its step counts on the CPU, where AdamW keeps them: a
    checkpoint loaded onto a GPU would put them there, and a non-capturable AdamW then
    reads them back to the host at every step."""
    for entry in optimiser_state["state"].values():
        if "step" in entry and hasattr(entry["step"], "cpu"):
            entry["step"] = entry["step"].cpu()
    return optimiser_state
