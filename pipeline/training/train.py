"""The ``train`` stage: the training loop of one run, on CUDA / MPS / CPU, from the
in-memory feature store. The recipe is ``recipe.TrainConfig``; statistics, SpecAugment
and mixup are ``batches``; optimiser and schedule ``optim``; the model and its file
``model``; resuming ``checkpoints``.

A run is ``fold-K`` (trained without the actors of test fold K), ``final`` (every actor)
or ``random`` (the leaky clip-level contrast); ensemble member m > 0 trains from seed +
m into ``<run>.m<m>``. Its folder (``pipeline.core.layout``) holds ``checkpoint.pt`` (after
every epoch; ``--resume`` ends where an uninterrupted run would, as every draw of epoch
e comes from generators seeded by (seed, e)), ``metrics.jsonl`` (one line per epoch),
``model.pt`` and, written last, ``result.json`` with the key (``run_key``). A fold
trains on every actor outside its test fold and keeps the last epoch, as the final model
does; with ``val_folds`` > 0 (recipe experiments) validation actors are held out and the
epoch with the best validation UA is kept.

Randomness is drawn inside ``torch.random.fork_rng``: training leaves the caller's
global torch generator as it found it.
"""

from __future__ import annotations

import copy as copying
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.core import faults, layout
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
from pipeline.corpus.index import index_record, load_index
from pipeline.corpus.splits import Split, split_for, split_key
from pipeline.corpus.store import FeatureStore, labels_key, load_store
from pipeline.network.model import save_model
from pipeline.network.recipe import TrainConfig
from pipeline.training import distributed
from pipeline.training.batches import derived_seed, mixup_weight, spec_augment
from pipeline.training.checkpoints import load_checkpoint, save_checkpoint
from pipeline.training.devices import pick_device
from pipeline.training.session import Session


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


def run_key(config: TrainConfig, *, features_key: str, fold: int | str | None,
            split: dict | None, world_size: int = 1, accelerated: bool = False,
            labels: str | None = None) -> str:
    """The cache key of one member's run: its recipe (``member_key``: not the member
    count), the features' key, the labels and speakers joined onto them
    (``store.labels_key``), the fold, the split that fold depends on (``split_key``), the
    training code (``hashing.code_hash``), and, when they apply, the torchrun process
    count and the GPU path (bf16 autocast changes the arithmetic)."""
    return hash_obj({"train": config.member_key(), "features": features_key, "fold": fold,
                     "split": split, "code": code_hash(__name__), "labels": labels,
                     **({"world_size": world_size} if world_size > 1 else {}),
                     **({"accelerated": True} if accelerated else {})})


def train(*, data_dir: Path, artifacts_dir: Path, config: TrainConfig = TrainConfig(),
          fold: int | str | None = 0, member: int = 0, resume: bool = False,
          force: bool = False, device: str = "auto", accelerated: bool | None = None,
          on_epoch=None) -> TrainResult:
    """Train one member of one run (see module docstring). ``fold=None`` trains the final
    model, ``fold="random"`` the leaky clip-level contrast. Member ``member`` > 0 trains
    with seed ``config.seed + member`` into its own run folder, on the same split.
    ``accelerated``: the GPU path (``Session.start``), by default on CUDA only.
    ``on_epoch(epoch, first_epoch)`` is called after each epoch trained (``first_epoch``:
    where this call started, > 1 after ``resume``), e.g. ``progress.JobBar.epoch``.

    The run folder is locked for the duration (``pipeline.core.locks``): a second training of
    the same run is refused with ``LockedError`` naming the process that holds it."""
    from pipeline.core.locks import job_lock

    run = layout.member_run(layout.run_name(fold), member)
    with job_lock(layout.run_dir(artifacts_dir, run), "training of this run"):
        return _train(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config, fold=fold,
                      member=member, resume=resume, force=force, device=device,
                      accelerated=accelerated, on_epoch=on_epoch)


