"""Test-only fault injection, so tests can kill a run at an exact step instead of racing
a timer.

A ``FaultPlan`` names a point and the time it is reached (``<point>`` or ``<point>@<n>``:
the n-th time, default the first); once installed with ``install``, reaching it makes the
process leave at once with ``os._exit(FAULT_EXIT)``: no ``finally`` blocks, no
temporary-file cleanup, no flushing, as ``kill -9`` would. Nothing is installed unless a
process entry point does it: the command line installs the plan that ``SER_FAULT`` names
(``from_environment``), and ``engines.run`` carries the installed plan into its worker
processes. The points:

- ``write:<file name>``: an atomic write of that file (``atomic.atomic_path``, feature
  shards), after the temporary file is complete and before it is renamed into place;
- ``train:step``: after an optimiser step, in the middle of an epoch.

With no plan installed (always, outside tests), ``point`` is one comparison with None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

FAULT_EXIT = 86  # an exit status no stage uses, so a test can tell the fault from a failure
ENVIRONMENT = "SER_FAULT"


@dataclass
class FaultPlan:
    """Leave the process the ``nth`` time the point ``target`` is reached; ``reached``
    counts the times so far in this process."""

    target: str
    nth: int = 1
    reached: int = 0

    @classmethod
    def parse(cls, spec: str) -> "FaultPlan":
        """``"<point>"`` or ``"<point>@<n>"`` (n ≥ 1); raises ``ValueError`` otherwise."""
        target, _, nth = spec.partition("@")
        if not target or (nth and (not nth.isdigit() or int(nth) < 1)):
            raise ValueError(f"{ENVIRONMENT}={spec!r}: expected POINT or POINT@N (N >= 1)")
        return cls(target, int(nth or 1))

    def reach(self, name: str) -> None:
        if name != self.target:
            return
        self.reached += 1
        if self.reached == self.nth:
            os._exit(FAULT_EXIT)


_installed: FaultPlan | None = None


def from_environment(environ: Mapping[str, str] = os.environ) -> FaultPlan | None:
    """The plan ``SER_FAULT`` names in ``environ``, or None when it is unset or empty."""
    spec = environ.get(ENVIRONMENT, "")
    return FaultPlan.parse(spec) if spec else None


def install(plan: FaultPlan | None) -> None:
    """Make ``plan`` the one ``point`` acts on in this process (None: no faults)."""
    global _installed
    _installed = plan


def installed() -> FaultPlan | None:
    """The plan installed in this process, if any (what ``engines`` hands its workers)."""
    return _installed


def point(name: str) -> None:
    """Leave the process here if the installed plan names this point and time."""
    if _installed is not None:
        _installed.reach(name)


def carrying(function: Callable, plan: FaultPlan | None) -> Callable:
    """``function`` wrapped so that, in whatever process runs it, ``plan`` is installed
    first (a worker process of ``engines`` has none of its own)."""
    if plan is None:
        return function
    return _Carried(function, plan)


@dataclass
class _Carried:
    function: Callable
    plan: FaultPlan

    def __call__(self, *args, **kwargs):
        if _installed is None:
            install(self.plan)
        return self.function(*args, **kwargs)
