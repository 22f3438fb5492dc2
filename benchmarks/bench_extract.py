#!/usr/bin/env python3
"""Extraction throughput on the real corpus: the original project's plain serial loop vs
the ``extract`` stage with 1 and 2 workers, on the same N clips, same K copies.

    python benchmarks/bench_extract.py --clips 1200 --baseline-clips 100

The baseline ("original style") does per clip: ``librosa.load(sr=16000)``, then per
augmented copy librosa's own ``effects.pitch_shift`` and ``effects.time_stretch``, noise
and a roll, then ``feature.melspectrogram`` + ``feature.mfcc``. It is slow, so it may run
on fewer clips (``--baseline-clips``) and is compared as clips per second.
Each variant runs in a fresh process; peak memory is the largest RSS of any one process
of its tree (the parent or one worker).
Also prints what one clip costs per step (decode, conditioning, speech detection, features, augmented copies).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core import layout  # noqa: E402

SHARED = ROOT.parent / "shared" / "ravdess"


def corpus_subset(clips: int, workdir: Path) -> Path:
    """A folder of symlinks to the first ``clips`` speech clips (sorted by actor, name)."""
    files = sorted(SHARED.glob("Actor_*/03-01-*.flac"))[:clips]
    for path in files:
        target = workdir / "corpus" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
    return workdir / "corpus"


# Runs a command and prints, last, the largest RSS (KiB) of any process of its tree.
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def measured(command: list[str], **kwargs) -> tuple[list[str], float]:
    """(the command's stdout lines, peak RSS in MB of its largest process)."""
    out = subprocess.run([sys.executable, "-c", PEAK, *command], check=True,
                         capture_output=True, text=True, **kwargs)
    lines = out.stdout.strip().splitlines()
    return lines[:-1], int(lines[-1]) / 1024


def run_stage(data_dir: Path, artifacts: Path, jobs: int, copies: int) -> dict:
    shutil.rmtree(artifacts, ignore_errors=True)
    command = [sys.executable, str(ROOT / "cli.py"), "-q", "--data-dir", str(data_dir),
               "--artifacts-dir", str(artifacts), "extract", "--jobs", str(jobs),
               "--copies", str(copies)]
    started = time.perf_counter()
    _, peak_mb = measured(command)
    seconds = time.perf_counter() - started
    record = json.loads(layout.features_manifest(artifacts).read_text())
    return {"seconds": seconds, "clips": record["clips"], "peak_mb": peak_mb}


BASELINE = r'''
import sys, time, numpy as np, librosa
paths, copies = sys.argv[1:-1], int(sys.argv[-1])
rng = np.random.default_rng(0)
def feats(y):
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=256, n_mels=64))
    return np.stack([librosa.feature.mfcc(S=mel, n_mfcc=64), mel])
librosa.feature.mfcc(y=np.zeros(16000, dtype=np.float32), sr=16000)  # numba warm-up, not timed
started = time.perf_counter()
for path in paths:
    y, sr = librosa.load(path, sr=16000)
    y = librosa.util.fix_length(y, size=48000)
    out = [feats(y)]
    for _ in range(copies):
        z = librosa.effects.pitch_shift(y, sr=sr, n_steps=rng.uniform(-2, 2))
        z = librosa.effects.time_stretch(z, rate=rng.uniform(0.9, 1.1))
        z = librosa.util.fix_length(z, size=48000)
        z = z + 0.005 * rng.standard_normal(z.size).astype(np.float32)
        z = np.roll(z, int(rng.uniform(-0.3, 0.3) * sr))
        out.append(feats(z))
print(time.perf_counter() - started)
'''


def run_baseline(paths: list[Path], copies: int) -> dict:
    lines, peak_mb = measured([sys.executable, "-c", BASELINE, *map(str, paths), str(copies)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    return {"seconds": float(lines[-1]), "clips": len(paths), "peak_mb": peak_mb}


def step_costs(paths: list[Path], copies: int) -> dict:
    """Median milliseconds per clip of each step, in this process, one thread."""
    import numpy as np
    import soundfile
    from threadpoolctl import threadpool_limits

    from pipeline.signal import frontend
    from pipeline.signal.augment import AugmentConfig, params_for, speech_features
    from pipeline.signal.features import FeatureConfig, clean_features

    config, augment = FeatureConfig(), AugmentConfig(copies=copies)
    fe = config.front_end
    times: dict[str, list[float]] = {"decode": [], "conditioning + resample": [],
                                     "speech detection + loudness": [], "clean features": [],
                                     "augmented copies": []}
    with threadpool_limits(1):
        for path in paths:
            t0 = time.perf_counter()
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            t1 = time.perf_counter()
            y = frontend.condition(samples, file_rate=rate, sample_rate=config.sample_rate,
                                   config=fe)
            t2 = time.perf_counter()
            speech = frontend.detect(y, sample_rate=config.sample_rate,
                                     window_samples=config.window_samples, config=fe).main_segment_audio()
            t3 = time.perf_counter()
            clean_features(speech, config)
            t4 = time.perf_counter()
            for copy in range(1, copies + 1):
                speech_features(speech, params_for(augment, seed=0, clip_id=path.stem, copy=copy),
                                config)
            t5 = time.perf_counter()
            for name, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                times[name].append(value * 1000)
    return {name: float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1200)
    parser.add_argument("--baseline-clips", type=int, default=100)
    parser.add_argument("--copies", type=int, default=None, help="default: the stage's default K")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"no corpus at {SHARED}: this benchmark reads the real RAVDESS copy")
    from pipeline.signal.augment import AugmentConfig

    copies = AugmentConfig().copies if args.copies is None else args.copies
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = corpus_subset(args.clips, work)
        data_dir = work / "data"
        for stage in (["download", "--source", str(corpus)], ["index"]):
            subprocess.run([sys.executable, str(ROOT / "cli.py"), "-q", "--data-dir",
                            str(data_dir), *stage], check=True, capture_output=True)
        paths = sorted(corpus.glob("*/*.flac"))
        print(f"{len(paths)} clips of {SHARED}, K = {copies} augmented copies "
              f"({len(paths) * (copies + 1)} tensors); {os.cpu_count()} cores")
        costs = step_costs(paths[:60], copies)
        total = sum(costs.values())
        print("per clip, one core (median of 60 clips): " + ", ".join(
            f"{name} {ms:.1f} ms" for name, ms in costs.items()) + f"; total {total:.1f} ms")
        floor = total * len(paths) / 1000 / min(2, os.cpu_count() or 1)
        rows = {}
        rows["original-style serial loop"] = run_baseline(paths[:args.baseline_clips], copies)
        for jobs in (1, 2):
            rows[f"extract stage, {jobs} worker(s)"] = run_stage(data_dir, work / f"a{jobs}", jobs, copies)
        print(f"{'variant':<32} {'clips':>6} {'seconds':>8} {'clips/s':>8} {'peak MB':>8}")
        for name, row in rows.items():
            print(f"{name:<32} {row['clips']:>6} {row['seconds']:>8.1f} "
                  f"{row['clips'] / row['seconds']:>8.1f} {row['peak_mb']:>8.0f}")
        rate = {name: row["clips"] / row["seconds"] for name, row in rows.items()}
        one, two = rate["extract stage, 1 worker(s)"], rate["extract stage, 2 worker(s)"]
        base = rate["original-style serial loop"]
        print(f"2 workers vs original loop: {two / base:.1f}x; 2 workers vs 1: {two / one:.2f}x")
        print(f"floor (step costs x clips / 2 cores, no overhead): {floor:.1f} s; 2-worker stage: "
              f"{rows['extract stage, 2 worker(s)']['seconds']:.1f} s "
              f"({floor / rows['extract stage, 2 worker(s)']['seconds']:.0%} of the floor's speed)")


if __name__ == "__main__":
    main()
