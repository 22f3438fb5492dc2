"""Feature computation: a stretch of speech -> a ``(2, n_mels, num_frames)`` tensor of MFCC
and log-mel.

The speech comes from the front end (``pipeline.signal.frontend``: channel mix, DC removal,
speech detection, loudness normalisation); ``place`` centres it in a fixed window of
``window_seconds``, padding with zeros or cropping the middle.

The spectrogram is computed here in NumPy (Hann-windowed STFT, Slaney mel filterbank,
``10 log10`` power with an 80 dB floor below the maximum, orthonormal DCT-II for the
MFCC), which matches librosa's ``melspectrogram`` / ``power_to_db`` / ``mfcc`` (a test
checks it) without librosa's import cost. Both channels have ``n_mels`` rows.

Pitch shift is applied in the frequency domain: the power spectrum is warped by
``2 ** (semitones / 12)`` before the mel filterbank, folded into one matrix.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from pipeline.signal.frontend import FrontEndConfig

# Bump when the computation changes, so cached feature stores are recomputed.
# 3: the conditioning front end (polarity-aware mix, DC high-pass, BS.1770 loudness per
# segment) and Silero VAD replace the average-to-mono and the energy trim.
FEATURES_VERSION = 3


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    window_seconds: float = 3.0
    n_fft: int = 1024
    hop_length: int = 512  # 32 ms: half the frames of 256, which bought twice the epochs
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None  # None: the Nyquist frequency, sample_rate / 2
    top_db: float = 80.0
    front_end: FrontEndConfig = field(default_factory=FrontEndConfig)

    @property
    def mel_fmax(self) -> float:
        """The mel filterbank's top frequency (Hz): ``fmax``, or half the sample rate."""
        return self.sample_rate / 2 if self.fmax is None else self.fmax

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def num_frames(self) -> int:
        return 1 + self.window_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int, int]:
        return (2, self.n_mels, self.num_frames)

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "front_end"},
                "front_end": self.front_end.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        return cls(**{**data, "front_end": FrontEndConfig.from_dict(data.get("front_end", {}))})


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
                          n_mels=config.n_mels, fmin=config.fmin, fmax=config.mel_fmax)
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


def place(y: np.ndarray, *, num_samples: int, offset: int = 0) -> np.ndarray:
    """Centre ``y`` in ``num_samples`` zeros (cropping the middle if longer), moved
    ``offset`` samples right (negative: left); what falls outside is cut. float32
    ``(num_samples,)``: the analysis window (``FeatureConfig.window_samples``)."""
    out = np.zeros(num_samples, dtype=np.float32)
    start = (num_samples - y.size) // 2 + offset  # where y[0] lands in out
    src_from, dst_from = max(0, -start), max(0, start)
    count = min(y.size - src_from, num_samples - dst_from)
    if count > 0:
        out[dst_from:dst_from + count] = y[src_from:src_from + count]
    return out


def power_spectrogram(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred (zero-padded), Hann-windowed STFT power, shape ``(num_frames, 1 + n_fft // 2)``."""
    from scipy import fft

    padded = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    taper = _hann(n_fft)
    spectrum = fft.rfft(frames * taper, axis=1)
    return (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _hann(n_fft: int) -> np.ndarray:
    # periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) / librosa
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def mfcc_and_log_mel(y: np.ndarray, config: FeatureConfig, *,
                     pitch_factor: float = 1.0) -> np.ndarray:
    """Features of a fixed-length window ``y`` (float32 ``(window_samples,)``).

    Returns float32 ``(2, n_mels, num_frames)``: channel 0 the MFCC (orthonormal DCT-II of
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


def clean_features(speech: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The un-augmented features of a stretch of front-end speech (float32
    ``(num_samples,)`` at ``config.sample_rate``): the window centred on it, as ``extract``
    stores copy 0 and ``predict`` scores it. float32 ``(2, n_mels, num_frames)``."""
    return mfcc_and_log_mel(place(speech, num_samples=config.window_samples), config)
