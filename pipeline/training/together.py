"""Training several runs at once: the ensemble members of a run and the folds of a CV
trained as one network (``stack.StackedCNN``; the loop: ``stacked_loop``), so that one
step does the network work of all of them. On a GPU one model at the recipe's batch
leaves the chip idle (issue 32: launch bound); M models stacked cost about one model's
network launches (each model's batch preparation is still its own).

Each run stays its own: it is opened, checkpointed after every epoch, booked
(``metrics.jsonl``, early stopping) and finished through ``run`` exactly as when trained
alone, with its own lock, seed, split, normalisation, class weights, epoch order,
SpecAugment, mixup and dropout draws (from generators seeded by (its seed, epoch), as
alone). So ``--resume`` after a kill continues every run from its own checkpoint, in
either mode, and a model's weights equal those of training it alone up to float rounding
(tested on the CPU; on CUDA alone-dropout draws from another stream, so there they equal
in distribution only).

Runs are stacked when their recipes differ only in the seed and they take as many steps
per epoch and have as many epochs done; others train in another stack. A run that stops
early leaves the stack, and the rest go on. Not stacked: the speaker adversary and
squeeze-and-excitation (``stack.unsupported``) and torchrun, where each run trains in
turn on every process (DDP over one model): there the processes already share each
step's work.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path

from pipeline.core import layout
from pipeline.core.hashing import stable_json
from pipeline.core.progress import log
from pipeline.corpus.index import index_record, load_index
from pipeline.corpus.store import load_store
from pipeline.network.recipe import TrainConfig
from pipeline.training.run import (
    Run,
    TrainResult,
    after_epoch,
    finish_run,
    interrupted,
    open_run,
    run_device,
)
from pipeline.training.stack import unsupported
from pipeline.training.stacked_loop import StackedStep
from pipeline.training.train import train


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
                   compiled: bool | None = None, bf16: bool = False, on_epoch=None,
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
                                 device=device, accelerated=accelerated, bf16=bf16,
                                 on_epoch=on_epoch))
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
                                       features=features, bf16=bf16))
                if isinstance(opened[-1], Run):  # the rows, once, for every run
                    features = opened[-1].session.features
                else:
                    _call(on_finished, opened[-1])
            live, done = [run for run in opened if isinstance(run, Run)], {}
            try:
                for runs in _groups(live):
                    _train_group(runs, done, compiled=compiled, on_epoch=on_epoch,
                                 on_finished=on_finished)
            except KeyboardInterrupt:  # the runs not finished
                raise interrupted([run for run in live if run.name not in done]) from None
    return [done[run.name] if isinstance(run, Run) else run for run in opened]


def _groups(runs: list[Run]) -> list[list[Run]]:
    """``runs`` in stackable groups: the same recipe but the seed, as many steps per epoch
    (so one schedule), as many epochs done, on the same path."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        recipe = {k: v for k, v in run.config.member_key().items() if k != "seed"}
        steps = math.ceil(len(run.session.split.train) / run.config.batch_size)
        key = (stable_json(recipe), steps, run.state["epoch"], run.session.accelerated,
               run.session.bf16)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def _train_group(runs: list[Run], done: dict, *, compiled: bool, on_epoch,
                 on_finished) -> None:
    """Train ``runs`` (one group) to their end, stacked; each finished as it ends, into
    ``done`` (name: ``TrainResult``)."""
    while runs:
        if runs[0].state["epoch"] < runs[0].config.epochs:
            log.info("training %d models in one step: %s", len(runs),
                     ", ".join(run.name for run in runs))
        step = StackedStep(runs, compiled=compiled)
        stopped = []
        for epoch in range(runs[0].state["epoch"] + 1, runs[0].config.epochs + 1):
            records = step.epoch(epoch)
            step.unstack()
            log.info("epoch %d: %d models, %.0f samples/s in all", epoch, len(runs),
                     sum(record["samples_per_s"] for record in records))
            stopped = [run for run, record in zip(runs, records)
                       if after_epoch(run, record, on_epoch)]
            if stopped:
                break
        for run in stopped or runs:
            done[run.name] = finish_run(run)
            _call(on_finished, done[run.name])
        runs = [run for run in runs if run.name not in done]


def _call(callback, *args) -> None:
    if callback is not None:
        callback(*args)
