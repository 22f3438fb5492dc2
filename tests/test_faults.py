"""Tests of pipeline/core/faults.py: the test-only fault points exit exactly where named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.core.faults import FAULT_EXIT

PROGRAM = """
from pipeline.core import faults
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
