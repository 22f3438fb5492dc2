"""Reading audio: any sample rate, mono or stereo, WAV / FLAC / OGG / MP3 through soundfile,
and soxr resampling. Every failure is an ``AudioError`` whose message names the file.
What happens next (channel mix, DC, level, speech detection) is ``pipeline.frontend``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import AudioError

@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def read(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file. Returns ``(samples, sample_rate)``, samples float32 of shape
    ``(frames, channels)``."""
    import soundfile

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: not readable audio ({exc})") from exc
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: no audio frames (empty or truncated file)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return samples, int(sample_rate)


def resample(y: np.ndarray, *, orig_sr: float, target_sr: float) -> np.ndarray:
    """soxr high-quality resampling (what librosa uses by default) of float
    ``(num_samples,)``; returns float32."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)
