#!/usr/bin/env python3
"""Peak memory of ``predict --windows`` on long recordings: a 10-minute and a 60-minute
file built from ``../shared/ravdess`` clips (48 kHz, clips back to back with a second of
room noise between them), each scored by ``ser predict FILE --windows -o X.csv -j 1``
in a fresh process. Prints each run's peak RSS, wall time and segment count, and the
ratio of the two peaks (the target: the 60-minute file under 800 MB and within 15 % of
the 10-minute file's peak, since long files are decoded and scored block by block).

    python benchmarks/bench_long.py --minutes 10 60
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "ravdess"
RATE = 48000
# Runs a command and prints, last, the largest RSS (KiB) of any process of its tree.
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def build(path: Path, minutes: float) -> None:
    """Write ``minutes`` of RAVDESS speech to ``path`` (16-bit WAV), clip by clip, so
    this process never holds more than one clip."""
    import soundfile

    clips = sorted(SHARED.glob("Actor_*/03-01-*.flac"))
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * RATE)
    written = 0
    with soundfile.SoundFile(str(path), "w", RATE, 1, subtype="PCM_16") as out:
        for k in range(10 ** 9):
            samples, rate = soundfile.read(str(clips[k % len(clips)]), dtype="float32")
            assert rate == RATE
            mono = samples if samples.ndim == 1 else samples.mean(axis=1)
            gap = (3e-3 * rng.standard_normal(RATE)).astype(np.float32)
            piece = np.concatenate([mono, gap])[:total - written]
            out.write(piece)
            written += piece.size
            if written >= total:
                return


def score(path: Path, out: Path) -> tuple[float, float, int]:
    """(peak RSS in MB of the predict process, wall seconds, timeline rows)."""
    command = [sys.executable, str(ROOT / "cli.py"), "-q", "predict", str(path), "--windows",
               "-o", str(out), "-j", "1"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], check=True,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_mb = int(done.stdout.strip().splitlines()[-1]) / 1024
    with open(out, newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    return peak_mb, seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    args = parser.parse_args()
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = Path(tmp) / f"talk-{minutes:g}min.wav"
            build(path, minutes)
            peak, seconds, rows = score(path, Path(tmp) / f"timeline-{minutes:g}.csv")
            peaks.append(peak)
            print(f"{minutes:5g} min ({path.stat().st_size / 1e6:.0f} MB WAV): peak RSS "
                  f"{peak:6.0f} MB, {seconds:6.1f} s, {rows} timeline rows", flush=True)
            path.unlink()
    if len(peaks) > 1:
        print(f"peak of the longest / the shortest: {peaks[-1] / peaks[0]:.3f}")


if __name__ == "__main__":
    main()
