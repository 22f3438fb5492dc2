"""The ``train`` stage: the CNN on one cross-validation fold (or all actors for the final
model), from the in-memory feature store, on CUDA / MPS / CPU.

Run folder ``<artifacts>/runs/fold-K`` (or ``final``, ``random``); ensemble member m > 0
of a run trains from seed + m into ``fold-K.m<m>`` (``MEMBERS`` per run by default):

- ``checkpoint.pt``: written atomically after every epoch (weights, optimiser, schedule,
  best weights, history); ``--resume`` continues from it and ends where an uninterrupted
  run would, because every random draw of epoch e comes from generators seeded by
  (seed, e);
- ``metrics.jsonl``: one line per epoch;
- ``model.pt``: the kept weights with the model and feature configs and the normalisation
  statistics (inside the model). By default (``val_folds=0``) a fold trains on every actor
  outside its test fold and keeps the last epoch, as the final model does; with
  ``val_folds`` > 0 (the recipe experiments) that many folds are held out as validation
  actors and the epoch with the best validation UA is kept;
- ``result.json``: the run's manifest, written last; a rerun with the same config and
  features is a cache hit.
"""

from __future__ import annotations

import copy as copying
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline import faults, ravdess
from pipeline.devices import pick_device
from pipeline.errors import PipelineError, TrainingError
from pipeline.extract import features_dir
from pipeline.index import index_hash
from pipeline.metrics import confusion, summarise
from pipeline.model import ModelConfig
from pipeline.progress import log
from pipeline.runs import member_run, run_name, save_model
from pipeline.splits import Split, split_for
from pipeline.stages import (atomic_path, hash_obj, manifest, read_json, strict_json,
                             write_json_atomic, write_text_atomic)
from pipeline.store import FeatureStore, load_store


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 120
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    # gradients rescaled to at most this L2 norm before each step (0: off). Without it the
    # 20-actor final run of the seventh recipe stalled near the 3e-3 peak (docs/experiments.md)
    grad_clip: float = 1.0
    mixup_alpha: float = 0.0
    balanced: bool = True  # loss weighted by inverse class frequency (neutral: half the clips)
    time_masks: int = 2
    time_mask_frames: int = 20
    freq_masks: int = 2
    freq_mask_bins: int = 8
    patience: int = 0  # epochs without a better validation UA before stopping; 0: never
    val_folds: int = 0  # folds held out to pick the best epoch; 0: train on them, keep the last
    seed: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        # runs from before grad_clip existed trained without clipping
        return cls(**{"grad_clip": 0.0, **data, "model": ModelConfig.from_dict(data["model"])})


# Ensemble members per run (seeds seed, seed + 1, ...; probabilities averaged). Not part of
# TrainConfig: a member's training does not depend on how many members there are, so a
# member stays cached when the count changes.
MEMBERS = 2


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


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def normalisation_stats(features: np.ndarray, rows: np.ndarray, *, chunk: int = 512):
    """Mean and std per channel and mel row over ``rows`` (and all frames), float32
    ``(2, n_mels, 1)`` each, accumulated in float64."""
    total = np.zeros(features.shape[1:3])
    squares = np.zeros(features.shape[1:3])
    count = 0
    for start in range(0, len(rows), chunk):
        block = features[rows[start:start + chunk]].astype(np.float64)
        total += block.sum(axis=(0, 3))
        squares += np.square(block).sum(axis=(0, 3))
        count += block.shape[0] * block.shape[3]
    mean = total / count
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(squares)):
        raise TrainingError("the training features contain NaN or inf values: recompute them "
                            "with 'cli.py extract --force'")
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0))
    return mean[..., None].astype(np.float32), std[..., None].astype(np.float32)


