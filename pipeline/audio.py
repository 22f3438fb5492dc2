"""Reading audio: any sample rate, mono or stereo, WAV / FLAC / OGG / MP3 through soundfile,
and soxr resampling. Every failure is an ``AudioError`` whose message names the file.
What happens next (channel mix, DC, level, speech detection) is ``pipeline.frontend``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from pipeline.errors import AudioError, TooLongError, UnreadableAudioError

# What a file's header may claim, checked before any sample is decoded (so a hostile
# header cannot make the decoder or the resampler allocate gigabytes). 8 kHz is the
# telephone rate, the lowest that carries the speech band; 384 kHz is the highest rate
# audio interfaces record at; 32 channels cover any microphone array worth scoring.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32

def check_header(sample_rate: int, channels: int, *, name: str) -> None:
    """Raise ``AudioError`` naming ``name`` and the limit when a header's rate is outside
    ``MIN_SAMPLE_RATE``..``MAX_SAMPLE_RATE`` Hz or it has more than ``MAX_CHANNELS``."""
    if sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz, "
                         "the lowest that carries speech (telephone band): the file's header "
                         "is wrong, or it is not a speech recording")
    if sample_rate > MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {sample_rate} Hz is above the {MAX_SAMPLE_RATE} Hz "
                         "limit: the header is wrong, or resample the file (e.g. to 48 kHz)")
    if channels > MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels, more than the limit of {MAX_CHANNELS}: "
                         "the header is wrong, or keep the channels that hold the speaker")


def read(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file. Returns ``(samples, sample_rate)``, samples float32 of shape
    ``(num_samples, channels)``. The header is checked (``check_header``) before decoding.

    Raises ``AudioError`` naming the file: missing, empty, undecodable, a header outside
    the limits, no frames, NaN or infinite samples."""
    path = Path(path)
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a pipe or device (/dev/stdin): read it once
            return read_bytes(path.read_bytes(), name=str(path))
        if status.st_size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    # bytes on POSIX: libsndfile gets the name's raw bytes, so a name that is not UTF-8
    # (held by Python as surrogate escapes) opens like any other
    return _decode(os.fsencode(path) if os.name == "posix" else str(path), name=str(path))


def read_bytes(data: bytes, *, name: str,
               max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """``read`` for a file held in memory (an upload): decoded from ``data`` without
    writing it anywhere. Raises as ``read`` does, naming ``name``, and ``TooLongError``
    before decoding a recording longer than ``max_seconds``."""
    import io

    if not data:
        raise AudioError(f"{name}: empty file (0 bytes)")
    return _decode(io.BytesIO(data), name=name, max_seconds=max_seconds)


def _decode(source, *, name: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    import soundfile

    try:
        with soundfile.SoundFile(source) as handle:
            check_header(handle.samplerate, handle.channels, name=name)
            if max_seconds is not None and handle.frames > max_seconds * handle.samplerate:
                raise TooLongError(f"{name}: lasts {handle.frames / handle.samplerate:.0f} s, "
                                   f"more than the {max_seconds:g} s limit; split it")
            samples = handle.read(dtype="float32", always_2d=True)
            sample_rate = handle.samplerate
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        reason = str(exc)
        if not isinstance(source, (str, bytes)):  # in memory: drop libsndfile's "<BytesIO ...>: "
            reason = reason.rsplit(": ", 1)[-1]
        raise UnreadableAudioError(f"{name}: not readable audio ({reason})") from exc
    except OSError as exc:
        raise AudioError(f"{name}: cannot open ({exc.strerror or exc})") from exc
    if samples.shape[0] == 0:
        raise UnreadableAudioError(f"{name}: no audio frames (empty or truncated file)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return samples, int(sample_rate)


def resample(y: np.ndarray, *, orig_sr: float, target_sr: float) -> np.ndarray:
    """soxr high-quality resampling (what librosa uses by default) of float
    ``(num_samples,)``; returns float32."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)
