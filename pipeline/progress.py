"""Progress bars and logging: a bar on a terminal, silence in logs and CI."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("pipeline")

_quiet = False


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, so a caller that
    swaps it (click's CliRunner, pytest's capture) never leaves us a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(*, level: str = "INFO", quiet: bool = False) -> None:
    """Set the log level and whether progress bars may be drawn (CLI global options)."""
    global _quiet
    _quiet = quiet
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel("WARNING" if quiet else level.upper())
    log.propagate = False


def bars_enabled() -> bool:
    return not _quiet and sys.stderr.isatty() and not os.environ.get("CI")


def bar(*, total: int | None, desc: str, unit: str = "it", unit_scale: bool = False):
    """A tqdm bar on stderr, disabled when quiet or not on a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale,
                disable=not bars_enabled(), dynamic_ncols=True, leave=False)
