"""Reading audio: any sample rate, mono or stereo, WAV / FLAC / OGG / MP3 through soundfile,
and soxr resampling. Every failure is an ``AudioError`` whose message names the file.
What happens next (channel mix, DC, level, speech detection) is ``pipeline.signal.frontend``."""

from __future__ import annotations

import contextlib
import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.core.errors import AudioError, TooLongError, UnreadableAudioError

# What a file's header may claim, checked before any sample is decoded (so a hostile
# header cannot make the decoder or the resampler allocate gigabytes). 8 kHz is the
# telephone rate, the lowest that carries the speech band; 384 kHz is the highest rate
# audio interfaces record at; 32 channels cover any microphone array worth scoring.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
# What one recording may take in memory decoded (float32, all channels), whatever its
# codec: ten minutes of 48 kHz stereo (230 MB) fit, a few kilobytes of FLAC that unpack
# to gigabytes of silence do not. Longer recordings are streamed (pipeline.signal.stream).
DECODE_BUDGET_BYTES = 256_000_000
BYTES_PER_SAMPLE = 4  # float32
_BLOCK_FRAMES = 1 << 16  # frames decoded at a time: the budget is checked between blocks

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


def read(path: Path, *, budget: int = DECODE_BUDGET_BYTES) -> tuple[np.ndarray, int]:
    """Decode a file. Returns ``(samples, sample_rate)``, samples float32 of shape
    ``(num_samples, channels)``: the frames really in the file, whatever its header
    claims (``decode``).

    Raises ``AudioError`` naming the file: missing, empty, undecodable, a header outside
    the limits, no frames, NaN or infinite samples; ``TooLongError`` when it decodes to
    more than ``budget`` bytes of float32."""
    with open_file(path) as opened:
        return decode_opened(opened, name=str(path), budget=budget)


@contextlib.contextmanager
def open_file(path: Path) -> Iterator["Opened"]:
    """The file at ``path`` open for decoding for the block, its header read and checked
    once (``open_audio``): what a caller that decides from the header (stream it, or
    decode it whole with ``decode_opened``) opens it with. A pipe or device
    (``/dev/stdin``) is read into memory first. Raises ``AudioError`` naming the file:
    missing, empty, unreadable, a header outside the limits."""
    import io

    path = Path(path)
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a pipe or device: read it once
            raw = io.BytesIO(path.read_bytes())
            size = len(raw.getbuffer())
        else:
            size = status.st_size
            raw = open(path, "rb") if size else None
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    if not size:
        raise AudioError(f"{path}: empty file (0 bytes)")
    with raw, open_audio(raw, name=str(path)) as opened:
        yield opened


def read_bytes(data: bytes, *, name: str, max_seconds: float | None = None,
               budget: int = DECODE_BUDGET_BYTES) -> tuple[np.ndarray, int]:
    """``read`` for a file held in memory (an upload): decoded from ``data`` without
    writing it anywhere. Raises as ``read`` does, naming ``name``, and ``TooLongError``
    for a recording longer than ``max_seconds`` (before decoding when the header can be
    trusted to say so, ``Opened.trusted``)."""
    import io

    if not data:
        raise AudioError(f"{name}: empty file (0 bytes)")
    return decode(io.BytesIO(data), name=name, max_seconds=max_seconds, budget=budget)


def decode(raw, *, name: str, max_seconds: float | None = None,
           budget: int = DECODE_BUDGET_BYTES) -> tuple[np.ndarray, int]:
    """Decode the open binary file ``raw`` whole, block by block to the real end of its
    audio, never holding more than ``budget`` bytes of float32 (``check_claim`` first,
    then ``blocks``). Returns and raises as ``read`` does."""
    with open_audio(raw, name=name) as opened:
        return decode_opened(opened, name=name, max_seconds=max_seconds, budget=budget)


