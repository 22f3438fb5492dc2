"""The epoch loop of several runs trained at once (``together``): the runs' models as one
``stack.StackedCNN`` with one AdamW and one one-cycle schedule, loaded from the runs'
sessions and given back to them after every epoch (``unstack``), so that what a run
checkpoints is always its own model, optimiser and schedule.

Runs of one stack take as many steps per epoch (the schedule is shared); their last
batches may differ in size (their training rows differ by a few clips, say). Such a step
is taken by each model alone (a stack of one), then the stack is reloaded in place: a
batch of another size would change a model's batch-norm statistics."""

from __future__ import annotations

import time

import numpy as np

from pipeline.core import faults
from pipeline.core.progress import log
from pipeline.training.batches import augmented_batch, derived_seed
from pipeline.training.loss import batch_loss
from pipeline.training.optim import optimiser_and_schedule
from pipeline.training.stack import (
    StackedCNN,
    stack_optimiser_state,
    unstack_optimiser_state,
)
from pipeline.training.train import _check_finite, _epoch_order


class StackedStep:
    """The runs (``run.Run``, or anything with a ``session``) of one group as one network.
    ``compiled``: through ``torch.compile``, falling back to eager mode, with a warning,
    where compiling or running the compiled network's first step fails."""

    def __init__(self, runs: list, *, compiled: bool = False):
        sessions = [run.session for run in runs]
        self.runs, self.sessions, first = runs, sessions, sessions[0]
        self.stack = StackedCNN([s.model for s in sessions]).to(first.device)
        self.optimiser, self.schedule = optimiser_and_schedule(
            self.stack, first.config, rows=len(first.split.train))
        self._load_optimiser()
        self.network, self.proven = self.stack, True
        if compiled:
            self.network, self.proven = _compile(self.stack), False

    def _load_optimiser(self) -> None:
        self.optimiser.load_state_dict(stack_optimiser_state([s.optimiser
                                                              for s in self.sessions]))
        self.schedule.load_state_dict(self.sessions[0].schedule.state_dict())

    def unstack(self) -> None:
        """Each run's model, optimiser and schedule as the stack has them now."""
        self.stack.unstack_into([s.model for s in self.sessions])
        unstack_optimiser_state(self.optimiser.state_dict(), [s.optimiser for s in self.sessions])
        for session in self.sessions:
            session.schedule.load_state_dict(self.schedule.state_dict())

    def reload(self) -> None:
        """The stack (in place), optimiser and schedule from the runs' sessions again."""
        self.stack.load_from([s.model for s in self.sessions])
        self._load_optimiser()

    def epoch(self, epoch: int) -> list[dict]:
        """One epoch of every run, a step of all at once per batch; each run's
        ``metrics.jsonl`` record (as ``train.train_epoch``'s, with ``models_in_step``).
        Raises ``TrainingError`` naming the run and epoch when a loss is not finite."""
        import torch

        sessions, first = self.sessions, self.sessions[0]
        device, features, batch = first.device, first.features, first.config.batch_size
        self.stack.train()
        draws = [torch.Generator(device=features.device).manual_seed(
            derived_seed(s.config.seed, epoch, 2)) for s in sessions]
        dropout = [torch.Generator(device=device).manual_seed(
            derived_seed(s.config.seed, epoch, 1)) for s in sessions]
        orders = [_epoch_order(s.split, s.config, epoch=epoch, group=None, generator=g)
                  for s, g in zip(sessions, draws)]
        loss_sums = torch.zeros(len(sessions), dtype=torch.float64, device=device)
        correct = torch.zeros(len(sessions), dtype=torch.int64, device=device)
        grad_norms, started = [], time.perf_counter()
        for start in range(0, max(len(order) for order in orders), batch):
            rows = [order[start:start + batch] for order in orders]
            sizes = [len(r) for r in rows]
            if len(set(sizes)) > 1:
                losses, hits, norms = self._ragged_step(rows, draws, dropout, epoch=epoch,
                                                        start=start)
                weights = torch.tensor(sizes, dtype=torch.float64).to(device)
            else:
                losses, hits, norms = self._step(rows, draws, dropout, epoch=epoch, start=start)
                weights = sizes[0]
            faults.point("train:step")
            loss_sums += losses.detach().double() * weights
            correct += hits
            if norms is not None:
                grad_norms.append(norms)
        return self._records(epoch, loss_sums, correct, grad_norms, started,
                             seen=[len(order) for order in orders])

    def _step(self, rows, draws, dropout, *, epoch: int, start: int):
        """One step of every run on its batch (all of one size): ``(losses (M,), hits (M,),
        gradient norms before clipping (M,) or None)``."""
        import torch

        sessions, device = self.sessions, self.sessions[0].device
        inputs, targets = [], []
        for session, index, generator in zip(sessions, rows, draws):
            x, y, lam, partner = augmented_batch(session.model, session.features,
                                                 session.labels, index, session.config,
                                                 generator, epoch=epoch, start=start,
                                                 device=device)
            weights = (None if session.row_weights is None
                       else session.row_weights[index].to(device))
            inputs.append(x)
            targets.append((y, dict(lam=lam, partner=partner, row_weights=weights,
                                    class_weights=session.class_weights,
                                    label_smoothing=session.config.label_smoothing)))
        x, masks = torch.stack(inputs, 1), self.stack.dropout_masks(len(rows[0]), dropout)
        # before the compiled network's first step: the batch-norm statistics it updates,
        # so that a step redone in eager mode updates them once
        saved = None if self.proven else [b.clone() for b in self.stack.buffers()]
        try:
            logits, losses = self._forward_backward(self.network, x, masks, targets)
        except Exception as exc:  # noqa: BLE001  (a compiler's failure: eager mode works)
            if self.proven:
                raise
            _fall_back(exc)
            with torch.no_grad():
                for buffer, before in zip(self.stack.buffers(), saved):
                    buffer.copy_(before)
            self.network = self.stack
            logits, losses = self._forward_backward(self.stack, x, masks, targets)
        self.proven = True
        clip = sessions[0].config.grad_clip
        norms = self.stack.clip_grad_norms_(clip).detach() if clip else None
        self.optimiser.step()
        self.schedule.step()
        self.stack.norm_steps += 1
        labels = torch.stack([y for y, _ in targets], 1)
        return losses, (logits.argmax(2) == labels).sum(0), norms

    def _forward_backward(self, network, x, masks, targets):
        import torch

        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16,
                            enabled=self.sessions[0].bf16):
            logits = network(x, masks)  # (batch, M, classes)
            losses = torch.stack([batch_loss(logits[:, m], y, **kw)
                                  for m, (y, kw) in enumerate(targets)])
        self.optimiser.zero_grad(set_to_none=True)
        losses.sum().backward()  # model m's gradients are those of its own loss
        return logits, losses

    def _ragged_step(self, rows, draws, dropout, *, epoch: int, start: int):
        """A step where the runs' batches differ in size: each model alone (a stack of
        one, from its session), then the stack reloaded. As ``_step``'s result."""
        import torch

        self.unstack()
        results = []
        for m, run in enumerate(self.runs):
            alone = StackedStep([run])
            results.append(alone._step([rows[m]], [draws[m]], [dropout[m]], epoch=epoch,
                                       start=start))
            alone.unstack()
        self.reload()
        losses, hits, norms = zip(*results)
        return (torch.cat(losses), torch.cat(hits),
                None if norms[0] is None else torch.cat(norms))

    def _records(self, epoch: int, loss_sums, correct, grad_norms, started: float, *,
                 seen: list[int]) -> list[dict]:
        import torch

        totals = loss_sums.cpu().numpy(), correct.cpu().numpy()  # the epoch's one read
        norms = (torch.stack(grad_norms).double().cpu().numpy() if grad_norms
                 else np.zeros((0, len(self.runs))))
        seconds = time.perf_counter() - started
        records = []
        for m, session in enumerate(self.sessions):
            _check_finite(float(totals[0][m]), epoch=epoch, config=session.config,
                          run=getattr(self.runs[m], "name", None))
            records.append({
                "epoch": epoch, "train_loss": float(totals[0][m]) / seen[m],
                "train_acc": int(totals[1][m]) / seen[m], "lr": self.schedule.get_last_lr()[0],
                "seconds": round(seconds, 3), "samples_per_s": seen[m] / seconds,
                "models_in_step": len(self.sessions),
                **({"grad_norm_median": float(np.median(norms[:, m])),
                    "grad_norm_max": float(norms[:, m].max())} if len(norms) else {})})
        return records


def _compile(stack):
    """``torch.compile(stack)``, or ``stack`` where that fails at once."""
    import torch

    try:
        return torch.compile(stack)
    except Exception as exc:  # noqa: BLE001
        _fall_back(exc)
        return stack


def _fall_back(exc: Exception) -> None:
    first = str(exc).splitlines()[0] if str(exc) else ""
    log.warning("torch.compile failed here (%s: %s); training in eager mode",
                type(exc).__name__, first)
