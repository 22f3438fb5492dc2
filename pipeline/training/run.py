"""One training run's life apart from its loop: its cache key, opening it (the cached
result, or a session resumed from its checkpoint), what happens after each epoch
(validation, the best weights, the checkpoint, ``metrics.jsonl``, early stopping) and
finishing it (``model.pt``, then ``result.json``). The loop is ``train`` for one model
and ``together`` for several at once; both open, step and finish runs through here, so
a run's folder is the same whichever trained it."""

from __future__ import annotations

import copy as copying
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.core import layout
from pipeline.core.atomic import (
    manifest,
    read_json,
    strict_json,
    write_json_atomic,
    write_text_atomic,
)
from pipeline.core.errors import PipelineError, TrainingError
from pipeline.core.hashing import code_hash, hash_obj
from pipeline.core.progress import log
from pipeline.corpus.splits import Split, split_for, split_key
from pipeline.corpus.store import FeatureStore, labels_key
from pipeline.network.model import save_model
from pipeline.network.recipe import TrainConfig
from pipeline.training import distributed
from pipeline.training.checkpoints import load_checkpoint, save_checkpoint
from pipeline.training.session import Session

# the training code a run's key covers: the loops of one model and of several and all
# they import, so editing either retrains (a model trains to the same weights in both,
# up to float rounding, as with another thread count)
TRAIN_CODE = "pipeline.training.together"


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    epochs_run: int
    val: dict | None
    seconds: float
    cached: bool = False


class TrainingInterrupted(PipelineError):
    pass


@dataclass
class Run:
    """A run being trained: its session and the loop's state (``checkpoints.FRESH``)."""
    name: str  # its folder's name: fold-0, final.m1, ...
    key: str
    session: Session
    state: dict
    fold: int | str | None
    member: int
    store: FeatureStore
    index: dict  # the index's record (index.index_record)
    artifacts_dir: Path
    started: float
    first_epoch: int = 1
    without_gain: int = 0  # epochs since the best, carried over on --resume

    @property
    def config(self) -> TrainConfig:
        return self.session.config


def run_key(config: TrainConfig, *, features_key: str, fold: int | str | None,
            split: dict | None, world_size: int = 1, accelerated: bool = False,
            labels: str | None = None, bf16: bool = False) -> str:
    """The cache key of one member's run: its recipe (``member_key``: not the member
    count), the features' key, the labels and speakers joined onto them
    (``store.labels_key``), the fold, the split that fold depends on (``split_key``), the
    training code (``TRAIN_CODE``), and, when they apply, the torchrun process count and
    the GPU path, and bf16 autocast (it changes the arithmetic)."""
    return hash_obj({"train": config.member_key(), "features": features_key, "fold": fold,
                     "split": split, "code": code_hash(TRAIN_CODE), "labels": labels,
                     **({"world_size": world_size} if world_size > 1 else {}),
                     **({"accelerated": True} if accelerated else {}),
                     **({"bf16": True} if bf16 else {})})


def run_device(device: str):
    """``(device, group)``: the torch device this process trains on (``devices.pick_device``;
    under torchrun, its rank's GPU) and the torchrun group, or None with one process."""
    from pipeline.training.devices import pick_device

    dev = pick_device(device)
    group = distributed.join(dev)
    return distributed.rank_device(dev, group), group