def _train(*, data_dir: Path, artifacts_dir: Path, config: TrainConfig, fold, member: int,
           resume: bool, force: bool, device: str, accelerated: bool | None,
           on_epoch=None) -> TrainResult:
    import torch

    started = time.perf_counter()
    store = load_store(artifacts_dir, clips=load_index(data_dir))
    index = index_record(data_dir)
    split_seed = index["config"]["seed"]
    config = replace(config, model=replace(config.model, n_mels=int(store.features.shape[2]),
                                           n_classes=len(store.label_map)),
                     seed=config.seed + member)
    run = layout.member_run(layout.run_name(fold), member)
    dev = pick_device(device)
    group = distributed.join(dev)
    dev = distributed.rank_device(dev, group)
    accelerated = dev.type == "cuda" if accelerated is None else accelerated
    key = run_key(config, features_key=store.manifest["key"], fold=fold, labels=labels_key(store),
                  split=split_key(store, fold, split_seed=split_seed),
                  world_size=group.world_size if group else 1, accelerated=accelerated)
    done = read_json(layout.run_manifest(artifacts_dir, run))
    if (done and done.get("key") == key and layout.model_file(artifacts_dir, run).exists()
            and not force):
        log.info("%s is already trained with this config, features and code (--force "
                 "retrains)", layout.run_dir(artifacts_dir, run))
        return TrainResult(layout.run_dir(artifacts_dir, run), done["best_epoch"],
                           done["epochs_run"], done.get("val"), 0.0, cached=True)
    split = _checked_split(store, fold, config, split_seed)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)  # initialisation: the same on every rank
        session = Session.start(store, split, config, dev, group, accelerated=accelerated)
        state = load_checkpoint(layout.checkpoint_file(artifacts_dir, run), key, session,
                                resume=resume)
        layout.run_dir(artifacts_dir, run).mkdir(parents=True, exist_ok=True)
        if group is None or group.is_main:
            layout.run_manifest(artifacts_dir, run).unlink(missing_ok=True)
        distributed.barrier(group)  # every rank has read the checkpoint before it changes
        log.info("%s: %d training rows (%d actors), %d validation, %d test rows; device %s%s",
                 run, len(split.train), len(split.actors(store.speaker)["train"]), len(split.val),
                 len(split.test), dev, f"; {group.world_size} processes" if group else "")
        _epochs(session, state, artifacts_dir=artifacts_dir, run=run, key=key,
                on_epoch=on_epoch)
    session.model.load_state_dict(state["best_state"])
    info = _run_info(store, split, state, session, fold=fold, config=config, member=member,
                     split_seed=split_seed, index=index, group=group)
    if group is None or group.is_main:
        save_model(layout.model_file(artifacts_dir, run), session.model,
                   train_config=config.to_dict(), info=info, label_map=store.label_map,
                   feature_config=store.manifest["config"]["features"])
        write_json_atomic(layout.run_manifest(artifacts_dir, run), manifest(
            stage="train", key=key, config=config.to_dict(), device=str(dev),
            seconds=round(time.perf_counter() - started, 1), **info))
    distributed.barrier(group)  # the run is on disk before any rank goes on
    return TrainResult(layout.run_dir(artifacts_dir, run), state["best_epoch"], state["epoch"],
                       info["val"], time.perf_counter() - started)


