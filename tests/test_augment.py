"""Tests of pipeline/signal/augment.py: seeded parameters, what each augmentation does, and that
a stored row can be rebuilt alone from its recorded parameters."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import synth_speech
from pipeline.corpus.download import corpus_root
from pipeline.corpus.extract import ExtractConfig, extract
from pipeline.corpus.index import load_index
from pipeline.corpus.store import read_shard
from pipeline.signal import frontend
from pipeline.signal.augment import (
    AugmentConfig,
    AugmentParams,
    copy_rng,
    params_for,
    sample_params,
    speech_features,
)
from pipeline.signal.features import FeatureConfig, clean_features

FEATURES = FeatureConfig()
AUGMENT = AugmentConfig()
RECORDING = AugmentConfig(noise_betas=(0.0, 1.0, 2.0), telephone_prob=0.5, reverb_prob=1.0)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Front-end speech: found by the detector and level-normalised, as extract sees it."""
    return frontend.from_samples(synth_speech(emotion=6, seed=11), file_rate=16000,
                                 features=FEATURES).main_segment_audio()


# --- parameters ---------------------------------------------------------------------------


def test_same_seed_clip_and_copy_give_identical_params_and_features(speech):
    first = params_for(AUGMENT, seed=5, clip_id="03-01-06-01-01-01-02", copy=1)
    again = params_for(AUGMENT, seed=5, clip_id="03-01-06-01-01-01-02", copy=1)
    assert first == again
    assert first != AugmentParams()
    np.testing.assert_array_equal(speech_features(speech, first, FEATURES),
                                  speech_features(speech, again, FEATURES))


def test_different_copies_clips_and_seeds_differ(speech):
    clip = "03-01-06-01-01-01-02"
    base = params_for(RECORDING, seed=0, clip_id=clip, copy=1)
    others = [params_for(RECORDING, seed=0, clip_id=clip, copy=2),
              params_for(RECORDING, seed=0, clip_id="03-01-06-01-01-02-02", copy=1),
              params_for(RECORDING, seed=1, clip_id=clip, copy=1)]
    continuous = set(AugmentParams.FIELDS) - {"noise_beta", "telephone"}  # drawn from a few values
    for other in others:
        assert other != base
        for name in continuous:  # every field is drawn, none is shared
            assert getattr(other, name) != getattr(base, name)
    copy1 = speech_features(speech, base, FEATURES)
    copy2 = speech_features(speech, others[0], FEATURES)
    assert not np.allclose(copy1, copy2, atol=0.5)


def test_the_generator_depends_only_on_seed_clip_and_copy():
    draw = copy_rng(seed=3, clip_id="x", copy=2).random(4)
    np.random.seed(999)  # global state must not matter
    np.testing.assert_array_equal(copy_rng(seed=3, clip_id="x", copy=2).random(4), draw)


def test_sampled_params_stay_in_the_configured_ranges():
    config = AugmentConfig(max_shift_seconds=0.1, max_semitones=1.0, snr_db=(20.0, 25.0),
                           speed=(0.95, 1.05))
    drawn = [sample_params(config, copy_rng(seed=0, clip_id="c", copy=k)) for k in range(1, 200)]
    assert all(-0.1 <= p.shift_seconds <= 0.1 for p in drawn)
    assert all(-1.0 <= p.semitones <= 1.0 for p in drawn)
    assert all(20.0 <= p.snr_db <= 25.0 for p in drawn)
    assert all(0.95 <= p.speed <= 1.05 for p in drawn)
    assert all(0 <= p.noise_seed < 2**31 for p in drawn)
    # the draws spread over the ranges rather than sticking to one value
    assert np.ptp([p.semitones for p in drawn]) > 1.5


def test_copy_zero_is_the_identity_and_reproduces_clean_features_exactly(speech):
    identity = params_for(AUGMENT, seed=7, clip_id="anything", copy=0)
    assert identity == AugmentParams()
    assert (identity.shift_seconds, identity.semitones, identity.snr_db, identity.speed) == (
        0.0, 0.0, float("inf"), 1.0)
    np.testing.assert_array_equal(speech_features(speech, identity, FEATURES),
                                  clean_features(speech, FEATURES))
    other = FeatureConfig(n_mels=40, window_seconds=2.0)
    np.testing.assert_array_equal(speech_features(speech, identity, other),
                                  clean_features(speech, other))


