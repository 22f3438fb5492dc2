"""Test-only fault injection, so tests can kill a run at an exact step instead of racing
a timer.

``SER_FAULT=<point>`` (or ``<point>@<n>``: the n-th time, default the first) makes the
process leave at once with ``os._exit(FAULT_EXIT)`` when it reaches that point: no
``finally`` blocks, no temporary-file cleanup, no flushing, as ``kill -9`` would. The
points:

- ``write:<file name>``: an atomic write of that file (``stages.atomic_path``, feature
  shards), after the temporary file is complete and before it is renamed into place;
- ``train:step``: after an optimiser step, in the middle of an epoch.

Unset (always, outside tests), ``point`` is one dictionary lookup.
"""

from __future__ import annotations

import os

FAULT_EXIT = 86  # an exit status no stage uses, so a test can tell the fault from a failure
_reached: dict[str, int] = {}


def point(name: str) -> None:
    """Exit the process here if ``SER_FAULT`` names this point (see module docstring)."""
    wanted = os.environ.get("SER_FAULT")
    if not wanted:
        return
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(nth or 1):
        os._exit(FAULT_EXIT)
