"""Speech detection with a trained voice-activity detector, and the speech segments that
are scored.

The detector is Silero VAD (``silero-vad`` on PyPI, MIT licence; its weights ship inside
the wheel, nothing is downloaded): a small recurrent network that gives a speech
probability for every 32 ms frame (512 samples at 16 kHz). ``get_speech_timestamps``
turns those into speech regions with hysteresis (start above ``threshold``, end after
``min_silence_ms`` below ``threshold - 0.15``), drops regions shorter than
``min_speech_ms`` and pads each by ``speech_pad_ms``. Hum, tones, noise, dither and clicks
have no speech frames, so they are never scored.

Regions are grouped into **segments**, the unit that is scored (``group_segments``): a
recording whose speech, first region to last, spans at most the longest segment
(``VadConfig.max_segment_samples``: 1.5 analysis windows, 4.5 s for 3 s windows) is one
segment (every RAVDESS clip is); a longer one is cut at its pauses, neighbouring regions
joined while the gap is at most ``max_gap_seconds`` and the segment stays within the
longest; a region longer than that is split into equal parts no longer than one window.
Segments with less than ``min_speech_seconds`` of speech are not scored.

Source: Silero Team (2024), "Silero VAD: pre-trained enterprise-grade Voice Activity
Detector", https://github.com/snakers4/silero-vad.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import asdict, dataclass

import numpy as np

VAD_SAMPLE_RATE = 16000  # the rate Silero's model takes (not the features' rate)
# A segment spans at most this many analysis windows: one longer than the window is scored
# on its middle window, so at most a quarter of it on each side goes unheard.
MAX_SEGMENT_WINDOWS = 1.5
VAD_FRAME_SAMPLES = 512  # one detector frame: 32 ms at 16 kHz


@dataclass(frozen=True)
class VadConfig:
    """The detector's parameters (silero-vad's names, its defaults) and the segmenting rule."""

    threshold: float = 0.2  # silero default 0.5 missed shouted takes: docs/experiments.md
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30
    min_speech_seconds: float = 0.5  # less than this in a segment: not scored
    max_gap_seconds: float = 1.0
    # None: MAX_SEGMENT_WINDOWS analysis windows (4.5 s for 3 s windows); bundles exported
    # before it was derived hold 4.5, which is the same
    max_segment_seconds: float | None = None

    def __post_init__(self):
        if self.min_speech_seconds < 0.4:  # one BS.1770 loudness block
            raise ValueError(f"min_speech_seconds {self.min_speech_seconds}: a segment needs at "
                             "least 0.4 s, one loudness block")

    def to_dict(self) -> dict:
        return asdict(self)

    def max_segment_samples(self, *, sample_rate: int, window_samples: int) -> int:
        """The longest segment, in samples at ``sample_rate``: ``max_segment_seconds``, or
        ``MAX_SEGMENT_WINDOWS`` analysis windows of ``window_samples`` when it is None."""
        if self.max_segment_seconds is None:
            return int(MAX_SEGMENT_WINDOWS * window_samples)
        return int(self.max_segment_seconds * sample_rate)


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording that is scored: sample bounds ``[start, end)`` at the
    front end's rate, and how many of its samples the detector called speech."""

    start: int
    end: int
    speech_samples: int


@functools.lru_cache(maxsize=1)
def _silero():
    """``(model, get_speech_timestamps)``, loaded once per process. Importing
    ``silero_vad`` sets torch to one thread for the whole process; the caller's setting
    is put back."""
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad

        model = load_silero_vad()
    finally:
        torch.set_num_threads(threads)
    return model, get_speech_timestamps


def detector_version() -> str:
    """The installed ``silero-vad`` version (its weights ship in the wheel), without
    importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("silero-vad")
    except PackageNotFoundError:
        return "not installed"


# Silero's model keeps recurrent state between frames: one detection at a time in a
# process (the service scores in several threads).
_DETECTING = threading.Lock()


def speech_regions(y: np.ndarray, config: VadConfig) -> list[tuple[int, int]]:
    """Speech regions of ``y`` (float32 ``(num_samples,)`` at 16 kHz), as sample bounds
    ``[(start, end), ...]`` in time order, by Silero VAD (see module docstring). Safe to
    call from several threads: they take turns."""
    if y.size < VAD_FRAME_SAMPLES:
        return []
    with _DETECTING:
        return _detect(y, config)


def _detect(y: np.ndarray, config: VadConfig) -> list[tuple[int, int]]:
    import torch

    # torch's thread count is the process's, set once by its entry point (the command
    # line, a worker); Silero's probabilities were checked equal at 1 and 2 threads.
    model, get_speech_timestamps = _silero()
    with torch.inference_mode():
        found = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), model,
            threshold=config.threshold, sampling_rate=VAD_SAMPLE_RATE,
            min_speech_duration_ms=config.min_speech_ms,
            min_silence_duration_ms=config.min_silence_ms,
            speech_pad_ms=config.speech_pad_ms)
    return [(int(r["start"]), int(r["end"])) for r in found]


def _overlap(regions: list[tuple[int, int]], start: int, end: int) -> int:
    return sum(max(0, min(end, e) - max(start, s)) for s, e in regions)


def group_segments(regions: list[tuple[int, int]], config: VadConfig, *, sample_rate: int,
                   window_samples: int) -> list[Segment]:
    """Speech ``regions`` (sample bounds, time order) -> the segments to score (see module
    docstring), each with at least ``min_speech_seconds`` of speech."""
    if not regions:
        return []
    max_length = config.max_segment_samples(sample_rate=sample_rate,
                                            window_samples=window_samples)
    max_gap = int(config.max_gap_seconds * sample_rate)
    if regions[-1][1] - regions[0][0] <= max_length:
        spans = [(regions[0][0], regions[-1][1])]
    else:
        spans = [regions[0]]
        for start, end in regions[1:]:
            first, last = spans[-1]
            if start - last <= max_gap and end - first <= max_length:
                spans[-1] = (first, end)
            else:
                spans.append((start, end))
    pieces = []
    for start, end in spans:
        parts = 1 if end - start <= max_length else math.ceil((end - start) / window_samples)
        edges = np.linspace(start, end, parts + 1).round().astype(int)
        pieces += list(zip(edges[:-1], edges[1:]))
    segments = [Segment(int(s), int(e), _overlap(regions, s, e)) for s, e in pieces]
    minimum = config.min_speech_seconds * sample_rate
    return [s for s in segments if s.speech_samples >= minimum]
