#!/usr/bin/env python3
"""The bf16 check of issue 32 (docs/experiments.md): the default recipe on test fold 0
with one validation fold, 2 members, trained in fp32 and under bf16 autocast
(``accelerated=True, bf16=True``: the GPU path's arithmetic, here on the CPU), the same
seeds; prints each member's validation UA and the means. Test folds are not looked at.

    python scripts/bf16_check.py --data-dir D/data --artifacts-dir D/artifacts

``D/artifacts`` must hold an extracted feature store (``ser index``, ``ser extract``);
the two trainings go into ``D/artifacts-fp32`` and ``D/artifacts-bf16`` (the features
copied once).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core import layout  # noqa: E402
from pipeline.network.recipe import TrainConfig  # noqa: E402
from pipeline.training.train import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--artifacts-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    args = parser.parse_args()
    config = replace(TrainConfig(), val_folds=1, epochs=args.epochs)
    means = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        artifacts = args.artifacts_dir.with_name(f"{args.artifacts_dir.name}-{name}")
        features = layout.features_manifest(args.artifacts_dir).parent
        target = layout.features_manifest(artifacts).parent
        if not target.exists():
            shutil.copytree(features, target)
        uas = []
        for member in (0, 1):
            started = time.perf_counter()
            result = train(data_dir=args.data_dir, artifacts_dir=artifacts, config=config,
                           fold=0, member=member, device="cpu", accelerated=bf16, bf16=bf16)
            uas.append(result.val["ua"])
            print(f"{name} member {member}: validation UA {result.val['ua']:.4f}, best epoch "
                  f"{result.best_epoch}, {time.perf_counter() - started:.0f} s", flush=True)
        means[name] = sum(uas) / len(uas)
    print(f"mean validation UA: fp32 {means['fp32']:.4f}, bf16 {means['bf16']:.4f}")


if __name__ == "__main__":
    main()
