"""Progress bars and logging: a bar on a terminal, silence in logs, CI and quiet runs.

No state of its own: whether bars are drawn follows the ``pipeline`` logger's level
(``--quiet`` raises it to WARNING) and tqdm's own check that stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("pipeline")
_bars: bool | None = None  # set by configure: False turns every bar off


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, so a caller that
    swaps it (click's CliRunner, pytest's capture) never leaves us a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass

    def emit(self, record: logging.LogRecord) -> None:
        """Through ``tqdm.write`` once tqdm is loaded: the line goes above any bar on the
        terminal, which is redrawn under it."""
        if "tqdm" not in sys.modules:
            return super().emit(record)
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001  (logging's contract: never raise from emit)
            self.handleError(record)


def configure(*, level: str = "INFO", quiet: bool = False, bars: bool | None = None) -> None:
    """Set the ``pipeline`` logger's level and handler (the CLI's global options);
    ``quiet`` means warnings only, and with them no progress bars. ``bars``: False turns
    every bar off (the command line does under CI), None lets tqdm decide (drawn only on
    a terminal)."""
    global _bars
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel("WARNING" if quiet else level.upper())
    log.propagate = False
    _bars = bars


def bar(*, total: int | None, desc: str, unit: str = "it", unit_scale: bool = False):
    """A tqdm bar on stderr. Off when the ``pipeline`` logger is set above INFO (quiet) or
    ``configure`` turned bars off; otherwise tqdm decides (``disable=None``: drawn only on
    a terminal)."""
    from tqdm.auto import tqdm

    off = log.level > logging.INFO or _bars is False
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                disable=True if off else None, dynamic_ncols=True, leave=False)


class JobBar:
    """One bar for a whole training job (``ser train``): every epoch of every member of
    every run, with tqdm's time estimate. Runs already trained, and epochs a resumed run
    already has, are taken off the total rather than counted, so the estimate is of the
    work still to do. A context manager."""

    def __init__(self, *, runs: int, members: int, epochs: int):
        self.runs, self.members, self.epochs = runs, members, epochs
        self.bar = bar(total=runs * members * epochs, desc="train", unit="epoch")
        self.first_epoch = 0

    def __enter__(self) -> "JobBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def start(self, *, run_index: int, run: str, member: int) -> None:
        """Before a member's training: names it in the bar."""
        self.bar.set_description(f"train {run} (run {run_index + 1}/{self.runs}, member "
                                 f"{member + 1}/{self.members})")
        self.first_epoch = 0

    def start_together(self) -> None:
        """Before every run and member trains at once (``training.together``)."""
        self.bar.set_description(f"train {self.runs} run(s) x {self.members} member(s) "
                                 "together")

    def epoch(self, epoch: int, first_epoch: int) -> None:
        """After each trained epoch (``train``'s ``on_epoch``); ``first_epoch`` > 1 when
        the run resumed from a checkpoint."""
        if epoch == first_epoch:
            self.bar.total -= first_epoch - 1
        self.bar.update(1)

    def finished(self, *, cached: bool, epochs_run: int) -> None:
        """After a member: a cached one comes off the total; one stopped early gives back
        the epochs it did not run."""
        self.bar.total -= self.epochs if cached else self.epochs - epochs_run
        self.bar.refresh()