def decode_opened(opened: "Opened", *, name: str, max_seconds: float | None = None,
                  budget: int = DECODE_BUDGET_BYTES) -> tuple[np.ndarray, int]:
    """``decode`` of a file already open (``open_audio``, ``open_file``): its header is
    not read again. Returns and raises as ``read`` does."""
    check_claim(opened, name=name, max_seconds=max_seconds, budget=budget)
    limit = budget // (BYTES_PER_SAMPLE * opened.channels)
    if max_seconds is not None:
        limit = min(limit, int(max_seconds * opened.sample_rate))
    # the header's length when it can be trusted, so the samples are held once
    samples = np.empty((min(opened.frames, limit) if opened.trusted else _BLOCK_FRAMES,
                        opened.channels), dtype=np.float32)
    frames = 0
    for block in blocks(opened, name=name, blocksize=_BLOCK_FRAMES):
        if frames + len(block) > limit:
            raise _too_long(opened, name=name, frames=frames + len(block), budget=budget,
                            max_seconds=max_seconds)
        if frames + len(block) > len(samples):  # more than claimed: grow
            grown = np.empty((min(limit, 2 * (frames + len(block))), opened.channels),
                             dtype=np.float32)
            grown[:frames] = samples[:frames]
            samples = grown
        samples[frames:frames + len(block)] = block
        frames += len(block)
    samples = samples[:frames]
    if samples.shape[0] == 0:
        raise UnreadableAudioError(f"{name}: no audio frames (empty or truncated file)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return samples, opened.sample_rate


@dataclass
class Opened:
    """An audio file open for decoding. ``frames``: the length its header claims;
    ``trusted``: whether that claim bounds what decodes (False for MP3, whose length is
    an optional VBR header's word or a guess from the first frame's bit rate:
    ``pipeline.signal.vbr_header``)."""

    handle: object  # soundfile.SoundFile
    sample_rate: int
    channels: int
    frames: int
    trusted: bool

    def claimed_bytes(self) -> int:
        """The decoded size the header promises: channels x frames x 4 bytes (float32)."""
        return self.channels * self.frames * BYTES_PER_SAMPLE


@contextlib.contextmanager
def open_audio(raw, *, name: str) -> Iterator[Opened]:
    """Open the binary file ``raw`` with libsndfile for the block; its header checked
    (``check_header``). An MP3's VBR frame count is lifted (``vbr_header``) so that
    decoding reaches the real end of its frames. Raises ``UnreadableAudioError`` (not
    audio, or an MP3 with no audio frames) and ``AudioError``, naming ``name``."""
    import soundfile

    from pipeline.signal import vbr_header

    with _libsndfile_errors(name):
        try:
            handle = soundfile.SoundFile(raw)
        except soundfile.LibsndfileError:
            raw.seek(0)
            if raw.read(3) in (b"ID3", b"TAG"):  # a tag, then no MPEG frame mpg123 finds
                raise UnreadableAudioError(f"{name}: no audio frames (an MP3 tag without "
                                           "audio after it)") from None
            raise
        rate, channels, frames = handle.samplerate, handle.channels, handle.frames
        trusted = handle.format != "MP3"
        try:
            check_header(rate, channels, name=name)
            if not trusted:  # reopened with its frame count lifted; the claim kept above
                handle.close()
                lifted = vbr_header.open_lifted(raw)
                lifted.seek(0)
                handle = soundfile.SoundFile(lifted)
        except BaseException:
            handle.close()
            raise
    try:  # the block's own errors are not libsndfile's: they pass through unchanged
        yield Opened(handle, int(rate), int(channels), int(frames), trusted)
    finally:
        handle.close()


def blocks(opened: Opened, *, name: str, blocksize: int) -> Iterator[np.ndarray]:
    """The file's audio as float32 blocks ``(num_frames <= blocksize, channels)``, read
    until the decoder has no more (never on the header's word: a block shorter than
    asked ends it). Raises ``UnreadableAudioError`` naming ``name`` for a decoding
    error."""
    while True:
        with _libsndfile_errors(name):
            block = opened.handle.read(blocksize, dtype="float32", always_2d=True)
        if len(block):
            yield block
        if len(block) < blocksize:
            return


def check_claim(opened: Opened, *, name: str, max_seconds: float | None = None,
                budget: int = DECODE_BUDGET_BYTES) -> None:
    """Before decoding: raise ``TooLongError`` naming ``name`` when a trusted header
    promises more than ``budget`` bytes of float32 or more than ``max_seconds``."""
    if not opened.trusted:
        return
    if opened.claimed_bytes() > budget or (
            max_seconds is not None and opened.frames > max_seconds * opened.sample_rate):
        raise _too_long(opened, name=name, frames=opened.frames, budget=budget,
                        max_seconds=max_seconds)


def _too_long(opened: Opened, *, name: str, frames: int, budget: int,
              max_seconds: float | None) -> TooLongError:
    """The refusal of ``frames`` frames: promised by a trusted header (before decoding),
    or reached while decoding (the header said less)."""
    claimed = frames == opened.frames and opened.trusted
    seconds = frames / opened.sample_rate
    if max_seconds is not None and frames > max_seconds * opened.sample_rate:
        length = f"lasts {_duration(seconds)}, more" if claimed else "decodes to more"
        return TooLongError(f"{name}: {length} than the {max_seconds:g} s limit; split it")
    size = (f"its header promises {_duration(seconds)}, "
            f"{opened.channels * frames * BYTES_PER_SAMPLE / 1e6:.0f} MB decoded, more"
            if claimed else "it decodes to more")
    return TooLongError(
        f"{name}: {size} than the {budget / 1e6:g} MB one recording may take in memory "
        f"({opened.channels} channel{'s' * (opened.channels != 1)} at {opened.sample_rate} "
        "Hz): split it, keep the "
        "channel that holds the speaker, or resample it to 48 kHz or less")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


@contextlib.contextmanager
def _libsndfile_errors(name: str):
    """libsndfile's failures as ``UnreadableAudioError`` / ``AudioError`` naming ``name``,
    its reason as text (never a bytes repr of the file name)."""
    import soundfile

    try:
        yield
    except AudioError:
        raise
    except soundfile.LibsndfileError as exc:
        reason = exc.error_string
        if reason.startswith("File does not exist"):  # what mpg123 says of no frames
            raise UnreadableAudioError(f"{name}: no audio frames (a header without any "
                                       "audio after it)") from None
        raise UnreadableAudioError(f"{name}: not readable audio ({reason})") from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UnreadableAudioError(f"{name}: not readable audio ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot open ({exc.strerror or exc})") from None


def resample(y: np.ndarray, *, orig_sr: float, target_sr: float) -> np.ndarray:
    """soxr high-quality resampling (what librosa uses by default) of float
    ``(num_samples,)``; returns float32."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def audio_sha256(samples: np.ndarray, sample_rate: int) -> str:
    """Hex sha256 of decoded ``samples`` (any shape and dtype) and their rate."""
    digest = hashlib.sha256(str(int(sample_rate)).encode())
    digest.update(np.ascontiguousarray(samples).tobytes())
    return digest.hexdigest()
