#!/usr/bin/env python3
"""Requests per second and p50 / p95 latency of ``POST /predict`` for 3-second clips,
against a real ``ser serve`` process on this machine (the shipped model, one server
worker), with 1 and with 4 clients sending at once.

    python benchmarks/bench_serve.py --requests 60

Clips: the first 3 s of RAVDESS clips from ``../shared/ravdess`` (16-bit WAV, 48 kHz,
cut in memory), each request one clip, with the test-time views (the default) and
without (``?tta=false``, what the page's live mode sends).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "ravdess"


def clips(count: int) -> list[bytes]:
    import soundfile

    out = []
    for path in sorted(SHARED.glob("Actor_*/03-01-*.flac"))[::7][:count]:
        samples, rate = soundfile.read(str(path), dtype="float32")
        buffer = io.BytesIO()
        soundfile.write(buffer, samples[:3 * rate], rate, format="WAV", subtype="PCM_16")
        out.append(buffer.getvalue())
    return out


def run(url: str, bodies: list[bytes], *, clients: int, query: str) -> tuple[float, list[float]]:
    from test_serve import upload

    def one(body: bytes) -> float:
        started = time.perf_counter()
        status, answer = upload(url, body, query=query)
        if status not in (200, 422):  # 422: no speech in the clip's first 3 s, also an answer
            raise RuntimeError(f"{status}: {answer}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, bodies))
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    from pipeline.inference.locate import SHIPPED
    from test_serve import start_server

    bodies = clips(args.requests)
    process, url = start_server(SHIPPED)
    try:
        run(url, bodies[:4], clients=1, query="")  # warm-up: the first requests load lazily
        print(f"{len(bodies)} requests of 3 s clips, one server worker, this machine")
        print(f"{'views':<6} {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
        for query, views in (("", "7"), ("?tta=false", "1")):
            for clients in (1, 4):
                seconds, latencies = run(url, bodies, clients=clients, query=query)
                p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
                print(f"{views:<6} {clients:>7} {len(bodies) / seconds:7.1f} {p50:8.0f} {p95:8.0f}")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
