#!/usr/bin/env python3
"""Score ``scripts/experiment.py`` runs on their validation actors as recorded, and on
copies degraded the way other recordings differ from RAVDESS's studio: an 8 kHz
telephone channel, pink noise, room reverberation, and a noisy telephone call. Every copy
goes through the full front end (``predict_files``), as a user's file would. Test folds
and URDU are never looked at here.

    python scripts/degraded_validation.py fe-base rec1 --folds 0,2

Each run is scored at its last epoch (what the default recipe keeps) on the clean window.
Prints validation UA per condition and run, the mean over folds, and the largest share of
clips given one emotion (a bias towards one answer shows there first).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONDITIONS = ("clean", "telephone", "pink 10 dB", "reverb", "phone+noise")


def active_power(y: np.ndarray, rate: int) -> float:
    """Mean power of the louder half of 20 ms frames: the speech, not the pauses."""
    frame = int(0.02 * rate)
    if y.size < frame:
        return float(np.mean(np.square(y, dtype=np.float64))) if y.size else 1e-12
    usable = y[: y.size // frame * frame].reshape(-1, frame).astype(np.float64)
    powers = np.sort(np.mean(usable ** 2, axis=1))
    return float(np.mean(powers[powers.size // 2:])) or 1e-12


def degrade(y: np.ndarray, rate: int, condition: str, seed: int) -> tuple[np.ndarray, int]:
    """One condition applied to a mono recording ``y`` at ``rate`` Hz; returns the copy
    and its rate."""
    from pipeline.signal import channel
    from pipeline.signal.audio import resample

    rng = np.random.default_rng(seed)

    def noisy(signal: np.ndarray, snr_db: float) -> np.ndarray:
        noise = channel.coloured_noise(signal.size, beta=1.0, rng=rng)
        return signal + noise * np.float32(np.sqrt(active_power(signal, rate) / 10 ** (snr_db / 10)))

    def phone(signal: np.ndarray) -> tuple[np.ndarray, int]:
        narrow = resample(signal, orig_sr=rate, target_sr=8000)
        return channel.telephone_band(narrow, sample_rate=8000), 8000

    if condition == "clean":
        return y, rate
    if condition == "telephone":
        return phone(y)
    if condition == "pink 10 dB":
        return noisy(y, 10.0), rate
    if condition == "reverb":
        return channel.reverberate(y, rt60=0.5, drr_db=0.0, sample_rate=rate, rng=rng), rate
    if condition == "phone+noise":
        return phone(noisy(y, 15.0))
    raise ValueError(condition)


def write_copies(clips, out: Path) -> dict[str, list[Path]]:
    import soundfile

    files: dict[str, list[Path]] = {c: [] for c in CONDITIONS}
    for clip in clips:
        samples, rate = soundfile.read(clip.path, dtype="float32")
        mono = samples if samples.ndim == 1 else samples.mean(axis=1)
        seed = int.from_bytes(hashlib.sha256(clip.clip_id.encode()).digest()[:4], "little")
        for condition in CONDITIONS:
            copy, copy_rate = degrade(mono, rate, condition, seed)
            path = out / f"{clip.clip_id}.{condition.replace(' ', '').replace('+', '-')}.wav"
            soundfile.write(path, copy, copy_rate, subtype="FLOAT")
            files[condition].append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--folds", default="0,2")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    from experiment_runs import last_epoch_scorer
    from pipeline.core import layout
    from pipeline.core.labels import EMOTIONS
    from pipeline.core.metrics import confusion, summarise
    from pipeline.corpus.index import load_index
    from pipeline.inference.predict import predict_files
    from pipeline.signal.views import CLEAN

    index = load_index(Path("data"))
    folds = sorted({clip.fold for clip in index})
    scores: dict[tuple[str, str], list[float]] = {}
    for fold in map(int, args.folds.split(",")):
        val_fold = folds[(folds.index(fold) + 1) % len(folds)]
        clips = [clip for clip in index if clip.fold == val_fold]
        truth = np.array([EMOTIONS.index(clip.emotion) for clip in clips])
        with tempfile.TemporaryDirectory() as tmp:
            files = write_copies(clips, Path(tmp))
            for name in args.names:
                scorer = last_epoch_scorer(layout.experiment_dir(Path("artifacts"), name),
                                           f"fold-{fold}", CLEAN)
                for condition in CONDITIONS:
                    results = predict_files(files[condition], scorer, jobs=args.jobs, tta=False)
                    predicted = np.array([EMOTIONS.index(r.emotion) if r.emotion else -1
                                          for r in results])
                    scored = predicted >= 0  # a "no speech" row counts as wrong below
                    matrix = confusion(truth[scored], predicted[scored], len(EMOTIONS))
                    recall = np.diag(matrix) / np.maximum(np.bincount(truth, minlength=8), 1)
                    ua = float(np.mean(recall))
                    share = np.bincount(predicted[scored], minlength=8).max() / len(clips)
                    scores.setdefault((name, condition), []).append(ua)
                    print(f"fold {fold} (validation fold {val_fold}) {name:>12} {condition:>12}: "
                          f"UA {ua:.3f}, top share {share:.2f}, no speech {int((~scored).sum())}",
                          flush=True)
    print("\nmean validation UA over folds", args.folds)
    print(f"{'run':>12} " + " ".join(f"{c:>12}" for c in CONDITIONS) + "  degraded mean")
    for name in args.names:
        row = [np.mean(scores[(name, c)]) for c in CONDITIONS]
        print(f"{name:>12} " + " ".join(f"{v:12.3f}" for v in row) + f"  {np.mean(row[1:]):.3f}")


if __name__ == "__main__":
    main()