def test_params_round_trip_through_a_row():
    params = AugmentParams(shift_seconds=-0.123456789, semitones=1.5, snr_db=17.25,
                           speed=0.93, noise_seed=2**31 - 2)
    row = params.to_row()
    assert row.dtype == np.float64 and row.shape == (len(AugmentParams.FIELDS),)
    assert AugmentParams.from_row(row) == params
    assert AugmentParams.from_row(AugmentParams().to_row()) == AugmentParams()  # inf SNR


def test_five_column_rows_from_before_the_recording_conditions_still_read():
    old = np.array([0.1, -1.0, 20.0, 1.05, 12345.0])
    assert AugmentParams.from_row(old) == AugmentParams(0.1, -1.0, 20.0, 1.05, 12345)
    with pytest.raises(ValueError, match="extract --force"):
        AugmentParams.from_row(np.zeros(7))


def test_noise_and_reverberation_draw_from_different_streams(speech):
    """The reverberation's generator is seeded by (noise_seed, 1), not noise_seed itself:
    a copy with both must not reuse the noise's samples as its room."""
    from pipeline.signal import channel

    room = channel.room_impulse_response(rt60=0.5, drr_db=0.0, sample_rate=16000,
                                         rng=np.random.default_rng([7, 1]))
    same_stream = channel.room_impulse_response(rt60=0.5, drr_db=0.0, sample_rate=16000,
                                                rng=np.random.default_rng(7))
    assert not np.allclose(room, same_stream)
    both = speech_features(speech, AugmentParams(snr_db=20.0, noise_seed=7, rt60=0.5), FEATURES)
    again = speech_features(speech, AugmentParams(snr_db=20.0, noise_seed=7, rt60=0.5), FEATURES)
    np.testing.assert_array_equal(both, again)


def test_augment_config_round_trips_through_json():
    config = AugmentConfig(copies=4, snr_db=(10.0, 20.0), speed=(0.8, 1.2))
    assert AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# --- what each augmentation does ----------------------------------------------------------


def _energy_centre(features: np.ndarray) -> float:
    """Centre of mass of the mel power over frames."""
    energy = (10.0 ** (features[1] / 10.0)).sum(axis=0)
    return float((energy * np.arange(energy.size)).sum() / energy.sum())


def test_time_shift_moves_the_speech_right(speech):
    shifted = speech_features(speech, AugmentParams(shift_seconds=0.25), FEATURES)
    moved_frames = _energy_centre(shifted) - _energy_centre(clean_features(speech, FEATURES))
    assert moved_frames == pytest.approx(0.25 * FEATURES.sample_rate / FEATURES.hop_length, abs=1.0)


def test_pitch_shift_of_an_octave_doubles_the_frequency():
    t = np.arange(FEATURES.sample_rate) / FEATURES.sample_rate
    tone = lambda hz: (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)  # noqa: E731
    peak_band = lambda f: int(np.argmax(f[1].mean(axis=1)))  # noqa: E731
    up = speech_features(tone(500.0), AugmentParams(semitones=12.0), FEATURES)
    assert peak_band(up) == peak_band(clean_features(tone(1000.0), FEATURES))
    assert peak_band(up) > peak_band(clean_features(tone(500.0), FEATURES))


def test_speed_change_shortens_the_speech(speech):
    def active_frames(features):
        return int((features[1] > features[1].max() - 30.0).any(axis=0).sum())

    clean = active_frames(clean_features(speech, FEATURES))
    faster = active_frames(speech_features(speech, AugmentParams(speed=1.25), FEATURES))
    assert clean / faster == pytest.approx(1.25, rel=0.06)


def test_noise_fills_the_silence_at_the_requested_level(speech):
    clean = clean_features(speech, FEATURES)
    loud = speech_features(speech, AugmentParams(snr_db=0.0, noise_seed=3), FEATURES)
    faint = speech_features(speech, AugmentParams(snr_db=40.0, noise_seed=3), FEATURES)
    # the zero padding (the window's first frames) is at the floor (top_db below the peak)
    # without noise, well above it with
    padding = slice(0, 5)
    assert np.median(clean[1][:, padding]) == pytest.approx(clean[1].max() - FEATURES.top_db, abs=0.01)
    assert np.median(loud[1][:, padding]) > np.median(faint[1][:, padding]) + 20.0
    other_seed = speech_features(speech, AugmentParams(snr_db=0.0, noise_seed=4), FEATURES)
    assert not np.array_equal(loud, other_seed)


