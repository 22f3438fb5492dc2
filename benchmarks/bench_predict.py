#!/usr/bin/env python3
"""Prediction speed: one file from a cold shell, batch throughput over the whole real
corpus, and the same batch as a per-file loop in the style of the original ``infer.py``.

    python benchmarks/bench_predict.py [--bundle PATH] [--clips N]
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
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "ravdess"

PER_FILE_LOOP = r'''
import sys, time, numpy as np, librosa, torch
sys.path.insert(0, sys.argv[1])
from pipeline.inference import bundle as bundles
loaded = bundles.load(sys.argv[2])
paths = sys.argv[3:]
cfg = loaded.feature_config
torch.set_num_threads(1)
librosa.feature.mfcc(y=np.zeros(16000, dtype=np.float32), sr=16000)  # numba warm-up, not timed
started = time.perf_counter()
for path in paths:  # one file at a time: load, features, one forward pass
    y, sr = librosa.load(path, sr=cfg.sample_rate)
    y, _ = librosa.effects.trim(y, top_db=40)  # the energy trim of the original tool
    y = librosa.util.fix_length(y, size=cfg.window_samples)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=cfg.n_fft,
          hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmax=cfg.mel_fmax), top_db=cfg.top_db)
    x = np.stack([librosa.feature.mfcc(S=mel, n_mfcc=cfg.n_mels), mel])[None]
    with torch.no_grad():
        torch.softmax(loaded.model(torch.from_numpy(x.astype(np.float32))), 1)
print(time.perf_counter() - started)
'''


def timed(command: list[str], *, allowed: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in allowed:
        raise SystemExit(f"{' '.join(command[:5])} ... failed ({done.returncode}): {done.stderr[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None, help="default: the shipped bundle")
    parser.add_argument("--clips", type=int, default=None, help="default: every clip")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"no corpus at {SHARED}: this benchmark reads the real RAVDESS copy")
    from pipeline.inference.bundle import resolve

    bundle = str(resolve(args.bundle, artifacts_dir=ROOT / "artifacts"))
    files = sorted(SHARED.glob("Actor_*/03-01-*.flac"))[:args.clips]
    cli = [sys.executable, str(ROOT / "cli.py"), "-q"]
    one = files[0]
    timed([*cli, "predict", "--bundle", bundle, str(one)])  # page cache / numba cache warm
    singles = [timed([*cli, "predict", "--bundle", bundle, str(one)]) for _ in range(args.repeats)]
    print(f"bundle {bundle}; {len(files)} clips")
    print(f"single file from a cold shell (python ser predict FILE): median "
          f"{statistics.median(singles):.2f} s over {args.repeats} runs "
          f"({', '.join(f'{s:.2f}' for s in singles)})")
    listing = [str(f) for f in files]
    for label, extra in (("with the bundle's test-time views", []),
                         ("the clean window alone (--no-tta)", ["--no-tta"])):
        with tempfile.TemporaryDirectory() as tmp:
            # exit status 1: some clips have no detected speech and get an error row
            batch = timed([*cli, "predict", "--bundle", bundle, "--jobs", "2", *extra,
                           *listing, "--output", str(Path(tmp) / "out.csv")], allowed=(0, 1))
            failed = sum(1 for line in (Path(tmp) / "out.csv").read_text().splitlines()[1:]
                         if not line.endswith(","))
        print(f"batch, 2 workers, {label} (whole command, start-up included): {batch:.1f} s, "
              f"{len(files) / batch:.0f} clips/s ({failed} error rows)")
    out = subprocess.run([sys.executable, "-c", PER_FILE_LOOP, str(ROOT), bundle, *listing],
                         check=True, capture_output=True, text=True)
    loop = float(out.stdout.strip().splitlines()[-1])
    print(f"per-file loop in the style of infer.py (librosa, one clip per forward, start-up "
          f"excluded): {loop:.1f} s, {len(files) / loop:.0f} clips/s")


if __name__ == "__main__":
    main()