def _run_info(store: FeatureStore, split: Split, state: dict, session: Session, *, fold,
              config: TrainConfig, member: int, split_seed: int, index: dict, group) -> dict:
    """What ``model.pt`` and ``result.json`` record about a finished run."""
    return {"fold": fold, "test_folds": list(split.test_folds),
            "val_folds": list(split.val_folds), "actors": split.actors(store.speaker),
            "best_epoch": state["best_epoch"], "corpora": sorted(set(store.corpus[split.train])),
            "epochs_run": state["epoch"], "train_clips": train_clips(store, split.train),
            "seed": config.seed, "member": member, "split_seed": split_seed,
            "val": session.validate() if len(split.val) else None,
            "labels_key": labels_key(store), "index_hash": index["index_hash"],
            "features_key": store.manifest["key"], "train_code": code_hash(__name__),
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


def _epochs(session: Session, state: dict, *, artifacts_dir: Path, run: str, key: str,
            on_epoch=None) -> None:
    """Train from the epoch after ``state["epoch"]`` to the last (or early stop), keeping
    the best weights, checkpointing and logging every epoch; ``state`` is updated."""
    config, split = session.config, session.split
    without_gain = state["epoch"] - state["best_epoch"]  # carried over on --resume
    first_epoch = state["epoch"] + 1
    try:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            record = train_epoch(session.network, session.optimiser, session.schedule,
                                 session.features, session.labels, split, config, epoch=epoch,
                                 device=session.device, class_weights=session.class_weights,
                                 row_weights=session.row_weights,
                                 group=session.group, autocast=session.accelerated,
                                 actors=session.actor_targets)
            if len(split.val):
                val = session.validate()
                record.update(val_wa=val["wa"], val_ua=val["ua"],
                              **({"val_ua_by_corpus": val["ua_by_corpus"]}
                                 if "ua_by_corpus" in val else {}))
            improved = not len(split.val) or record["val_ua"] > state["best_ua"]
            if improved:  # without validation actors, the last epoch is the one kept
                state.update(best_ua=record.get("val_ua", -1.0), best_epoch=epoch,
                             best_state=copying.deepcopy(session.model.state_dict()))
            without_gain = 0 if improved else without_gain + 1
            state["epoch"] = epoch
            state["history"].append(record)
            if session.group is None or session.group.is_main:
                save_checkpoint(layout.checkpoint_file(artifacts_dir, run), key, session, state)
                write_text_atomic(layout.metrics_file(artifacts_dir, run),
                                  "".join(strict_json(r) + "\n" for r in state["history"]))
            log.info("%s epoch %d/%d  loss %.4f  train acc %.3f%s  %.0f samples/s", run,
                     epoch, config.epochs, record["train_loss"], record["train_acc"],
                     f"  val UA {record['val_ua']:.3f} WA {record['val_wa']:.3f}"
                     if "val_ua" in record else "", record["samples_per_s"])
            if on_epoch is not None:
                on_epoch(epoch, first_epoch)
            if config.patience and without_gain >= config.patience:
                log.info("no validation gain for %d epochs: stopping early", config.patience)
                break
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted; epochs up to {state['epoch']} are saved in "
            f"{layout.checkpoint_file(artifacts_dir, run)}: rerun with --resume to continue"
        ) from None


def _check_finite(loss: float, *, epoch: int, config: TrainConfig) -> None:
    """Raise ``TrainingError`` naming the epoch and the fix when ``loss`` (the epoch's
    summed loss, read once after its last step) is NaN or infinite."""
    if not np.isfinite(loss):
        raise TrainingError(f"loss became {loss} in epoch {epoch}: lower --lr (now "
                            f"{config.lr}) or check the features for NaN / inf ('ser extract "
                            "--force')")