def logits_for(model, features, rows: np.ndarray, *, device, batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits for ``features[rows]`` (a torch tensor, any device), ``(n, classes)``."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            index = torch.as_tensor(rows[start:start + batch_size], device=features.device)
            out.append(model(features[index].to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.n_classes))


def spec_augment(x, config: TrainConfig, generator):
    """Zero (after normalisation: the mean) random time and mel bands, per sample."""
    import torch

    batch, _, n_mels, n_frames = x.shape
    keep = torch.ones(batch, 1, n_mels, n_frames, dtype=torch.bool)
    for count, width, axis, size in ((config.time_masks, config.time_mask_frames, 3, n_frames),
                                     (config.freq_masks, config.freq_mask_bins, 2, n_mels)):
        for _ in range(count):
            widths = torch.randint(0, width + 1, (batch,), generator=generator)
            starts = (torch.rand(batch, generator=generator) * (size - widths)).long()
            positions = torch.arange(size)
            band = (positions[None] >= starts[:, None]) & (positions[None] < (starts + widths)[:, None])
            shape = (batch, 1, size, 1) if axis == 2 else (batch, 1, 1, size)
            keep &= ~band.view(shape)
    return x * keep.to(x.device)


def train(*, data_dir: Path, artifacts_dir: Path, config: TrainConfig = TrainConfig(),
          fold: int | str | None = 0, member: int = 0, resume: bool = False,
          force: bool = False, device: str = "auto") -> TrainResult:
    """Train one run (see module docstring). ``fold=None`` trains the final model,
    ``fold="random"`` the leaky clip-level contrast. Ensemble member ``member`` > 0 trains
    with seed ``config.seed + member`` into its own run folder, on the same split.

    The run folder is locked for the duration (``pipeline.locks``): a second training of
    the same run is refused with ``LockedError`` naming the process that holds it."""
    from pipeline.locks import job_lock

    run_dir = Path(artifacts_dir) / "runs" / member_run(run_name(fold), member)
    with job_lock(run_dir, "training of this run"):
        return _train(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config, fold=fold,
                      member=member, resume=resume, force=force, device=device)


def _train(*, data_dir: Path, artifacts_dir: Path, config: TrainConfig, fold, member: int,
           resume: bool, force: bool, device: str) -> TrainResult:
    import torch

    started = time.perf_counter()
    current_index = index_hash(data_dir)
    store = load_store(features_dir(artifacts_dir), index_hash=current_index)
    n_mels, n_frames = store.features.shape[2:]
    split_seed = config.seed  # the random split is the same for every member
    config = replace(config, model=replace(config.model, n_mels=int(n_mels)),
                     seed=config.seed + member)
    run_dir = Path(artifacts_dir) / "runs" / member_run(run_name(fold), member)
    key = hash_obj({"train": config.to_dict(), "features": store.manifest["key"], "fold": fold})
    done = read_json(run_dir / "result.json")
    if done and done.get("key") == key and (run_dir / "model.pt").exists() and not force:
        log.info("%s is already trained with this config and features (--force retrains)", run_dir)
        return TrainResult(run_dir, done["best_epoch"], done["epochs_run"], done.get("val"),
                           0.0, cached=True)

    split = split_for(store, fold, val_folds=config.val_folds, seed=split_seed)
    if len(split.train) == 0:
        raise TrainingError(f"no training rows for fold {fold}: check the index's folds")
    if config.patience and not len(split.val):
        raise TrainingError(f"patience {config.patience} needs validation actors, and run "
                            f"{run_name(fold)} has none: set val_folds to 1 or more, or patience to 0")
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    from pipeline.model import EmotionCNN

    model = EmotionCNN(config.model)
    mean, std = normalisation_stats(store.features, split.train)
    model.set_normalisation(torch.from_numpy(mean), torch.from_numpy(std))
    model.to(dev)
    features = torch.from_numpy(store.features)
    if dev.type == "cuda":
        features = features.to(dev)  # ~0.2 GB for RAVDESS x 3 copies: the data path stays on the GPU
    labels = torch.from_numpy(store.label.astype(np.int64)).to(features.device)
    class_weights = None
    if config.balanced:
        weights = balanced_weights(store.label[split.train], config.model.n_classes)
        class_weights = torch.from_numpy(weights).to(dev)
    optimiser, schedule = optimiser_and_schedule(model, config, rows=len(split.train))
    state = {"epoch": 0, "history": [], "best_ua": -1.0, "best_epoch": 0, "best_state": None}
    checkpoint_path = run_dir / "checkpoint.pt"
    if resume and checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location=dev, weights_only=True)
        if saved.get("key") != key:
            raise TrainingError(f"{checkpoint_path} is from another config or feature store; "
                                "drop --resume to start afresh")
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        state = {k: saved[k] for k in state}
        log.info("resuming %s after epoch %d", run_dir.name, state["epoch"])
    elif resume:
        log.warning("no checkpoint in %s; starting from epoch 1", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").unlink(missing_ok=True)
    log.info("%s: %d training rows (%d actors), %d validation, %d test rows; device %s",
             run_dir.name, len(split.train), len(split.actors(store.actor)["train"]),
             len(split.val), len(split.test), dev)

    epochs_without_gain = state["epoch"] - state["best_epoch"]  # carried over on --resume
    try:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            record = train_epoch(model, optimiser, schedule, features, labels, split, config,
                                  epoch=epoch, device=dev, class_weights=class_weights)
            if len(split.val):
                val = _evaluate_rows(model, features, store.label, split.val, device=dev)
                record.update(val_wa=val["wa"], val_ua=val["ua"])
                improved = val["ua"] > state["best_ua"]
            else:
                improved = True  # no validation actors: the last epoch is the one kept
            if improved:
                state.update(best_ua=record.get("val_ua", -1.0), best_epoch=epoch,
                             best_state=copying.deepcopy(model.state_dict()))
                epochs_without_gain = 0
            else:
                epochs_without_gain += 1
            state["epoch"] = epoch
            state["history"].append(record)
            _save_checkpoint(checkpoint_path, key, model, optimiser, schedule, state)
            write_text_atomic(run_dir / "metrics.jsonl",
                              "".join(strict_json(r) + "\n" for r in state["history"]))
            log.info("epoch %3d  loss %.4f  train acc %.3f%s  %.0f samples/s", epoch,
                     record["train_loss"], record["train_acc"],
                     f"  val UA {record['val_ua']:.3f} WA {record['val_wa']:.3f}"
                     if "val_ua" in record else "", record["samples_per_s"])
            if config.patience and epochs_without_gain >= config.patience:
                log.info("no validation gain for %d epochs: stopping early", config.patience)
                break
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted; epochs up to {state['epoch']} are saved in "
                                  f"{checkpoint_path}: rerun with --resume to continue") from None

    model.load_state_dict(state["best_state"])
    val = (_evaluate_rows(model, features, store.label, split.val, device=dev)
           if len(split.val) else None)
    actors = split.actors(store.actor)
    info = {"fold": fold, "test_folds": list(split.test_folds), "val_folds": list(split.val_folds),
            "actors": actors, "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
            "val": val, "seed": config.seed, "member": member, "split_seed": split_seed,
            "index_hash": current_index,
            "features_key": store.manifest["key"]}
    save_model(run_dir / "model.pt", model, train_config=config,
               feature_config=store.manifest["config"]["features"], info=info)
    seconds = time.perf_counter() - started
    write_json_atomic(run_dir / "result.json", manifest(
        stage="train", key=key, config=config.to_dict(), seconds=round(seconds, 1),
        device=str(dev), **info))
    return TrainResult(run_dir, state["best_epoch"], state["epoch"], val, seconds)


