#!/usr/bin/env python3
"""Prediction speed of the two scoring paths, side by side in one run: the plain install
(the shipped model's ONNX form under onnxruntime, no torch installed) and the torch path
(the shipped safetensors bundle).

- cold single file: whole ``ser predict FILE`` processes, the paths alternating, medians
  of ``--repeats`` runs, beside the Python start-up alone (``python -c pass``);
- batch: ``ser predict --jobs 2`` over ``--clips`` RAVDESS clips (the 7 test-time views,
  start-up included), each path ``--repeats`` times alternating; with ``--main DIR`` (a
  checkout of main) main's own ``ser predict`` too, the baseline the plain install must
  not fall below.

    python benchmarks/bench_predict.py [--clips 240] [--repeats 3] [--main DIR]
        [--light-python PATH]   # default: a fresh venv with 'pip install .', no extras
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "ravdess"
SHIPPED = ROOT / "pipeline" / "inference" / "shipped" / "ravdess-cnn"


def timed(command: list[str], *, cwd: Path | None = None, allowed=(0,)) -> float:
    """Seconds one whole process takes; exits with its error output if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if done.returncode not in allowed:
        raise SystemExit(f"{' '.join(command[:6])} ... failed ({done.returncode}): "
                         f"{done.stderr[-800:]}")
    return time.perf_counter() - started


def light_python(work: Path) -> Path:
    """A fresh venv holding ``pip install .`` of this checkout (no extras), checked to
    have no torch."""
    subprocess.run([sys.executable, "-m", "venv", str(work / "light")], check=True)
    python = work / "light" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c",
                    str(ROOT / "constraints.txt"), str(ROOT)], check=True)
    if subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0:
        raise SystemExit("the plain install has torch: it should not")
    return python


def medians(commands: dict[str, list[str]], repeats: int, **kwargs) -> dict[str, list[float]]:
    """Each command run ``repeats`` times, the commands alternating (so a noisy minute
    falls on all of them); one untimed warm-up each (page cache)."""
    for command in commands.values():
        timed(command, **kwargs)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            times[name].append(timed(command, **kwargs))
    return times


def report(title: str, times: dict[str, list[float]], unit=lambda s: f"{s:.2f} s") -> None:
    print(title)
    for name, runs in times.items():
        print(f"  {name:<44} median {unit(statistics.median(runs))}   "
              f"({', '.join(unit(s) for s in runs)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--main", type=Path, default=None, help="a checkout of main")
    parser.add_argument("--light-python", type=Path, default=None)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"no corpus at {SHARED}: this benchmark reads the real RAVDESS copy")
    files = [str(f) for f in sorted(SHARED.glob("Actor_*/03-01-*.flac"))[:args.clips]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        light = args.light_python or light_python(work)
        here = [sys.executable, str(ROOT / "cli.py"), "-q", "predict"]
        paths = {"plain install (ONNX, no torch)": [str(light), "-m", "pipeline", "-q",
                                                     "predict", "--bundle", "shipped"],
                 "torch path (safetensors)": [*here, "--bundle", f"{SHIPPED}.safetensors"]}
        if args.main:
            paths["main (its default path)"] = [sys.executable, str(args.main / "cli.py"), "-q",
                                                "predict"]
        start = medians({"python -c pass": [sys.executable, "-c", "pass"]}, args.repeats)
        report("Python start-up", start)
        single = medians({k: [*v, files[0]] for k, v in paths.items()}, args.repeats, cwd=work)
        report(f"cold single file ({Path(files[0]).name}, 7 views, whole process)", single)
        out = str(work / "out.csv")
        batch = medians({k: [*v, "--jobs", "2", "--overwrite", "-o", out, *files]
                         for k, v in paths.items()}, args.repeats, cwd=work, allowed=(0, 1))
        report(f"batch of {len(files)} clips, 2 workers, 7 views (start-up included)",
               {k: [len(files) / s for s in v] for k, v in batch.items()},
               unit=lambda r: f"{r:.1f} clips/s")


if __name__ == "__main__":
    main()
