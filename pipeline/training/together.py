"""Training several runs at once: the ensemble members of a run and the folds of a CV
trained as one network (``stack.StackedCNN``), so that one step does the work of all of
them. On a GPU one model at the recipe's batch leaves the chip idle (issue 32: launch
bound); M models cost about one model's launches.

Each run stays its own: it is opened, checkpointed after every epoch, booked
(``metrics.jsonl``, early stopping) and finished through ``run`` exactly as when trained
alone, with its own lock, seed, split, normalisation, class weights, epoch order,
SpecAugment, mixup and dropout draws (from generators seeded by (its seed, epoch), as
alone). So ``--resume`` after a kill continues every run from its own checkpoint, in
either mode, and a model's weights equal those of training it alone up to float rounding
(tested on the CPU; on CUDA alone-dropout draws from another stream, so there they equal
in distribution only).

Runs are stacked when their recipes differ only in the seed and they have as many
training rows and epochs done; others train in another stack. A run that stops early
leaves the stack, and the rest go on. Not stacked: the speaker adversary and
squeeze-and-excitation (``stack.unsupported``) and torchrun, where each run trains in
turn on every process (DDP over one model): there the processes already share each
step's work.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pipeline.core import faults, layout
from pipeline.core.hashing import stable_json
from pipeline.core.progress import log
from pipeline.corpus.index import index_record, load_index
from pipeline.corpus.store import load_store
from pipeline.network.recipe import TrainConfig
from pipeline.training.batches import augmented_batch, derived_seed
from pipeline.training.loss import batch_loss
from pipeline.training.optim import optimiser_and_schedule
from pipeline.training.run import (
    Run,
    TrainResult,
    after_epoch,
    finish_run,
    interrupted,
    open_run,
    run_device,
)
from pipeline.training.stack import (
    StackedCNN,
    stack_optimiser_state,
    unstack_optimiser_state,
    unsupported,
)
from pipeline.training.train import _check_finite, _epoch_order, train


def refused(config: TrainConfig, group) -> str | None:
    """Why runs of ``config`` cannot be stacked (under torchrun ``group``), or None."""
    if group is not None:
        return "under torchrun each run trains in turn on every process"
    if config.adversary:
        return "the speaker adversary is not stacked"
    return unsupported(config.model)


def train_together(*, data_dir: Path, artifacts_dir: Path, targets: list[tuple],
                   config: TrainConfig = TrainConfig(), resume: bool = False,
                   force: bool = False, device: str = "auto", accelerated: bool | None = None,
                   compiled: bool | None = None, on_epoch=None,
                   on_finished=None) -> list[TrainResult]:
    """Train every ``(fold, member)`` of ``targets`` (as ``train.train`` would, one by
    one), stacked where they can be (module docstring); one ``TrainResult`` per target, in
    order. ``compiled``: run the stacked network through ``torch.compile`` (default: on
    CUDA), falling back to eager mode, with a warning, where compiling fails.
    ``on_epoch(epoch, first_epoch)``: after each epoch of each run; ``on_finished(result)``:
    as each run is found cached or finishes. Every run's folder is locked for the
    duration; raises ``LockedError`` when one is held."""
    import torch

    from pipeline.core.locks import job_lock

    dev, group = run_device(device)
    why = refused(config, group)
    if why:
        log.info("training one run at a time: %s", why)
        results = []
        for fold, member in targets:
            results.append(train(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config,
                                 fold=fold, member=member, resume=resume, force=force,
                                 device=device, accelerated=accelerated, on_epoch=on_epoch))
            _call(on_finished, results[-1])
        return results
    names = [layout.member_run(layout.run_name(fold), member) for fold, member in targets]
    with ExitStack() as locks:
        for name in names:
            locks.enter_context(job_lock(layout.run_dir(artifacts_dir, name),
                                         "training of this run"))
        store = load_store(artifacts_dir, clips=load_index(data_dir))
        index = index_record(data_dir)
        compiled = dev.type == "cuda" if compiled is None else compiled
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            features = None
            opened = []
            for fold, member in targets:
                opened.append(open_run(store, index, artifacts_dir=artifacts_dir, config=config,
                                       fold=fold, member=member, resume=resume, force=force,
                                       device=dev, group=None, accelerated=accelerated,
                                       features=features))
                if isinstance(opened[-1], Run):  # the rows, once, for every run
                    features = opened[-1].session.features
                else:
                    _call(on_finished, opened[-1])
            live = [run for run in opened if isinstance(run, Run)]
            done = {}
            try:
                for runs in _groups(live):
                    done.update(_train_group(runs, compiled=compiled, on_epoch=on_epoch,
                                             on_finished=on_finished))
            except KeyboardInterrupt:
                raise interrupted([run for run in live if run.name not in done]) from None
    return [done[run.name] if isinstance(run, Run) else run for run in opened]


def _groups(runs: list[Run]) -> list[list[Run]]:
    """``runs`` in stackable groups: the same recipe but the seed, as many training rows
    (so as many steps per epoch) and as many epochs done, on the same path."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        recipe = {k: v for k, v in run.config.member_key().items() if k != "seed"}
        key = (stable_json(recipe), len(run.session.split.train), run.state["epoch"],
               run.session.accelerated)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def _train_group(runs: list[Run], *, compiled: bool, on_epoch,
                 on_finished) -> dict[str, TrainResult]:
    """Train ``runs`` (one group) to their end, stacked; each finished as it ends."""
    done = {}
    while runs:
        log.info("training %d models in one step: %s", len(runs),
                 ", ".join(run.name for run in runs))
        step = StackedStep(runs, compiled=compiled)
        stopped = []
        for epoch in range(runs[0].state["epoch"] + 1, runs[0].config.epochs + 1):
            records = step.epoch(epoch)
            step.unstack()
            seconds = records[0]["seconds"]
            log.info("epoch %d: %d models, %.0f samples/s in all", epoch, len(runs),
                     sum(len(run.session.split.train) for run in runs) / max(seconds, 1e-9))
            stopped = [run for run, record in zip(runs, records)
                       if after_epoch(run, record, on_epoch)]
            if stopped:
                break
        for run in stopped or runs:
            done[run.name] = finish_run(run)
            _call(on_finished, done[run.name])
        runs = [run for run in runs if run.name not in done]
    return done


