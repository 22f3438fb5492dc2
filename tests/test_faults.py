"""Tests of pipeline/core/faults.py: the test-only fault points exit exactly where named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.core.faults import FAULT_EXIT

PROGRAM = """
from pipeline.core import faults
faults.install(faults.from_environment())  # what an entry point (the command line) does
for step in range(3):
    print(step, flush=True)
    faults.point("train:step")
print("done", flush=True)
"""


def _run(fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SER_FAULT"}
    if fault is not None:
        env["SER_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.parametrize("fault, printed, status", [
    (None, "0 1 2 done", 0),
    ("train:step", "0", FAULT_EXIT),
    ("train:step@3", "0 1 2", FAULT_EXIT),
    ("write:other", "0 1 2 done", 0),  # another point: never reached
])
def test_the_process_leaves_at_the_named_point_and_time(fault, printed, status):
    done = _run(fault)
    assert done.returncode == status
    assert done.stdout.split() == printed.split()


def test_a_point_does_nothing_until_a_plan_is_installed(monkeypatch):
    from pipeline.core import faults

    monkeypatch.setenv("SER_FAULT", "train:step")
    monkeypatch.setattr(faults, "_installed", None)
    faults.point("train:step")  # the environment alone installs nothing: still here
    plan = faults.from_environment()
    assert (plan.target, plan.nth, plan.reached) == ("train:step", 1, 0)
    assert faults.from_environment({}) is None


@pytest.mark.parametrize("spec", ["@2", "train:step@0", "train:step@x"])
def test_a_bad_plan_is_refused(spec):
    from pipeline.core.faults import FaultPlan

    with pytest.raises(ValueError, match="POINT@N"):
        FaultPlan.parse(spec)


WORKERS = """
import sys
from pipeline.core import engines, faults
faults.install(faults.from_environment())

def task(item):
    faults.point(f"write:{item}")
    return item

try:
    print(list(engines.run(task, [1, 2, 3], jobs=2)))
except engines.WorkerKilled:
    print("killed")
"""


def test_the_installed_plan_reaches_worker_processes(tmp_path):
    """``engines.run`` carries the plan into its joblib workers, which have no entry
    point of their own: the worker that reaches the point leaves."""
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    repo = os.path.dirname(os.path.dirname(__file__))
    env = {**{k: v for k, v in os.environ.items() if k != "SER_FAULT"}, "PYTHONPATH": repo}
    plain = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                           text=True, cwd=tmp_path, timeout=120)
    assert plain.stdout.split() == ["[1,", "2,", "3]"], plain.stderr
    faulted = subprocess.run([sys.executable, str(script)], env={**env, "SER_FAULT": "write:2"},
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert faulted.stdout.split() == ["killed"], faulted.stderr
