#!/usr/bin/env python3
"""Does a recording's level change the verdict? For clips of the real corpus, each scored
by the cross-validation fold model that did not train on it, copies scaled by -30, -20
and +20 dB (float samples, never clipped) and normalised to a 0.9 peak are scored like
the original; the script prints how often each keeps the original's verdict (a "no
speech" row counts as a change).

    python scripts/level_robustness.py [--clips-per-fold 10] [--members 2] [--no-tta]

Needs ``ser train --fold all`` to have run (``artifacts/runs/fold-K``) on the index
in ``data/``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"-30 dB": 10 ** (-30 / 20), "-20 dB": 10 ** (-20 / 20), "+20 dB": 10 ** (20 / 20),
            "0.9 peak": None}


def chosen_clips(data_dir: Path, per_fold: int, seed: int) -> dict[int, list]:
    """``per_fold`` clips of each fold, drawn without replacement, spread over emotions."""
    from pipeline.corpus.index import load_index

    rng = np.random.default_rng(seed)
    by_fold: dict[int, list] = {}
    for clip in load_index(data_dir):
        by_fold.setdefault(clip.fold, []).append(clip)
    picked = {}
    for fold, clips in sorted(by_fold.items()):
        order = rng.permutation(len(clips))
        clips = [clips[i] for i in order]
        clips.sort(key=lambda c: c.emotion)  # stable: a shuffled run per emotion
        picked[fold] = [clips[i] for i in np.linspace(0, len(clips) - 1, per_fold).astype(int)]
    return picked


def variant_files(source: Path, out_dir: Path) -> dict[str, Path]:
    """The original and its scaled copies, written as float WAV (no clipping)."""
    import soundfile

    samples, rate = soundfile.read(str(source), dtype="float32", always_2d=True)
    files = {"original": source}
    for name, gain in VARIANTS.items():
        gain = 0.9 / np.abs(samples).max() if gain is None else gain
        path = out_dir / f"{source.stem}.{name.replace(' ', '')}.wav"
        soundfile.write(path, samples * np.float32(gain), rate, subtype="FLOAT")
        files[name] = path
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--clips-per-fold", type=int, default=10)
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-tta", dest="tta", action="store_false")
    args = parser.parse_args()

    from pipeline.core.layout import run_name
    from pipeline.inference.predict import predict_files
    from pipeline.inference.scorer import from_run
    from pipeline.network.recipe import TrainConfig
    from pipeline.signal.views import CLEAN, TEST_VIEWS

    kept = {name: 0 for name in VARIANTS}
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fold, clips in chosen_clips(args.data_dir, args.clips_per_fold, args.seed).items():
            scorer = from_run(args.artifacts_dir, run_name(fold),
                              args.members or TrainConfig().members,
                              TEST_VIEWS if args.tta else CLEAN)
            files = [variant_files(Path(clip.path), Path(tmp)) for clip in clips]
            names = ["original", *VARIANTS]
            flat = [f[name] for f in files for name in names]
            results = predict_files(flat, scorer, jobs=args.jobs)
            for i, clip in enumerate(clips):
                row = {name: results[i * len(names) + j] for j, name in enumerate(names)}
                original = row["original"]
                if original.error:
                    print(f"fold {fold}: {clip.path}: original not scored ({original.error}); "
                          "left out")
                    continue
                total += 1
                for name in VARIANTS:
                    same = not row[name].error and row[name].emotion == original.emotion
                    kept[name] += same
                    if not same:
                        print(f"fold {fold}: {clip.path} {name}: {original.emotion} -> "
                              f"{row[name].emotion or row[name].error}")
    print(f"{total} clips (fold models that did not train on them), views: "
          f"{'test-time views' if args.tta else 'clean window'}")
    for name, count in kept.items():
        print(f"  {name:>8}: verdict kept in {count} of {total} ({count / max(total, 1):.1%})")
    overall = sum(kept.values()) / max(1, total * len(VARIANTS))
    print(f"  overall: {overall:.1%} of {total * len(VARIANTS)} scaled copies keep the verdict")


if __name__ == "__main__":
    main()
