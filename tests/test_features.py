"""Tests of pipeline/features.py: shapes, agreement with librosa, trimming, windowing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import synth_speech
from pipeline.audio import resample
from pipeline.features import (FeatureConfig, clean_features, log_mel_and_mfcc, mel_filterbank,
                               place, trim_bounds)

# A config that differs from the defaults in every knob that changes the output.
OTHER = FeatureConfig(sample_rate=22050, window_seconds=2.0, window_mode="centre",
                      trim_top_db=30.0, n_fft=2048, hop_length=512, n_mels=40, fmin=50.0,
                      fmax=11025.0, top_db=60.0)
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
    assert features.shape == config.shape == (2, config.n_mels, config.n_frames)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_config_round_trips_through_a_dict():
    assert FeatureConfig.from_dict(OTHER.to_dict()) == OTHER


def test_unknown_window_mode_is_refused():
    with pytest.raises(ValueError, match="window_mode 'middle'"):
        FeatureConfig(window_mode="middle")


# --- agreement with librosa ---------------------------------------------------------------


@CONFIGS
def test_mel_filterbank_equals_librosa_slaney(config):
    import librosa

    ours = mel_filterbank(sample_rate=config.sample_rate, n_fft=config.n_fft,
                          n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
    reference = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft,
                                    n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
                                    htk=False, norm="slaney")
    assert ours.shape == reference.shape == (config.n_mels, 1 + config.n_fft // 2)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-8)


@CONFIGS
def test_log_mel_and_mfcc_equal_librosa(config):
    import librosa

    window = place(synth_speech(emotion=3, sample_rate=config.sample_rate, seed=1),
                   length=config.window_samples)
    ours = log_mel_and_mfcc(window, config)

    power = librosa.feature.melspectrogram(
        y=window, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, power=2.0)
    log_mel = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=config.top_db)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mels)

    # the zero padding around the clip is floored at top_db below the peak: that path is used
    assert np.isclose(ours[1].min(), ours[1].max() - config.top_db, atol=1e-3)
    np.testing.assert_allclose(ours[1], log_mel, rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours[0], mfcc, rtol=0, atol=1e-3)


# --- trimming -----------------------------------------------------------------------------


def _tone(samples: int, *, sample_rate: int = 16000, freq: float = 300.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(samples) / sample_rate)).astype(np.float32)


def test_trim_bounds_cut_leading_and_trailing_silence():
    lead, speech, tail = 8000, 16000, 12000
    y = np.concatenate([np.zeros(lead), _tone(speech), np.zeros(tail)]).astype(np.float32)
    start, end = trim_bounds(y, top_db=40.0, frame_length=1024, hop_length=256)
    # a frame is kept when it overlaps the tone, so the bounds sit within one frame of it
    assert lead - 1024 < start <= lead
    assert lead + speech <= end < lead + speech + 1024
    assert end - start < y.size - 10000


def test_trim_bounds_keep_everything_when_nothing_stands_out():
    assert trim_bounds(np.zeros(20000, dtype=np.float32), top_db=40.0) == (0, 20000)
    # a steady tone: nothing is cut but the tail that fills no whole frame (< one hop)
    start, end = trim_bounds(_tone(20000), top_db=40.0, frame_length=1024, hop_length=256)
    assert start == 0 and 20000 - 256 < end <= 20000
    assert trim_bounds(_tone(500), top_db=40.0) == (0, 500)  # shorter than one frame


def test_trim_mode_ignores_how_much_silence_surrounds_the_speech():
    speech = synth_speech(emotion=4, seed=7)[4800:-4800]  # without its own silence
    hop = 256  # silence lengths on the hop grid, so the trimmed samples are identical
    short = np.concatenate([np.zeros(10 * hop), speech, np.zeros(40 * hop)]).astype(np.float32)
    long = np.concatenate([np.zeros(60 * hop), speech, np.zeros(5 * hop)]).astype(np.float32)
    trim = FeatureConfig()
    np.testing.assert_array_equal(clean_features(short, trim), clean_features(long, trim))
    centre = FeatureConfig(window_mode="centre")
    assert not np.allclose(clean_features(short, centre), clean_features(long, centre), atol=1.0)


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
    out = place(y, length=length, offset=offset)
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
