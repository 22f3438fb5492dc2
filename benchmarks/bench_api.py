#!/usr/bin/env python3
"""The Python API's costs, in one warm process: importing ``pipeline.inference.api``,
``load_model()`` (the shipped model) and ``predict_file`` on RAVDESS clips with the
bundle's test-time views (median over ``--clips`` clips after one warm-up).

    python benchmarks/bench_api.py [--clips 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "ravdess"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"no corpus at {SHARED}: this benchmark reads the real RAVDESS copy")
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    from pipeline.inference import api
    imported = time.perf_counter()
    model = api.load_model()
    loaded = time.perf_counter()
    import soundfile

    clips = sorted(SHARED.glob("Actor_*/*.flac"))[::37][:args.clips]
    seconds = [soundfile.info(str(c)).duration for c in clips]
    api.predict_file(clips[0], model=model)  # warm-up
    times = []
    for clip in clips:
        began = time.perf_counter()
        api.predict_file(clip, model=model)
        times.append(time.perf_counter() - began)
    print(f"model {model.identity}: import {imported - started:.2f} s, load_model "
          f"{loaded - imported:.2f} s; predict_file on {len(clips)} clips of "
          f"{min(seconds):.1f}-{max(seconds):.1f} s, {len(model.views)} views: median "
          f"{1000 * statistics.median(times):.0f} ms (min {1000 * min(times):.0f}, max "
          f"{1000 * max(times):.0f})")


if __name__ == "__main__":
    main()
