"""Augmentation: time shift, pitch shift, speed change, and the recording conditions of
``pipeline.signal.channel`` (room reverberation, coloured noise at a sampled SNR, a telephone
band).

They act on the front end's output (``pipeline.signal.frontend``: speech found and
level-normalised), so noise is added after speech detection and every copy covers the
clean copy's speech.

Parameters are sampled first (``sample_params``, from a generator seeded by run seed,
clip id and copy index), then applied (``speech_features``), and stored next to the
tensors, so any copy can be rebuilt alone from its row and does not depend on which
worker made it (the ``randomize_parameters`` / ``apply`` split of audiomentations).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, astuple, dataclass

import numpy as np

from pipeline.signal import channel
from pipeline.signal.audio import resample
from pipeline.signal.features import FeatureConfig, mfcc_and_log_mel, place


@dataclass(frozen=True)
class AugmentConfig:
    copies: int = 2  # augmented copies per clip, besides the clean one
    max_shift_seconds: float = 0.3
    max_semitones: float = 2.0
    snr_db: tuple[float, float] = (15.0, 35.0)
    speed: tuple[float, float] = (0.9, 1.1)
    # the recording conditions, chosen on validation actors (docs/experiments.md, seventh round)
    noise_betas: tuple[float, ...] = (0.0, 1.0, 2.0)  # noise colours: 0 white, 1 pink, 2 brown
    telephone_prob: float = 0.333  # share of copies band-limited to 300-3400 Hz
    reverb_prob: float = 0.333  # share of copies reverberated
    rt60: tuple[float, float] = (0.2, 0.8)  # seconds, when reverberated
    drr_db: tuple[float, float] = (0.0, 10.0)  # direct-to-reverberant ratio, when reverberated

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class AugmentParams:
    """One copy's parameters; the identity (copy 0) has shift 0, pitch 0, SNR inf, speed 1,
    no telephone band (0) and no reverberation (``rt60`` 0)."""

    shift_seconds: float = 0.0
    semitones: float = 0.0
    snr_db: float = float("inf")
    speed: float = 1.0
    noise_seed: int = 0
    noise_beta: float = 0.0
    telephone: float = 0.0  # 1: band-limited to the telephone band
    rt60: float = 0.0  # 0: no reverberation
    drr_db: float = 0.0

    FIELDS = ("shift_seconds", "semitones", "snr_db", "speed", "noise_seed", "noise_beta",
              "telephone", "rt60", "drr_db")

    def to_row(self) -> np.ndarray:
        return np.asarray(astuple(self), dtype=np.float64)

    @classmethod
    def from_row(cls, row) -> "AugmentParams":
        """Inverse of ``to_row``. Also reads the five-column rows written before the
        recording conditions existed (``shift_seconds`` .. ``noise_seed``; the rest are
        the identity). Raises ``ValueError`` for any other width."""
        values = [float(v) for v in row]
        if len(values) not in (5, len(cls.FIELDS)):
            raise ValueError(f"an augmentation row has 5 or {len(cls.FIELDS)} values "
                             f"({', '.join(cls.FIELDS)}), not {len(values)}: re-run "
                             "'ser extract --force'")
        return cls(*values[:4], int(values[4]), *values[5:])


def copy_rng(*, seed: int, clip_id: str, copy: int) -> np.random.Generator:
    """The generator for one (run seed, clip, copy): stable across processes and runs."""
    clip_key = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, clip_key, copy])


def sample_params(config: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    """Draw one copy's parameters. Every draw happens whatever the config, in a fixed
    order, so adding a kind of augmentation never changes the draws of the others."""
    shift = float(rng.uniform(-config.max_shift_seconds, config.max_shift_seconds))
    semitones = float(rng.uniform(-config.max_semitones, config.max_semitones))
    snr_db = float(rng.uniform(*config.snr_db))
    speed = float(rng.uniform(*config.speed))
    noise_seed = int(rng.integers(0, 2**31 - 1))
    beta = float(config.noise_betas[int(rng.integers(0, len(config.noise_betas)))])
    telephone = float(rng.random() < config.telephone_prob)
    reverb = rng.random() < config.reverb_prob
    rt60, drr_db = float(rng.uniform(*config.rt60)), float(rng.uniform(*config.drr_db))
    return AugmentParams(shift, semitones, snr_db, speed, noise_seed, beta, telephone,
                         rt60 if reverb else 0.0, drr_db if reverb else 0.0)


def params_for(config: AugmentConfig, *, seed: int, clip_id: str, copy: int) -> AugmentParams:
    """Copy 0 is the clean clip; copies 1..K draw their parameters."""
    if copy == 0:
        return AugmentParams()
    return sample_params(config, copy_rng(seed=seed, clip_id=clip_id, copy=copy))


def speech_features(speech: np.ndarray, params: AugmentParams, config: FeatureConfig) -> np.ndarray:
    """Apply ``params`` to a stretch of front-end speech (float32 ``(num_samples,)`` at
    ``config.sample_rate``: a clip's speech, or one segment of a long recording) and
    compute the features of the window built around it, float32 ``(2, n_mels,
    num_frames)``. Identity params give exactly ``features.clean_features``.

    Order, as a recording would have it: speed (resample, so tempo and pitch change
    together) -> room reverberation of the speech (its RMS kept) -> window with time shift
    -> coloured noise at the sampled SNR (relative to the speech power) -> telephone band
    over speech and noise, scaled so the speech keeps its RMS (the front end would have
    re-levelled it) -> spectrogram with the pitch warp.
    """
    rate = config.sample_rate
    if params.speed != 1.0:
        speech = resample(speech, orig_sr=rate * params.speed, target_sr=rate)
    if params.rt60 > 0:
        speech = channel.reverberate(speech, rt60=params.rt60, drr_db=params.drr_db,
                                     sample_rate=rate,
                                     rng=np.random.default_rng([params.noise_seed, 1]))
    window = place(speech, num_samples=config.window_samples,
                   offset=int(round(params.shift_seconds * rate)))
    if np.isfinite(params.snr_db):
        signal_power = float(np.mean(np.square(speech, dtype=np.float64))) or 1e-12
        noise_power = signal_power / 10.0 ** (params.snr_db / 10.0)
        noise = channel.coloured_noise(window.size, beta=params.noise_beta,
                                       rng=np.random.default_rng(params.noise_seed))
        window = window + np.float32(np.sqrt(noise_power)) * noise
    if params.telephone:
        band_speech = channel.telephone_band(speech, sample_rate=rate)
        gain = channel.rms(speech) / (channel.rms(band_speech) or 1.0)
        window = channel.telephone_band(window, sample_rate=rate) * np.float32(gain)
    return mfcc_and_log_mel(window, config, pitch_factor=2.0 ** (params.semitones / 12.0))

