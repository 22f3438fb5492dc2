#!/usr/bin/env python3
"""Peak memory of ``ser predict`` on the hostile folder of ``tests/hostile_inputs.py``
(every kind of bad input beside good files), summed over the whole process tree (the CLI
and its joblib workers), sampled every 20 ms with psutil. Target: below 2 GB.

    python benchmarks/bench_hostile.py [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import hostile_inputs  # noqa: E402  (tests/, on the path above)

TARGET_BYTES = 2 * 1024 ** 3


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its descendants (0 for any that just ended)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = hostile_inputs.build(Path(tmp) / "in")
        command = [sys.executable, str(ROOT / "cli.py"), "-q", "predict", str(Path(tmp) / "in"),
                   "--jobs", str(args.jobs), "--output", str(Path(tmp) / "rows.csv")]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            peak = max(peak, tree_rss(process))
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    files = len(layout["good"]) + len(layout["errors"])
    print(f"hostile folder: {files} audio files ({len(layout['errors'])} hostile), "
          f"{len(layout['skipped'])} skipped; --jobs {args.jobs}; exit status {child.returncode}")
    print(f"peak memory of the process tree: {peak / 1024 ** 2:.0f} MiB "
          f"(target below {TARGET_BYTES / 1024 ** 3:.0f} GiB: "
          f"{'met' if peak < TARGET_BYTES else 'NOT met'}); wall {seconds:.1f} s")


if __name__ == "__main__":
    main()