def optimiser_and_schedule(model, config: TrainConfig, *, rows: int):
    """``(optimiser, schedule)`` of a run: AdamW at ``config.lr`` with
    ``config.weight_decay``, and the one-cycle schedule over ``config.epochs`` epochs of
    ``rows`` training samples in batches of ``config.batch_size``."""
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


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class loss weights ``n / (n_classes * count)``, so every class weighs the same in
    total; a class absent from ``labels`` gets weight 0."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def train_epoch(model, optimiser, schedule, features, labels, split: Split, config: TrainConfig,
                *, epoch: int, device, class_weights=None) -> dict:
    """One epoch over ``split.train`` in an order drawn from (seed, epoch): normalise,
    SpecAugment (``spec_augment``), optional mixup, one optimiser and schedule step per
    batch, gradients clipped at ``config.grad_clip``. ``features`` ``(n, 2, n_mels,
    n_frames)`` and ``labels`` ``(n,)`` are torch tensors. Returns the epoch's
    ``metrics.jsonl`` record. Raises ``TrainingError`` when the loss is not finite."""
    import torch
    import torch.nn.functional as F

    model.train()
    torch.manual_seed(_derived_seed(config.seed, epoch, 1))  # dropout
    generator = torch.Generator().manual_seed(_derived_seed(config.seed, epoch, 2))
    order = torch.from_numpy(split.train)[torch.randperm(len(split.train), generator=generator)]
    use_amp = device.type == "cuda"
    total_loss = correct = seen = 0
    grad_norms = []
    t0 = time.perf_counter()
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size].to(features.device)
        x = model.normalise(features[index].to(device, non_blocking=True))
        y = labels[index].to(device)
        x = spec_augment(x, config, generator)
        lam, partner = 1.0, None
        if config.mixup_alpha > 0:
            lam = float(np.random.default_rng(_derived_seed(config.seed, epoch, start)).beta(
                config.mixup_alpha, config.mixup_alpha))
            partner = torch.randperm(len(y), generator=generator).to(device)
            x = lam * x + (1 - lam) * x[partner]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x, normalised=True)
            loss = F.cross_entropy(logits.float(), y, weight=class_weights,
                                   label_smoothing=config.label_smoothing)
            if partner is not None:
                loss = lam * loss + (1 - lam) * F.cross_entropy(
                    logits.float(), y[partner], weight=class_weights,
                    label_smoothing=config.label_smoothing)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at epoch {epoch}, batch "
                                f"{start // config.batch_size}: lower --lr (now {config.lr}) "
                                "or check the features for NaN / inf ('cli.py extract --force')")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            # the norm before clipping, recorded so a stall can be seen in metrics.jsonl
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                    config.grad_clip)))
        optimiser.step()
        schedule.step()
        faults.point("train:step")
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    seconds = time.perf_counter() - t0
    return {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen,
            "lr": schedule.get_last_lr()[0], "seconds": round(seconds, 3),
            "samples_per_s": seen / seconds,
            **({"grad_norm_median": float(np.median(grad_norms)),
                "grad_norm_max": max(grad_norms)} if grad_norms else {})}


def _evaluate_rows(model, features, label_column: np.ndarray, rows: np.ndarray, *, device) -> dict:
    predicted = logits_for(model, features, rows, device=device).argmax(1)
    return summarise(confusion(label_column[rows], predicted, len(ravdess.EMOTIONS)),
                     ravdess.EMOTIONS)


def _save_checkpoint(path: Path, key: str, model, optimiser, schedule, state: dict) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save({"key": key, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(), **state}, tmp)
