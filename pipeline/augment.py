"""Augmentation: time shift, pitch shift, added noise and speed change.

They act on the front end's output (``pipeline.frontend``: speech found and
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

from pipeline.audio import resample
from pipeline.features import FeatureConfig, log_mel_and_mfcc, place


@dataclass(frozen=True)
class AugmentConfig:
    copies: int = 2  # augmented copies per clip, besides the clean one
    max_shift_seconds: float = 0.3
    max_semitones: float = 2.0
    snr_db: tuple[float, float] = (15.0, 35.0)
    speed: tuple[float, float] = (0.9, 1.1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class AugmentParams:
    """One copy's parameters; the identity (copy 0) has shift 0, pitch 0, SNR inf, speed 1."""

    shift_seconds: float = 0.0
    semitones: float = 0.0
    snr_db: float = float("inf")
    speed: float = 1.0
    noise_seed: int = 0

    FIELDS = ("shift_seconds", "semitones", "snr_db", "speed", "noise_seed")

    def to_row(self) -> np.ndarray:
        return np.asarray(astuple(self), dtype=np.float64)

    @classmethod
    def from_row(cls, row) -> "AugmentParams":
        shift, semitones, snr, speed, noise_seed = (float(v) for v in row)
        return cls(shift, semitones, snr, speed, int(noise_seed))


def copy_rng(*, seed: int, clip_id: str, copy: int) -> np.random.Generator:
    """The generator for one (run seed, clip, copy): stable across processes and runs."""
    clip_key = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, clip_key, copy])


def sample_params(config: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    return AugmentParams(
        shift_seconds=float(rng.uniform(-config.max_shift_seconds, config.max_shift_seconds)),
        semitones=float(rng.uniform(-config.max_semitones, config.max_semitones)),
        snr_db=float(rng.uniform(*config.snr_db)),
        speed=float(rng.uniform(*config.speed)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def params_for(config: AugmentConfig, *, seed: int, clip_id: str, copy: int) -> AugmentParams:
    """Copy 0 is the clean clip; copies 1..K draw their parameters."""
    if copy == 0:
        return AugmentParams()
    return sample_params(config, copy_rng(seed=seed, clip_id=clip_id, copy=copy))


def speech_features(speech: np.ndarray, params: AugmentParams, config: FeatureConfig) -> np.ndarray:
    """Apply ``params`` to a stretch of front-end speech (float32 ``(num_samples,)`` at
    ``config.sample_rate``: a clip's speech, or one segment of a long recording) and
    compute the features of the window built around it, float32 ``(2, n_mels,
    n_frames)``. Identity params give exactly ``features.clean_features``.

    Order: speed (resample, so tempo and pitch change together) -> window with time
    shift -> noise at the sampled SNR (relative to the speech power) -> spectrogram with
    the pitch warp.
    """
    if params.speed != 1.0:
        speech = resample(speech, orig_sr=config.sample_rate * params.speed,
                          target_sr=config.sample_rate)
    offset = int(round(params.shift_seconds * config.sample_rate))
    window = place(speech, length=config.window_samples, offset=offset)
    if np.isfinite(params.snr_db):
        signal_power = float(np.mean(np.square(speech, dtype=np.float64))) or 1e-12
        noise_power = signal_power / 10.0 ** (params.snr_db / 10.0)
        noise = np.random.default_rng(params.noise_seed).standard_normal(window.size,
                                                                         dtype=np.float32)
        window = window + np.float32(np.sqrt(noise_power)) * noise
    return log_mel_and_mfcc(window, config, pitch_factor=2.0 ** (params.semitones / 12.0))
