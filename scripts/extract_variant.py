#!/usr/bin/env python3
"""Extract features with augmentation overrides into ``artifacts/variants/NAME/features``,
for recipe experiments on validation actors (``scripts/experiment.py --features ...``).
The default recipe's features stay where ``ser extract`` puts them.

    python scripts/extract_variant.py rec1 --set telephone_prob=0.333 \
        --set noise_betas='[0,1,2]' --set reverb_prob=0.333
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core import layout, progress  # noqa: E402
from pipeline.corpus.extract import ExtractConfig, extract  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--set", action="append", default=[],
                        help="FIELD=JSON, a field of AugmentConfig")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    progress.configure(level="INFO", quiet=False)
    augment = ExtractConfig().augment
    for assignment in args.set:
        name, value = assignment.split("=", 1)
        parsed = json.loads(value)
        augment = replace(augment, **{name: tuple(parsed) if isinstance(parsed, list) else parsed})
    result = extract(data_dir=Path("data"), artifacts_dir=layout.variant_dir(Path("artifacts"), args.name),
                     config=replace(ExtractConfig(), augment=augment), jobs=args.jobs)
    print(f"{args.name}: {result.rows} rows of {result.clips} clips in {result.features_dir} "
          f"({result.seconds:.0f} s); augment {augment.to_dict()}")


if __name__ == "__main__":
    main()