def open_run(store: FeatureStore, index: dict, *, artifacts_dir: Path, config: TrainConfig,
             fold, member: int, resume: bool, force: bool, device, group,
             accelerated: bool | None, features=None,
             bf16: bool = False) -> "Run | TrainResult":
    """Member ``member`` of run ``fold`` ready to train: the cached ``TrainResult`` when a
    finished run has this key (and not ``force``), else a ``Run`` with a fresh model
    initialised from the member's seed (the caller forks the global generator), resumed
    from its checkpoint with ``resume``. ``features``: the store's rows as a tensor
    already on the right device, shared between runs; ``bf16``: bf16 autocast."""
    import torch

    started = time.perf_counter()
    split_seed = index["config"]["seed"]
    config = replace(config, model=replace(config.model, n_mels=int(store.features.shape[2]),
                                           n_classes=len(store.label_map)),
                     seed=config.seed + member)
    name = layout.member_run(layout.run_name(fold), member)
    accelerated = device.type == "cuda" if accelerated is None else accelerated
    key = run_key(config, features_key=store.manifest["key"], fold=fold, labels=labels_key(store),
                  split=split_key(store, fold, split_seed=split_seed),
                  world_size=group.world_size if group else 1, accelerated=accelerated,
                  bf16=bf16)
    done = read_json(layout.run_manifest(artifacts_dir, name))
    if (done and done.get("key") == key and layout.model_file(artifacts_dir, name).exists()
            and not force):
        log.info("%s is already trained with this config, features and code (--force "
                 "retrains)", layout.run_dir(artifacts_dir, name))
        return TrainResult(layout.run_dir(artifacts_dir, name), done["best_epoch"],
                           done["epochs_run"], done.get("val"), 0.0, cached=True)
    split = _checked_split(store, fold, config, split_seed)
    torch.manual_seed(config.seed)  # initialisation: the same on every rank
    session = Session.start(store, split, config, device, group, accelerated=accelerated,
                            features=features, bf16=bf16)
    state = load_checkpoint(layout.checkpoint_file(artifacts_dir, name), key, session,
                            resume=resume)
    layout.run_dir(artifacts_dir, name).mkdir(parents=True, exist_ok=True)
    if group is None or group.is_main:
        layout.run_manifest(artifacts_dir, name).unlink(missing_ok=True)
    distributed.barrier(group)  # every rank has read the checkpoint before it changes
    log.info("%s: %d training rows (%d actors), %d validation, %d test rows; device %s%s",
             name, len(split.train), len(split.actors(store.speaker)["train"]), len(split.val),
             len(split.test), device, f"; {group.world_size} processes" if group else "")
    return Run(name, key, session, state, fold, member, store, index, artifacts_dir, started,
               first_epoch=state["epoch"] + 1, without_gain=state["epoch"] - state["best_epoch"])


def after_epoch(run: Run, record: dict, on_epoch=None) -> bool:
    """Book epoch ``record["epoch"]`` (``train_epoch``'s record) into ``run``: validate,
    keep the best weights (without validation actors, the last), write the checkpoint and
    ``metrics.jsonl``, log, call ``on_epoch(epoch, first_epoch)``. True when the run
    stops early (``config.patience`` epochs without a better validation UA)."""
    session, state, epoch = run.session, run.state, record["epoch"]
    if len(session.split.val):
        val = session.validate()
        record.update(val_wa=val["wa"], val_ua=val["ua"],
                      **({"val_ua_by_corpus": val["ua_by_corpus"]}
                         if "ua_by_corpus" in val else {}))
    improved = not len(session.split.val) or record["val_ua"] > state["best_ua"]
    if improved:
        state.update(best_ua=record.get("val_ua", -1.0), best_epoch=epoch,
                     best_state=copying.deepcopy(session.model.state_dict()))
    run.without_gain = 0 if improved else run.without_gain + 1
    state["epoch"] = epoch
    state["history"].append(record)
    if session.group is None or session.group.is_main:
        save_checkpoint(layout.checkpoint_file(run.artifacts_dir, run.name), run.key, session,
                        state)
        write_text_atomic(layout.metrics_file(run.artifacts_dir, run.name),
                          "".join(strict_json(r) + "\n" for r in state["history"]))
    log.info("%s epoch %d/%d  loss %.4f  train acc %.3f%s  %.0f samples/s", run.name,
             epoch, run.config.epochs, record["train_loss"], record["train_acc"],
             f"  val UA {record['val_ua']:.3f} WA {record['val_wa']:.3f}"
             if "val_ua" in record else "", record["samples_per_s"])
    if on_epoch is not None:
        on_epoch(epoch, run.first_epoch)
    if run.config.patience and run.without_gain >= run.config.patience:
        log.info("%s: no validation gain for %d epochs: stopping early", run.name,
                 run.config.patience)
        return True
    return False