def _band_energy_db(features: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Mean log-mel level (dB) over the mel bands centred between ``low_hz`` and ``high_hz``."""
    from pipeline.signal.features import hz_to_mel, mel_to_hz

    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(FEATURES.fmin)),
                                  hz_to_mel(np.array(FEATURES.mel_fmax)), FEATURES.n_mels + 2))
    centres = edges[1:-1]
    bands = (centres >= low_hz) & (centres <= high_hz)
    return float(features[1][bands].mean())


def test_telephone_band_removes_what_lies_outside_300_to_3400_hz(speech):
    clean = clean_features(speech, FEATURES)
    phone = speech_features(speech, AugmentParams(telephone=1.0), FEATURES)
    for low, high in ((0.0, 150.0), (4500.0, 8000.0)):  # outside the band: far weaker
        assert _band_energy_db(phone, low, high) < _band_energy_db(clean, low, high) - 10.0
    # inside it, the speech keeps its level within a few dB (the gain restores its RMS)
    assert abs(_band_energy_db(phone, 500.0, 3000.0) - _band_energy_db(clean, 500.0, 3000.0)) < 4.0


def test_reverberation_carries_speech_energy_into_the_pause_after_it(speech):
    padded = np.concatenate([speech, np.zeros(8000, dtype=np.float32)])  # 0.5 s of silence
    clean = clean_features(padded, FEATURES)
    wet = speech_features(padded, AugmentParams(rt60=0.8, drr_db=0.0, noise_seed=2), FEATURES)
    end = (FEATURES.window_samples - padded.size) // 2 + speech.size  # where speech stops
    after = slice(end // FEATURES.hop_length + 2, (end + 4000) // FEATURES.hop_length)
    assert wet[1][:, after].mean() > clean[1][:, after].mean() + 10.0
    dry_again = speech_features(padded, AugmentParams(rt60=0.0, drr_db=0.0, noise_seed=2), FEATURES)
    np.testing.assert_array_equal(dry_again, clean)


def test_brown_noise_puts_more_energy_low_than_white_at_the_same_snr(speech):
    white = speech_features(speech, AugmentParams(snr_db=0.0, noise_seed=3), FEATURES)
    brown = speech_features(speech, AugmentParams(snr_db=0.0, noise_seed=3, noise_beta=2.0),
                            FEATURES)
    padding = slice(0, 5)  # noise alone
    tilt = lambda f: (_band_energy_db(f[:, :, padding], 0, 500)  # noqa: E731
                      - _band_energy_db(f[:, :, padding], 4000, 8000))
    assert tilt(brown) > tilt(white) + 20.0


# --- a stored row can be rebuilt alone ----------------------------------------------------


def test_a_stored_row_is_rebuilt_exactly_from_its_recorded_params(indexed, tmp_path):
    # every copy reverberated, half of them band-limited, noise of three colours
    config = ExtractConfig(augment=dataclasses.replace(RECORDING, copies=2), seed=3, shard_clips=8)
    result = extract(data_dir=indexed, artifacts_dir=tmp_path / "artifacts", config=config)
    rows = read_shard(result.features_dir / "shard-00001.h5")
    paths = {clip.clip_id: corpus_root(indexed) / clip.path for clip in load_index(indexed)}
    assert len(rows["copy"]) == 8 * 3
    drawn = [AugmentParams.from_row(row) for row in rows["aug_params"]]
    augmented = [p for p in drawn if p != AugmentParams()]
    assert len(augmented) == 16 and all(p.rt60 > 0 for p in augmented)
    assert any(p.telephone for p in augmented) and not all(p.telephone for p in augmented)
    assert len({p.noise_beta for p in augmented}) > 1  # the rebuild covers several colours

    # rebuild the rows in reverse order, each from its own row only (no earlier copies)
    for i in reversed(range(len(rows["copy"]))):
        clip_id, copy = rows["clip_id"][i], int(rows["copy"][i])
        params = AugmentParams.from_row(rows["aug_params"][i])
        assert params == params_for(config.augment, seed=3, clip_id=clip_id, copy=copy)
        y = frontend.load(Path(paths[clip_id]), config.features).main_segment_audio()
        rebuilt = speech_features(y, params, config.features).astype(np.float16)
        np.testing.assert_array_equal(rebuilt, rows["features"][i])
