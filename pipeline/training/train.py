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

import time
from pathlib import Path

import numpy as np

from pipeline.core import faults, layout
from pipeline.core.errors import TrainingError
from pipeline.corpus.index import index_record, load_index
from pipeline.corpus.splits import Split
from pipeline.corpus.store import load_store
from pipeline.network.recipe import TrainConfig
from pipeline.training import distributed
from pipeline.training.batches import augmented_batch, derived_seed
from pipeline.training.loss import batch_loss
from pipeline.training.run import (
    Run,
    TrainingInterrupted,
    TrainResult,
    after_epoch,
    finish_run,
    interrupted,
    open_run,
    run_device,
    run_key,
)

__all__ = ["train", "train_epoch", "TrainResult", "TrainingInterrupted", "run_key"]


def train(*, data_dir: Path, artifacts_dir: Path, config: TrainConfig = TrainConfig(),
          fold: int | str | None = 0, member: int = 0, resume: bool = False,
          force: bool = False, device: str = "auto", accelerated: bool | None = None,
          bf16: bool = False, on_epoch=None) -> TrainResult:
    """Train one member of one run (see module docstring). ``fold=None`` trains the final
    model, ``fold="random"`` the leaky clip-level contrast. Member ``member`` > 0 trains
    with seed ``config.seed + member`` into its own run folder, on the same split.
    ``accelerated``: the GPU path (``Session.start``), by default on CUDA only; ``bf16``:
    bf16 autocast (off by default: docs/experiments.md, the bf16 check).
    ``on_epoch(epoch, first_epoch)`` is called after each epoch trained (``first_epoch``:
    where this call started, > 1 after ``resume``), e.g. ``progress.JobBar.epoch``.

    The run folder is locked for the duration (``pipeline.core.locks``): a second training of
    the same run is refused with ``LockedError`` naming the process that holds it."""
    import torch

    from pipeline.core.locks import job_lock

    name = layout.member_run(layout.run_name(fold), member)
    with job_lock(layout.run_dir(artifacts_dir, name), "training of this run"):
        store = load_store(artifacts_dir, clips=load_index(data_dir))
        dev, group = run_device(device)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            run = open_run(store, index_record(data_dir), artifacts_dir=artifacts_dir,
                           config=config, fold=fold, member=member, resume=resume,
                           force=force, device=dev, group=group, accelerated=accelerated,
                           bf16=bf16)
            if isinstance(run, TrainResult):
                return run
            _epochs(run, on_epoch=on_epoch)
        return finish_run(run)


def _epochs(run: Run, *, on_epoch=None) -> None:
    """Train ``run`` from the epoch after its state's to the last (or an early stop)."""
    session = run.session
    try:
        for epoch in range(run.state["epoch"] + 1, run.config.epochs + 1):
            record = train_epoch(session.network, session.optimiser, session.schedule,
                                 session.features, session.labels, session.split,
                                 session.config, epoch=epoch, device=session.device,
                                 class_weights=session.class_weights,
                                 row_weights=session.row_weights, group=session.group,
                                 autocast=session.bf16, actors=session.actor_targets)
            if after_epoch(run, record, on_epoch):
                break
    except KeyboardInterrupt:
        raise interrupted([run]) from None


def _check_finite(loss: float, *, epoch: int, config: TrainConfig,
                  run: str | None = None) -> None:
    """Raise ``TrainingError`` naming the epoch (and ``run``) and the fix when ``loss``
    (the epoch's summed loss, read once after its last step) is NaN or infinite."""
    if not np.isfinite(loss):
        raise TrainingError(f"loss became {loss} in epoch {epoch}{f' of {run}' if run else ''}"
                            f": lower --lr (now "
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
    ``train`` does. ``autocast``: bf16 autocast (default: off). Returns the epoch's
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
    grad_norms, autocast = [], bool(autocast)
    t0 = time.perf_counter()
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size].to(features.device)
        x, y, lam, partner = augmented_batch(core, features, labels, index, config, generator,
                                             epoch=epoch, start=start, device=device)
        logits, loss = _forward(
            model, x, (y, None if actors is None else actors[index].to(device)), config,
            class_weights, lam, partner, device, autocast=autocast,
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
    norms = torch.stack(grad_norms).double().cpu().numpy() if grad_norms else np.zeros(0)
    totals = {"loss": float(loss_sum), "correct": int(correct)}  # the epoch's one read
    seconds = time.perf_counter() - t0
    _check_finite(totals["loss"], epoch=epoch, config=config)
    return {"epoch": epoch, "train_loss": totals["loss"] / len(order),
            "train_acc": totals["correct"] / len(order), "lr": schedule.get_last_lr()[0],
            "seconds": round(seconds, 3),  # loss and accuracy: this rank's share (rank 0's)
            "samples_per_s": len(order) * (group.world_size if group else 1) / seconds,
            "models_in_step": 1,  # (together: the models trained in each step)
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

    y, y_actor = targets
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x, normalised=True)
        actor_logits = None
        if y_actor is not None:
            logits, actor_logits = logits
        loss = batch_loss(logits, y, lam=lam, partner=partner, class_weights=class_weights,
                          row_weights=row_weights, label_smoothing=config.label_smoothing)
        if actor_logits is not None:
            loss = loss + config.adversary * batch_loss(actor_logits, y_actor, lam=lam,
                                                        partner=partner)
    return logits, loss