def _call(callback, *args) -> None:
    if callback is not None:
        callback(*args)


class StackedStep:
    """The runs of one group as one ``StackedCNN`` with one AdamW and one-cycle schedule,
    loaded from (and given back to, ``unstack``) the runs' own sessions."""

    def __init__(self, runs: list[Run], *, compiled: bool):
        sessions = [run.session for run in runs]
        self.runs, self.sessions = runs, sessions
        first = sessions[0]
        self.stack = StackedCNN([s.model for s in sessions]).to(first.device)
        self.optimiser, self.schedule = optimiser_and_schedule(
            self.stack, first.config, rows=len(first.split.train))
        self.optimiser.load_state_dict(stack_optimiser_state([s.optimiser for s in sessions]))
        self.schedule.load_state_dict(first.schedule.state_dict())
        self.forward = Compiled(self.stack) if compiled else self.stack

    def unstack(self) -> None:
        """Each run's model, optimiser and schedule as the stack has them now."""
        self.stack.unstack_into([s.model for s in self.sessions])
        unstack_optimiser_state(self.optimiser.state_dict(), [s.optimiser for s in self.sessions])
        for session in self.sessions:
            session.schedule.load_state_dict(self.schedule.state_dict())

    def epoch(self, epoch: int) -> list[dict]:
        """One epoch of every run, a step of all at once per batch; each run's
        ``metrics.jsonl`` record (as ``train.train_epoch``'s, with ``models_in_step``).
        Raises ``TrainingError`` naming the epoch when a run's loss is not finite."""
        import torch

        sessions, first = self.sessions, self.sessions[0]
        device, features, count = first.device, first.features, len(sessions)
        self.stack.train()
        draws = [torch.Generator(device=features.device).manual_seed(
            derived_seed(s.config.seed, epoch, 2)) for s in sessions]
        dropout = [torch.Generator(device=device).manual_seed(
            derived_seed(s.config.seed, epoch, 1)) for s in sessions]
        orders = [_epoch_order(s.split, s.config, epoch=epoch, group=None, generator=g)
                  for s, g in zip(sessions, draws)]
        loss_sums = torch.zeros(count, dtype=torch.float64, device=device)
        correct = torch.zeros(count, dtype=torch.int64, device=device)
        grad_norms, started = [], time.perf_counter()
        for start in range(0, len(orders[0]), first.config.batch_size):
            rows = [order[start:start + first.config.batch_size] for order in orders]
            losses, hits = self._step(rows, draws, dropout, epoch=epoch, start=start)
            if first.config.grad_clip:
                grad_norms.append(self.stack.clip_grad_norms_(first.config.grad_clip).detach())
            self.optimiser.step()
            self.schedule.step()
            self.stack.norm_steps += 1
            faults.point("train:step")
            loss_sums += losses.detach().double() * len(rows[0])
            correct += hits
        return self._records(epoch, loss_sums, correct, grad_norms, started,
                             seen=len(orders[0]))

    def _step(self, rows, draws, dropout, *, epoch: int, start: int):
        """Forward and backward of one batch of every run: ``(losses (M,), hits (M,))``."""
        import torch

        sessions, device = self.sessions, self.sessions[0].device
        inputs, losses_of = [], []
        for session, index, generator in zip(sessions, rows, draws):
            x, y, lam, partner = augmented_batch(session.model, session.features,
                                                 session.labels, index, session.config,
                                                 generator, epoch=epoch, start=start,
                                                 device=device)
            weights = (None if session.row_weights is None
                       else session.row_weights[index].to(device))
            inputs.append(x)
            losses_of.append((y, dict(lam=lam, partner=partner, row_weights=weights,
                                      class_weights=session.class_weights,
                                      label_smoothing=session.config.label_smoothing)))
        masks = self.stack.dropout_masks(len(rows[0]), dropout)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=sessions[0].accelerated):
            logits = self.forward(torch.stack(inputs, 1), masks)  # (batch, M, classes)
            losses = torch.stack([batch_loss(logits[:, m], y, **kw)
                                  for m, (y, kw) in enumerate(losses_of)])
        self.optimiser.zero_grad(set_to_none=True)
        losses.sum().backward()  # model m's gradients are those of its own loss
        labels = torch.stack([y for y, _ in losses_of], 1)
        return losses, (logits.argmax(2) == labels).sum(0)

    def _records(self, epoch: int, loss_sums, correct, grad_norms, started: float, *,
                 seen: int) -> list[dict]:
        import torch

        totals = loss_sums.cpu().numpy(), correct.cpu().numpy()  # the epoch's one read
        norms = (torch.stack(grad_norms).double().cpu().numpy() if grad_norms
                 else np.zeros((0, len(self.runs))))
        seconds = time.perf_counter() - started
        records = []
        for m, session in enumerate(self.sessions):
            _check_finite(float(totals[0][m]), epoch=epoch, config=session.config)
            records.append({
                "epoch": epoch, "train_loss": float(totals[0][m]) / seen,
                "train_acc": int(totals[1][m]) / seen, "lr": self.schedule.get_last_lr()[0],
                "seconds": round(seconds, 3), "samples_per_s": seen / seconds,
                "models_in_step": len(self.sessions),
                **({"grad_norm_median": float(np.median(norms[:, m])),
                    "grad_norm_max": float(norms[:, m].max())} if len(norms) else {})})
        return records


class Compiled:
    """``torch.compile(stack)``, or ``stack`` itself from the first call where compiling
    or running the compiled network fails (a platform without a compiler, say); the
    failure is logged once as a warning."""

    def __init__(self, stack):
        import torch

        self.stack, self.network = stack, stack
        try:
            self.network = torch.compile(stack)
        except Exception as exc:  # noqa: BLE001  (any failure: eager mode works)
            self._fall_back(exc)

    def __call__(self, x, masks):
        if self.network is self.stack:
            return self.stack(x, masks)
        try:
            return self.network(x, masks)
        except Exception as exc:  # noqa: BLE001
            self._fall_back(exc)
            return self.stack(x, masks)

    def _fall_back(self, exc: Exception) -> None:
        log.warning("torch.compile is not available here (%s: %s); training in eager mode",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        self.network = self.stack
