#!/usr/bin/env python3
"""Score finished ``scripts/experiment.py`` runs at their last epoch on the validation fold
after each test fold (fold k+1), one by one and as an ensemble (softmax averaged).
Test folds are never looked at here.

    python scripts/score_experiments.py h512e120bal h512balwd5 h512balt10 --folds 0,2 \
        --features artifacts/hop512/features

``--views`` scores each clip in a set of test-time views (``pipeline.signal.views``), read from
the corpus: ``test`` is the recipe's ``TEST_VIEWS``; the others are the single-change
sets compared before choosing it (docs/experiments.md, "Fourth round").

Runs trained with more validation folds (``--set val_folds=2``) are scored on fold k+1
only, so every experiment is compared on the same actors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiment_runs import last_epoch_scorer  # noqa: E402
from pipeline.core import layout  # noqa: E402
from pipeline.core.labels import EMOTIONS  # noqa: E402
from pipeline.core.metrics import confusion, summarise  # noqa: E402
from pipeline.corpus.index import load_index  # noqa: E402
from pipeline.corpus.splits import split_for  # noqa: E402
from pipeline.corpus.store import load_store  # noqa: E402
from pipeline.signal.augment import AugmentParams as View  # noqa: E402
from pipeline.signal.views import CLEAN, TEST_VIEWS  # noqa: E402

VIEW_SETS = {
    "clean": CLEAN,
    "test": TEST_VIEWS,
    "pitch1": (View(), View(semitones=-1.0), View(semitones=1.0)),
    "pitch2": (View(), View(semitones=-2.0), View(semitones=2.0)),
    "shift": (View(), View(shift_seconds=-0.15), View(shift_seconds=0.15)),
    "speed": (View(), View(speed=0.95), View(speed=1.05)),
}


def last_epoch_probabilities(experiment: Path, fold: int, store, rows: np.ndarray, views,
                             clips: list) -> np.ndarray:
    from pipeline.evaluation.evaluate import held_out_probabilities

    scorer = last_epoch_scorer(experiment, f"fold-{fold}", views)
    return held_out_probabilities(scorer, store, rows, clips=clips, data_dir=Path("data"), jobs=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="+")
    parser.add_argument("--folds", default="0,2")
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"),
                        help="whose features to score (artifacts/variants/NAME for a variant)")
    parser.add_argument("--views", choices=sorted(VIEW_SETS), default="clean")
    args = parser.parse_args()
    clips = load_index(Path("data"))
    store = load_store(args.artifacts_dir, clips=clips)

    def ua(probabilities: np.ndarray, truth: np.ndarray) -> float:
        matrix = confusion(truth, probabilities.argmax(1), len(EMOTIONS))
        return summarise(matrix, EMOTIONS)["ua"]

    totals: dict[str, list[float]] = {}
    for fold in map(int, args.folds.split(",")):
        split = split_for(store, fold, val_folds=1, seed=0)
        truth = store.label[split.val]
        members = []
        for name in args.names:
            experiment = layout.experiment_dir(Path("artifacts"), name)
            members.append(last_epoch_probabilities(experiment, fold, store, split.val,
                                                    VIEW_SETS[args.views], clips))
            totals.setdefault(name, []).append(ua(members[-1], truth))
            print(f"fold {fold} (validation fold {split.val_folds[0]}): {name} {totals[name][-1]:.3f}")
        if len(members) > 1:
            totals.setdefault("ensemble", []).append(ua(np.mean(members, axis=0), truth))
            print(f"fold {fold}: ensemble of {len(members)} {totals['ensemble'][-1]:.3f}")
    for name, scores in totals.items():
        print(f"{name}: mean last-epoch val UA {np.mean(scores):.3f} "
              f"[{', '.join(f'{s:.3f}' for s in scores)}]")


if __name__ == "__main__":
    main()
