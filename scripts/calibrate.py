#!/usr/bin/env python3
"""Fit the confidence temperature and the weak-verdict threshold
(pipeline.inference.calibration) on validation actors only and
write artifacts/reports/calibration.json, which 'ser export' stamps into bundles of the
same recipe and 'ser evaluate --fold all' uses to report ECE before and after.

The runs are a recipe experiment's (scripts/experiment.py NAME --folds 0,2: each trained
with its test fold and one validation fold held out). Each run's *last* epoch (what the
recipe keeps; model.pt holds the best validation epoch, picked on these same actors) is
scored on its validation actors' clips through predict's path, test-time views included;
the temperature minimises the pooled negative log-likelihood. Test folds are not read.

    python scripts/calibrate.py r9-attn --folds 0,2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core import layout, progress  # noqa: E402
from pipeline.core.atomic import write_json_atomic  # noqa: E402
from pipeline.corpus.index import load_index  # noqa: E402
from pipeline.corpus.splits import split_for  # noqa: E402
from pipeline.corpus.store import load_store  # noqa: E402
from pipeline.evaluation.evaluate import held_out_probabilities  # noqa: E402
from pipeline.inference import calibration  # noqa: E402
from pipeline.inference.scorer import from_run  # noqa: E402
from pipeline.network.recipe import recipe_of  # noqa: E402


def validation_probabilities(root: Path, fold: int, clips, store, jobs: int,
                             data_dir: Path = Path("data")):
    """``(probabilities, labels, validation actors, recipe)`` of run fold-``fold`` of the
    experiment at ``root``, its last epoch on its validation actors."""
    import torch

    scorer = from_run(root, f"fold-{fold}", 1)
    last = torch.load(layout.checkpoint_file(root, f"fold-{fold}"), map_location="cpu",
                      weights_only=True)["model"]
    scorer.model.load_state_dict(last)
    saved = scorer.saved[0]
    split = split_for(store, fold, val_folds=saved["train_config"]["val_folds"],
                      seed=saved["info"]["split_seed"])
    probabilities = held_out_probabilities(scorer, store, split.val, clips=clips,
                                           data_dir=data_dir, jobs=jobs)
    return (probabilities, store.label[split.val].astype(int),
            saved["info"]["actors"]["val"], recipe_of(saved["train_config"]))


def _share(value: float | None) -> str:
    """A share as a percentage, or "-" where no verdict fell on that side."""
    return "-" if value is None else f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment", help="artifacts/experiments/NAME")
    parser.add_argument("--folds", default="0,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    progress.configure(level="WARNING")
    root = layout.experiment_dir(args.artifacts_dir, args.experiment)
    clips = load_index(args.data_dir)
    store = load_store(root, clips=clips)
    parts = [validation_probabilities(root, int(f), clips, store, args.jobs, args.data_dir)
             for f in args.folds.split(",")]
    recipes = {str(sorted(p[3].items())) for p in parts}
    assert len(recipes) == 1, "the runs were trained with different recipes"
    probabilities = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    temperature = calibration.fit_temperature(probabilities, labels)
    calibrated = calibration.apply_temperature(probabilities, temperature)
    weak_below = calibration.weak_threshold(calibrated, labels)
    record = {"temperature": temperature, "weak_below": weak_below, "recipe": parts[0][3],
              "fitted_on": {"experiment": args.experiment, "runs": [f"fold-{f}" for f in
                                                                    args.folds.split(",")],
                            "validation_actors": sorted(a for p in parts for a in p[2]),
                            "clips": int(len(labels)), "epoch": "last"},
              "validation": {**calibration.figures(probabilities, labels, temperature),
                             **calibration.weak_figures(calibrated, labels, weak_below)}}
    write_json_atomic(layout.calibration_file(args.artifacts_dir), record)
    v = record["validation"]
    print(f"temperature {temperature:.3f} fitted on {len(labels)} validation clips: ECE "
          f"{v['ece']:.3f} -> {v['ece_calibrated']:.3f}, NLL {v['nll']:.3f} -> "
          f"{v['nll_calibrated']:.3f}; weak below {weak_below:.3f} ({v['weak_share']:.1%} of "
          f"verdicts, right {_share(v['accuracy_weak'])} of the time; the rest "
          f"{_share(v['accuracy_firm'])}); written to {layout.calibration_file(args.artifacts_dir)}")


if __name__ == "__main__":
    main()