def interrupted(runs: list[Run]) -> TrainingInterrupted:
    """The error for a Ctrl-C during ``runs`` (those not finished): where their epochs
    are saved, and the fix; or, when none has a first epoch saved, that nothing was."""
    saved = [r for r in runs if r.state["epoch"] > 0]
    if not saved:
        return TrainingInterrupted("interrupted before the first epoch of "
                                   f"{', '.join(r.name for r in runs)} was saved: rerun the "
                                   "same command to start it again")
    where = ";\n  ".join(f"epochs up to {r.state['epoch']} of {r.name} in "
                         f"{layout.checkpoint_file(r.artifacts_dir, r.name)}" for r in saved)
    return TrainingInterrupted(f"interrupted; saved:\n  {where}\nrerun with --resume to "
                               "continue")


def finish_run(run: Run) -> TrainResult:
    """Save the kept epoch's weights as ``model.pt``, then ``result.json`` with the key."""
    session, state, group = run.session, run.state, run.session.group
    session.model.load_state_dict(state["best_state"])
    info = _run_info(run)
    if group is None or group.is_main:
        save_model(layout.model_file(run.artifacts_dir, run.name), session.model,
                   train_config=run.config.to_dict(), info=info,
                   label_map=run.store.label_map,
                   feature_config=run.store.manifest["config"]["features"])
        write_json_atomic(layout.run_manifest(run.artifacts_dir, run.name), manifest(
            stage="train", key=run.key, config=run.config.to_dict(),
            device=str(session.device), seconds=round(time.perf_counter() - run.started, 1),
            **info))
    distributed.barrier(group)  # the run is on disk before any rank goes on
    return TrainResult(layout.run_dir(run.artifacts_dir, run.name), state["best_epoch"],
                       state["epoch"], info["val"], time.perf_counter() - run.started)


def _run_info(run: Run) -> dict:
    """What ``model.pt`` and ``result.json`` record about a finished run."""
    store, split, state, group = run.store, run.session.split, run.state, run.session.group
    return {"fold": run.fold, "test_folds": list(split.test_folds),
            "val_folds": list(split.val_folds), "actors": split.actors(store.speaker),
            "best_epoch": state["best_epoch"], "corpora": sorted(set(store.corpus[split.train])),
            "epochs_run": state["epoch"], "train_clips": train_clips(store, split.train),
            "seed": run.config.seed, "member": run.member,
            "split_seed": run.index["config"]["seed"],
            "val": run.session.validate() if len(split.val) else None,
            "labels_key": labels_key(store), "index_hash": run.index["index_hash"],
            "features_key": store.manifest["key"], "train_code": code_hash(TRAIN_CODE),
            "world_size": group.world_size if group else 1}


def _checked_split(store: FeatureStore, fold, config: TrainConfig, split_seed: int) -> Split:
    split = split_for(store, fold, val_folds=config.val_folds, seed=split_seed)
    if config.train_corpora:  # the others' speakers still validate and test
        split = replace(split, train=split.train[np.isin(store.corpus[split.train],
                                                         config.train_corpora)])
    if len(split.train) == 0:
        raise TrainingError(f"no training rows for fold {fold}: check the index's folds")
    if config.patience and not len(split.val):
        raise TrainingError(f"patience {config.patience} needs validation actors, and run "
                            f"{layout.run_name(fold)} has none: set val_folds to 1 or more, "
                            "or patience to 0")
    return split


def train_clips(store, rows: np.ndarray) -> dict[str, int]:
    """Distinct clips (not copies) among training ``rows``, per corpus."""
    clips = {}
    for corpus in sorted(set(store.corpus[rows].tolist())):
        clips[str(corpus)] = len(set(store.clip_id[rows][store.corpus[rows] == corpus].tolist()))
    return clips
