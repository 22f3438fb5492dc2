#!/usr/bin/env python3
"""Try a training recipe on validation actors only: train the given folds with config
overrides into ``artifacts/experiments/NAME`` (sharing the extracted features) and print
the mean validation UA, at the best epoch (optimistic: picked on the same actors) and at
the last epoch (what the default recipe keeps). Test folds are never looked at here.

    python scripts/experiment.py NAME --folds 0,2 --set epochs=40 --set model.clip_norm=true

With several corpora in the index, each corpus's last-epoch validation UA is printed too,
and their mean (each corpus weighing the same); ``--set 'train_corpora=["ravdess"]'``
trains on some corpora while every corpus's speakers validate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core import layout, progress  # noqa: E402
from pipeline.network.recipe import TrainConfig  # noqa: E402
from pipeline.training.train import train  # noqa: E402


def apply(config: TrainConfig, assignment: str) -> TrainConfig:
    name, value = assignment.split("=", 1)
    parsed = json.loads(value)
    if isinstance(parsed, list):
        parsed = tuple(parsed)
    if name.startswith("model."):
        return replace(config, model=replace(config.model, **{name[6:]: parsed}))
    return replace(config, **{name: parsed})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--features", type=Path, default=None,
                        help="the feature store folder to share (a variant's, say; default: "
                             "--artifacts-dir's)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    progress.configure(level="INFO", quiet=False)
    config = TrainConfig(val_folds=1)  # experiments score recipes on validation actors
    for assignment in args.set:
        config = apply(config, assignment)
    root = layout.experiment_dir(args.artifacts_dir, args.name)
    root.mkdir(parents=True, exist_ok=True)
    link = layout.features_dir(root)
    if not link.exists():
        os.symlink((args.features or layout.features_dir(args.artifacts_dir)).resolve(), link)
    best, last, per_corpus = [], [], {}
    for fold in map(int, args.folds.split(",")):
        result = train(data_dir=args.data_dir, artifacts_dir=root, config=config, fold=fold)
        history = layout.metrics_file(root, result.run_dir.name).read_text().splitlines()
        best.append(result.val["ua"])
        final = json.loads(history[-1])
        last.append(final["val_ua"])
        for corpus, ua in final.get("val_ua_by_corpus", {}).items():
            per_corpus.setdefault(corpus, []).append(ua)
        print(f"{args.name} fold {fold}: val UA {best[-1]:.3f} at the best epoch "
              f"({result.best_epoch}), {last[-1]:.3f} at the last; by corpus at the last: "
              f"{final.get('val_ua_by_corpus', {})}", flush=True)
    print(f"{args.name}: mean val UA over folds {args.folds}: best epoch {sum(best) / len(best):.3f} "
          f"[{', '.join(f'{s:.3f}' for s in best)}], last epoch {sum(last) / len(last):.3f} "
          f"[{', '.join(f'{s:.3f}' for s in last)}]  {' '.join(args.set)}", flush=True)
    if per_corpus:
        means = {corpus: sum(v) / len(v) for corpus, v in sorted(per_corpus.items())}
        print(f"{args.name}: last-epoch val UA by corpus: "
              + ", ".join(f"{c} {m:.3f} {[round(x, 3) for x in per_corpus[c]]}"
                          for c, m in means.items())
              + f"; mean over corpora {sum(means.values()) / len(means):.3f}", flush=True)


if __name__ == "__main__":
    main()
