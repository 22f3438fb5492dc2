"""Tests of pipeline/signal/features.py: shapes, agreement with librosa, windowing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import synth_speech
from pipeline.signal.audio import resample
from pipeline.signal.features import (
    FeatureConfig,
    clean_features,
    mfcc_and_log_mel,
    mel_filterbank,
    place,
)
from pipeline.signal.frontend import FrontEndConfig
from pipeline.signal.vad import VadConfig

# A config that differs from the defaults in every knob that changes the output.
OTHER = FeatureConfig(sample_rate=22050, window_seconds=2.0, n_fft=2048, hop_length=512,
                      n_mels=40, fmin=50.0, fmax=11025.0, top_db=60.0,
                      front_end=FrontEndConfig(highpass_hz=40.0, target_lufs=-20.0,
                                               vad=VadConfig(threshold=0.4)))
CONFIGS = pytest.mark.parametrize("config", [FeatureConfig(), OTHER], ids=["default", "other"])


# --- shape and config ---------------------------------------------------------------------


def test_default_shape_is_two_channels_of_64_mels_by_94_frames():
    # 3 s at 16 kHz = 48000 samples; centred frames every 512 samples: 1 + 48000 // 512
    assert FeatureConfig().shape == (2, 64, 94)
    assert OTHER.shape == (2, 40, 1 + 44100 // 512)


@CONFIGS
def test_clean_features_have_the_configured_shape_and_float32(config):
    y = synth_speech(emotion=5, sample_rate=config.sample_rate, seed=3)
    features = clean_features(y, config)
    assert features.shape == config.shape == (2, config.n_mels, config.num_frames)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_config_round_trips_through_a_dict_and_json():
    import json

    assert FeatureConfig.from_dict(OTHER.to_dict()) == OTHER
    assert FeatureConfig.from_dict(json.loads(json.dumps(OTHER.to_dict()))) == OTHER
    assert OTHER.to_dict()["front_end"]["vad"]["threshold"] == 0.4


# --- agreement with librosa ---------------------------------------------------------------


@CONFIGS
def test_mel_filterbank_equals_librosa_slaney(config):
    import librosa

    ours = mel_filterbank(sample_rate=config.sample_rate, n_fft=config.n_fft,
                          n_mels=config.n_mels, fmin=config.fmin, fmax=config.mel_fmax)
    reference = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft,
                                    n_mels=config.n_mels, fmin=config.fmin, fmax=config.mel_fmax,
                                    htk=False, norm="slaney")
    assert ours.shape == reference.shape == (config.n_mels, 1 + config.n_fft // 2)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-8)


@CONFIGS
def test_log_mel_and_mfcc_equal_librosa(config):
    import librosa

    window = place(synth_speech(emotion=3, sample_rate=config.sample_rate, seed=1),
                   num_samples=config.window_samples)
    ours = mfcc_and_log_mel(window, config)

    power = librosa.feature.melspectrogram(
        y=window, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.mel_fmax, power=2.0)
    log_mel = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=config.top_db)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mels)

    # the zero padding around the clip is floored at top_db below the peak: that path is used
    assert np.isclose(ours[1].min(), ours[1].max() - config.top_db, atol=1e-3)
    np.testing.assert_allclose(ours[1], log_mel, rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours[0], mfcc, rtol=0, atol=1e-3)


# --- placing a clip in the window ---------------------------------------------------------


def _arange(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float32)


@pytest.mark.parametrize("y, length, offset, expected", [
    (_arange(3), 7, 0, [0, 0, 1, 2, 3, 0, 0]),          # centred, zero padded
    (_arange(2), 5, 0, [0, 1, 2, 0, 0]),                # odd remainder goes right
    (_arange(10), 4, 0, [4, 5, 6, 7]),                  # longer: the middle is kept
    (_arange(3), 7, 2, [0, 0, 0, 0, 1, 2, 3]),          # moved right
    (_arange(3), 7, 3, [0, 0, 0, 0, 0, 1, 2]),          # moved right, end cut
    (_arange(3), 7, -3, [2, 3, 0, 0, 0, 0, 0]),         # moved left, start cut
    (_arange(3), 7, -9, [0] * 7),                       # moved out entirely
    (_arange(10), 4, 2, [2, 3, 4, 5]),                  # cropped and moved
    (_arange(4), 4, 0, [1, 2, 3, 4]),                   # exact fit
    (np.zeros(0, dtype=np.float32), 3, 0, [0, 0, 0]),   # nothing to place
])
def test_place_centres_pads_crops_and_shifts(y, length, offset, expected):
    out = place(y, num_samples=length, offset=offset)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.asarray(expected, dtype=np.float32))


# --- property: any length, any sample rate ------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seconds=st.floats(min_value=0.05, max_value=8.0),
       file_rate=st.sampled_from([8000, 11025, 22050, 44100, 48000, 96000]),
       amplitude=st.sampled_from([0.0, 1e-4, 0.05, 1.0]),
       seed=st.integers(min_value=0, max_value=2**16))
def test_clean_features_always_have_the_configured_shape_and_finite_values(
        seconds, file_rate, amplitude, seed):
    config = FeatureConfig()
    local = np.random.default_rng(seed)
    n = max(1, int(seconds * file_rate))
    t = np.arange(n) / file_rate
    clip = amplitude * (np.sin(2 * np.pi * 220.0 * t) * np.hanning(n)
                        + 0.05 * local.standard_normal(n))
    y = resample(clip.astype(np.float32), orig_sr=file_rate, target_sr=config.sample_rate)
    features = clean_features(y, config)
    assert features.shape == config.shape
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_features_do_not_depend_on_the_callers_blas_threads():
    """A threaded BLAS rounds a product differently depending on how it splits it; the
    features (and so a copy rebuilt from its stored parameters) must not change with it."""
    from threadpoolctl import threadpool_limits

    y = synth_speech(emotion=2, seed=5)
    with threadpool_limits(limits=1, user_api="blas"):
        one_thread = clean_features(y, FeatureConfig())
    with threadpool_limits(limits=2, user_api="blas"):
        two_threads = clean_features(y, FeatureConfig())
    np.testing.assert_array_equal(one_thread, two_threads)
