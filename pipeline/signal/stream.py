"""Long recordings in bounded memory: decode, condition, detect speech and cut segments
block by block, so that peak memory does not grow with the recording's length.

``predict`` sends a file here when it lasts more than ``STREAM_SECONDS``. Per block of
``BLOCK_SECONDS`` decoded with soundfile:

1. samples above 1 divided by the block's peak (``frontend.bounded``), channels mixed
   with aligned polarity (decided per block): the whole-file front end's steps;
2. the DC high-pass run with its state carried from block to block (the filter is
   causal, so this is exactly the whole-file filter);
3. resampled with soxr's streaming resampler (its state carried too);
4. appended to a buffer of conditioned 16 kHz speech. Once the buffer holds a block and
   a margin, it is scaled to a peak of 1 and -23 LUFS (``frontend.level``: a provisional
   level per block, where the whole-file path uses the whole recording's), the speech
   detector runs on it and its segments are cut (``frontend.detect``); segments that end more than
   ``MARGIN_SECONDS`` before the buffer's end are final and leave, the rest of the buffer
   (from the first segment or speech region still open) is kept for the next block, so a
   segment is never cut at a block edge.

Each segment is then scaled to -23 LUFS over itself and scored as any segment is.
Memory: one block of decoded audio plus a buffer of about two blocks at 16 kHz, whatever
the length. Where it differs from the whole-file path (polarity and provisional level
per block) it only moves speech boundaries, not how a segment is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.core.errors import AudioError, NoSpeechError, SilentError, UnreadableAudioError
from pipeline.signal import conditioning, frontend
from pipeline.signal.audio import BYTES_PER_SAMPLE, blocks, open_audio

STREAM_SECONDS = 300.0  # longer files are streamed
BLOCK_SECONDS = 60.0
# Held back at a block's end: more than a segment spans (VadConfig.max_segment_samples,
# 4.5 s for 3 s windows) plus a gap, so no segment is cut at a block edge.
MARGIN_SECONDS = 10.0
BLOCK_BYTES = 64_000_000  # at most this much decoded float32 at a time, whatever the rate


@dataclass(frozen=True)
class StreamSegment:
    """One speech segment of a streamed recording: bounds and speech in seconds from the
    start of the file, and its audio at the feature rate, scaled to -23 LUFS."""

    start_s: float
    end_s: float
    speech_s: float
    audio: np.ndarray


def is_long(opened) -> bool:
    """Whether a file open for decoding (``audio.open_file``) is streamed, from its
    header: it claims more than ``STREAM_SECONDS``, or more decoded audio than
    ``audio.DECODE_BUDGET_BYTES`` holds (a short recording of many channels at a high
    rate)."""
    from pipeline.signal.audio import DECODE_BUDGET_BYTES

    return (opened.frames > STREAM_SECONDS * opened.sample_rate
            or opened.claimed_bytes() > DECODE_BUDGET_BYTES)


class Conditioner:
    """Steps 1-3 of the module docstring with their state carried across blocks:
    ``push`` takes float32 ``(num_frames, channels)`` at the file's rate and returns the
    conditioned float32 ``(num_samples,)`` at ``sample_rate`` that is ready so far
    (``last=True`` flushes the resampler)."""

    def __init__(self, file_rate: int, sample_rate: int, front_end):
        import soxr

        self.highpass = conditioning.highpass(int(file_rate), float(front_end.highpass_hz),
                                              int(front_end.highpass_order))
        self.state, self.offset = None, None
        self.resampler = (soxr.ResampleStream(file_rate, sample_rate, 1, dtype="float32",
                                              quality="HQ")
                          if file_rate != sample_rate else None)

    def push(self, block: np.ndarray, *, last: bool = False) -> np.ndarray:
        block = frontend.bounded(block)
        y = (conditioning.mix_channels(block) if len(block) else np.zeros(0)).astype(np.float64)
        if y.size:
            if self.offset is None:  # steady state for the first sample, as remove_dc starts
                self.offset = y[0]
            y, self.state = self.highpass.filter(y - self.offset, self.state)
        y = y.astype(np.float32)
        if self.resampler is None:
            return y
        return self.resampler.resample_chunk(y, last=last)


def segments(path: Path, features) -> Iterator[StreamSegment]:
    """The speech segments of the file at ``path`` in time order, computed block by block
    (see module docstring) with the front end of ``features`` (a ``FeatureConfig``).
    Raises ``AudioError`` for an unreadable file and ``NoSpeechError`` when no block
    holds a segment."""
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with raw, open_audio(raw, name=str(path)) as opened:
        yield from _stream(opened, features, name=str(path))


def _stream(opened, features, *, name: str) -> Iterator[StreamSegment]:
    """``segments`` of an open file (see module docstring): blocks of ``BLOCK_SECONDS``,
    or fewer frames when that many would take more than ``BLOCK_BYTES`` decoded."""
    rate = features.sample_rate
    conditioner = Conditioner(opened.sample_rate, rate, features.front_end)
    blocksize = min(int(BLOCK_SECONDS * opened.sample_rate),
                    BLOCK_BYTES // (BYTES_PER_SAMPLE * opened.channels))
    buffer, offset, found, frames = np.zeros(0, np.float32), 0, 0, 0
    for block in blocks(opened, name=name, blocksize=blocksize):
        frames += len(block)
        if not np.all(np.isfinite(block)):
            raise AudioError(f"{name}: contains NaN or infinite samples")
        buffer = np.concatenate([buffer, conditioner.push(block)])
        if buffer.size >= (BLOCK_SECONDS + MARGIN_SECONDS) * rate:
            ready, cut = _cut(buffer, features, final=False)
            yield from (_at(s, offset, rate) for s in ready)
            found += len(ready)
            buffer, offset = buffer[cut:], offset + cut
    if not frames:
        raise UnreadableAudioError(f"{name}: no audio frames (empty or truncated file)")
    buffer = np.concatenate([buffer, conditioner.push(np.zeros((0, opened.channels),
                                                               np.float32), last=True)])
    ready, _ = _cut(buffer, features, final=True)
    yield from (_at(s, offset, rate) for s in ready)
    if not found + len(ready):
        raise NoSpeechError(f"{name}: no speech detected in {frames / opened.sample_rate:.0f} "
                            "s of audio")


def _cut(buffer: np.ndarray, features, *, final: bool) -> tuple[list, int]:
    """``(segments to emit as (start, end, speech samples, audio), where the kept buffer
    starts)``: every segment when ``final``, else those ending before the margin."""
    rate = features.sample_rate
    if buffer.size < conditioning.MIN_LOUDNESS_SECONDS * rate:
        return [], buffer.size
    try:  # the provisional level per block (the whole-file path: over the recording)
        levelled = frontend.level(buffer, sample_rate=rate, config=features.front_end)
    except SilentError:
        return [], buffer.size
    try:
        speech = frontend.detect(levelled, sample_rate=rate, window_samples=features.window_samples,
                                 config=features.front_end)
    except NoSpeechError:
        return [], buffer.size - (0 if final else int(MARGIN_SECONDS * rate))
    horizon = buffer.size if final else buffer.size - int(MARGIN_SECONDS * rate)
    ready = [s for s in speech.segments if s.end <= horizon]
    floor = max([0, *(s.end for s in ready)])  # what is emitted is never kept
    open_starts = [s.start for s in speech.segments if s.end > horizon]
    open_starts += [max(start, floor) for start, end in speech.regions if end > horizon]
    cut = min([horizon, *open_starts])
    if cut <= 0:  # never keep the whole buffer: memory stays bounded
        cut = horizon
    return [(s.start, s.end, s.speech_samples, speech.segment_audio(s)) for s in ready], cut


def _at(found: tuple, offset: int, rate: int) -> StreamSegment:
    start, end, speech, audio = found
    return StreamSegment((offset + start) / rate, (offset + end) / rate, speech / rate, audio)
