"""Feature computation: a waveform -> a ``(2, n_mels, n_frames)`` tensor of MFCC and log-mel.

The window (``FeatureConfig.window_mode``):

- ``trim`` (default): cut leading and trailing silence (frames more than ``trim_top_db``
  below the loudest), then centre the speech in a fixed window of ``window_seconds``,
  padding with zeros or cropping the middle. Every RAVDESS clip starts and ends with
  silence of varying length; trimming puts the speech, not the silence, in the window.
- ``centre``: the same without trimming.

The spectrogram is computed here in NumPy (Hann-windowed STFT, Slaney mel filterbank,
``10 log10`` power with an 80 dB floor below the maximum, orthonormal DCT-II for the
MFCC), which matches librosa's ``melspectrogram`` / ``power_to_db`` / ``mfcc`` (a test
checks it) without librosa's import cost. Both channels have ``n_mels`` rows.

Pitch shift is applied in the frequency domain: the power spectrum is warped by
``2 ** (semitones / 12)`` before the mel filterbank, folded into one matrix.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

# Bump when the computation changes, so cached feature stores are recomputed.
FEATURES_VERSION = 2


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    window_seconds: float = 3.0
    window_mode: str = "trim"  # "trim" or "centre"
    trim_top_db: float = 40.0
    n_fft: int = 1024
    hop_length: int = 512  # 32 ms: half the frames of 256, which bought twice the epochs
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    top_db: float = 80.0

    def __post_init__(self):
        if self.window_mode not in ("trim", "centre"):
            raise ValueError(f"window_mode {self.window_mode!r}: use 'trim' or 'centre'")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return 1 + self.window_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int, int]:
        return (2, self.n_mels, self.n_frames)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        return cls(**data)


def hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``)."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    linear = freq / f_sp
    return np.where(freq >= min_log_hz,
                    min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep,
                    linear)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


@functools.lru_cache(maxsize=8)
def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """Slaney-normalised triangular filters, shape ``(n_mels, 1 + n_fft // 2)`` float64."""
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]


@functools.lru_cache(maxsize=64)
def _warped_filterbank(config: FeatureConfig, pitch_factor: float) -> np.ndarray:
    """Mel filterbank applied to a spectrum whose frequencies are scaled by ``pitch_factor``.

    Output bin k takes the power at source position ``k / pitch_factor`` (linear
    interpolation), so energy at frequency f moves to ``f * pitch_factor``.
    Shape ``(n_mels, n_freq)`` float32.
    """
    base = mel_filterbank(sample_rate=config.sample_rate, n_fft=config.n_fft,
                          n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
    if pitch_factor == 1.0:
        return base.astype(np.float32)
    n_freq = base.shape[1]
    source = np.arange(n_freq) / pitch_factor
    low = np.floor(source).astype(int)
    frac = source - low
    inside = low < n_freq - 1
    # base @ W for the sparse warp W (two weights per output bin), without forming W
    warped = np.zeros_like(base)
    np.add.at(warped.T, low[inside], (base[:, inside] * (1 - frac[inside])).T)
    np.add.at(warped.T, low[inside] + 1, (base[:, inside] * frac[inside]).T)
    return warped.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """Run matrix products on one BLAS thread. How a threaded BLAS splits a product
    changes its rounding, so without this the features (and a copy rebuilt from its stored
    parameters) would depend on the caller's thread settings; on 2 cores the threaded
    product is also several times slower."""
    return _blas_controller().limit(limits=1, user_api="blas")


def trim_bounds(y: np.ndarray, *, top_db: float, frame_length: int = 1024,
                hop_length: int = 256) -> tuple[int, int]:
    """``(start, end)`` sample bounds after cutting leading and trailing frames whose RMS
    is more than ``top_db`` below the loudest frame (librosa.effects.trim's rule)."""
    if y.size < frame_length:
        return 0, y.size
    frames = np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10.0 ** (-top_db / 20.0))
    if loud.size == 0:
        return 0, y.size
    return int(loud[0] * hop_length), int(min(y.size, loud[-1] * hop_length + frame_length))


def place(y: np.ndarray, *, length: int, offset: int = 0) -> np.ndarray:
    """Centre ``y`` in ``length`` zeros (cropping the middle if longer), moved ``offset``
    samples right (negative: left); what falls outside is cut. float32 ``(length,)``."""
    out = np.zeros(length, dtype=np.float32)
    start = (length - y.size) // 2 + offset  # where y[0] lands in out
    src_from, dst_from = max(0, -start), max(0, start)
    count = min(y.size - src_from, length - dst_from)
    if count > 0:
        out[dst_from:dst_from + count] = y[src_from:src_from + count]
    return out


def speech_bounds(y: np.ndarray, config: FeatureConfig) -> tuple[int, int]:
    """Sample bounds of the part of a clip the window is built around (trimmed or whole)."""
    if config.window_mode == "trim":
        return trim_bounds(y, top_db=config.trim_top_db)
    return 0, y.size


def speech_region(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    start, end = speech_bounds(y, config)
    return y[start:end]


def power_spectrogram(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred (zero-padded), Hann-windowed STFT power, shape ``(n_frames, 1 + n_fft // 2)``."""
    from scipy import fft

    padded = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = _hann(n_fft)
    spectrum = fft.rfft(frames * window, axis=1)
    return (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _hann(n_fft: int) -> np.ndarray:
    # periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) / librosa
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def log_mel_and_mfcc(y: np.ndarray, config: FeatureConfig, *,
                     pitch_factor: float = 1.0) -> np.ndarray:
    """Features of a fixed-length window ``y`` (float32 ``(window_samples,)``).

    Returns float32 ``(2, n_mels, n_frames)``: channel 0 the MFCC (orthonormal DCT-II of
    the log-mel), channel 1 the log-mel power in dB (floored ``top_db`` below its max).
    """
    from scipy import fft

    power = power_spectrogram(y, n_fft=config.n_fft, hop_length=config.hop_length)
    with _one_blas_thread():
        mel = _warped_filterbank(config, float(pitch_factor)) @ power.T
    log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - config.top_db)
    mfcc = fft.dct(log_mel, type=2, norm="ortho", axis=0)
    return np.stack([mfcc, log_mel]).astype(np.float32)


def clean_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The un-augmented features of a whole clip ``y`` at ``config.sample_rate``: the same
    computation ``extract`` stores as copy 0 and ``predict`` uses. ``(2, n_mels, n_frames)``."""
    window = place(speech_region(y, config), length=config.window_samples)
    return log_mel_and_mfcc(window, config)
