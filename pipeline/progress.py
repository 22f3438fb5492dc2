"""Progress bars and logging: a bar on a terminal, silence in logs, CI and quiet runs.

No state of its own: whether bars are drawn follows the ``pipeline`` logger's level
(``--quiet`` raises it to WARNING) and tqdm's own check that stderr is a terminal.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("pipeline")


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
    """Set the ``pipeline`` logger's level and handler (the CLI's global options);
    ``quiet`` means warnings only, and with them no progress bars."""
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel("WARNING" if quiet else level.upper())
    log.propagate = False


def bar(*, total: int | None, desc: str, unit: str = "it", unit_scale: bool = False):
    """A tqdm bar on stderr. Off when the ``pipeline`` logger is set above INFO (quiet) or
    under CI; otherwise tqdm decides (``disable=None``: drawn only on a terminal)."""
    from tqdm.auto import tqdm

    off = log.level > logging.INFO or bool(os.environ.get("CI"))
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                disable=True if off else None, dynamic_ncols=True, leave=False)