def train_epoch(model, optimiser, schedule, features, labels, split: Split, config: TrainConfig,
                *, epoch: int, device, class_weights=None, row_weights=None,
                group: distributed.Group | None = None, autocast: bool | None = None,
                actors=None) -> dict:
    """One epoch over ``split.train`` in an order drawn from (seed, epoch) (under torchrun,
    ``group``: this rank's share; ``model`` may then be DDP over the EmotionCNN):
    normalise, SpecAugment (``batches.spec_augment``), optional mixup, one optimiser and
    schedule step per batch, gradients clipped at ``config.grad_clip``. ``features``
    ``(n, 2, n_mels, num_frames)`` and ``labels`` ``(n,)`` are torch tensors. Seeds the
    global torch generator (dropout) from (seed, epoch): call it inside ``fork_rng``, as
    ``train`` does. ``autocast``: bf16 autocast (default: on CUDA). Returns the epoch's
    ``metrics.jsonl`` record. With ``config.adversary``, ``model`` is an
    ``adversary.Adversarial`` and ``actors`` ``(n,)`` each row's actor target. Raises
    ``TrainingError`` when the loss is not finite."""
    import torch

    model.train()
    core = getattr(model, "module", model)  # the EmotionCNN inside DDP
    rank = (group.rank,) if group else ()
    torch.manual_seed(derived_seed(config.seed, epoch, 1, *rank))  # dropout
    # every draw of the epoch (order, masks, mixup partners) where the data is: on the GPU
    # path the epoch never waits on a host-to-device copy (on a CPU, the same draws as ever)
    generator = torch.Generator(device=features.device).manual_seed(
        derived_seed(config.seed, epoch, 2, *rank))
    order = _epoch_order(split, config, epoch=epoch, group=group, generator=generator)
    # summed on the device and read once, after the last step: no host synchronisation
    # inside the loop (a .item() per step stalled a GPU on every batch)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    grad_norms, autocast = [], device.type == "cuda" if autocast is None else autocast
    t0 = time.perf_counter()
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size].to(features.device)
        x = spec_augment(core.normalise(features[index].to(device, non_blocking=True)),
                         config, generator)
        y = labels[index].to(device)
        lam = mixup_weight(config, epoch=epoch, start=start)
        partner = (torch.randperm(len(y), generator=generator, device=generator.device).to(device)
                   if config.mixup_alpha > 0 else None)
        if partner is not None:
            x = lam * x + (1 - lam) * x[partner]
        logits, loss = _forward(model, x, (y, None if actors is None else actors[index].to(device)),
                                config, class_weights, lam, partner, device, autocast=autocast,
                                row_weights=None if row_weights is None else row_weights[index].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            # the norm before clipping, recorded so a stall can be seen in metrics.jsonl
            grad_norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                             config.grad_clip).detach())
        optimiser.step()
        schedule.step()
        faults.point("train:step")
        loss_sum += loss.detach().double() * len(y)
        correct += (logits.argmax(1) == y).sum()
    seen = len(order)
    norms = torch.stack(grad_norms).double().cpu().numpy() if grad_norms else np.zeros(0)
    totals = {"loss": float(loss_sum), "correct": int(correct)}  # the epoch's one read
    seconds = time.perf_counter() - t0
    _check_finite(totals["loss"], epoch=epoch, config=config)
    return {"epoch": epoch, "train_loss": totals["loss"] / seen,
            "train_acc": totals["correct"] / seen, "lr": schedule.get_last_lr()[0],
            "seconds": round(seconds, 3),  # loss and accuracy: this rank's share (rank 0's)
            "samples_per_s": seen * (group.world_size if group else 1) / seconds,
            **({"grad_norm_median": float(np.median(norms)),
                "grad_norm_max": float(norms.max())} if len(norms) else {})}


def _epoch_order(split: Split, config: TrainConfig, *, epoch: int, group, generator):
    """The training rows of one epoch, in order, on ``generator``'s device: all of them
    shuffled by ``generator``, or under torchrun this rank's share from a sampler seeded
    alike on every rank."""
    import torch

    if group is None:
        rows = torch.from_numpy(split.train).to(generator.device)
        return rows[torch.randperm(len(rows), generator=generator, device=generator.device)]
    return distributed.rank_order(split.train, group, seed=derived_seed(config.seed, 2),
                                  epoch=epoch).to(generator.device)


def _forward(model, x, targets, config: TrainConfig, class_weights, lam: float, partner,
             device, *, autocast: bool, row_weights=None):
    """Logits and the (label-smoothed, class- or row-weighted, mixed-up) loss of one batch,
    under bf16 autocast when ``autocast`` (the GPU path; it runs on CPU too). ``targets``:
    ``(emotion labels, actor targets or None)``; with actor targets the model returns
    both logits and the actor loss, weighted by ``config.adversary``, is added.
    ``row_weights`` ``(batch,)``: each row's weight, the loss their weighted mean."""
    import torch
    import torch.nn.functional as F

    y, y_actor = targets

    def one(logits, target, weights, **kw):
        if weights is None:
            return F.cross_entropy(logits.float(), target, **kw)
        per_row = F.cross_entropy(logits.float(), target, reduction="none", **kw)
        return (per_row * weights).sum() / weights.sum().clamp_min(1e-12)

    def loss_of(logits, y, weights=None, **kw):
        loss = one(logits, y, weights, **kw)
        if partner is None:
            return loss
        return lam * loss + (1 - lam) * one(logits, y[partner],
                                            None if weights is None else weights[partner], **kw)

    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x, normalised=True)
        actor_logits = None
        if y_actor is not None:
            logits, actor_logits = logits
        loss = loss_of(logits, y, row_weights, weight=class_weights,
                       label_smoothing=config.label_smoothing)
        if actor_logits is not None:
            loss = loss + config.adversary * loss_of(actor_logits, y_actor)
    return logits, loss
