#!/usr/bin/env python3
"""Extract on a Dask cluster vs joblib workers: the same ``ser extract`` on the same
clips, once with ``--jobs 2`` (joblib's loky processes) and once with ``--scheduler`` on a
local Dask cluster of 2 worker processes (one thread each) started by this script; prints
both wall times and their ratio, and checks the two stores hold the same shards.

    python benchmarks/bench_dask.py --clips 1200

Needs ``../shared/ravdess`` and the dask extra (``pip install 'ser-pipeline[dask]'``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core import layout  # noqa: E402

SHARED = ROOT.parent / "shared" / "ravdess"


def cli(*args: str) -> float:
    """Run ``cli.py`` quietly; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "-q", *args], check=True)
    return time.perf_counter() - started


def same_shards(a: Path, b: Path) -> bool:
    import json

    first, second = (json.loads(layout.features_manifest(x).read_text()) for x in (a, b))
    return ([s["sha256"] for s in first["shards"]] == [s["sha256"] for s in second["shards"]]
            and first["key"] == second["key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        for path in sorted(SHARED.glob("Actor_*/03-01-*.flac"))[:args.clips]:
            (corpus / path.parent.name).mkdir(parents=True, exist_ok=True)
            (corpus / path.parent.name / path.name).symlink_to(path)
        data = ["--data-dir", str(work / "data")]
        cli(*data, "download", "--source", str(corpus))
        cli(*data, "index")
        joblib_s = cli(*data, "--artifacts-dir", str(work / "joblib"), "extract",
                       "--jobs", str(args.workers))
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            dask_s = cli(*data, "--artifacts-dir", str(work / "dask"), "extract",
                         "--scheduler", cluster.scheduler_address)
        identical = same_shards(work / "joblib", work / "dask")
    print(f"extract of {args.clips} clips, {args.workers} workers (start-up included)")
    print(f"joblib (loky) : {joblib_s:7.1f} s  ({args.clips / joblib_s:.1f} clips/s)")
    print(f"dask (local)  : {dask_s:7.1f} s  ({args.clips / dask_s:.1f} clips/s)")
    print(f"dask / joblib : {dask_s / joblib_s:.2f}x the time; shards identical: {identical}")


if __name__ == "__main__":
    main()
