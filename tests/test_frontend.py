"""The front end on real (espeak-ng) speech: level, DC, channel layout and clicks must not
change what the model sees, and things that are not speech must never be scored.

Conditioned signals and features are compared numerically. Tolerances: the speech
regions must be identical (sample for sample), conditioned samples equal within 1e-4
of full scale, and log-mel / MFCC features within 0.01 dB, all far below anything a
model could hear (the features' float16 storage step near 0 dB is 0.001 dB, near
60 dB 0.03 dB).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import synth_speech
from pipeline.core.errors import AudioError, NoSpeechError
from pipeline.signal import frontend
from pipeline.signal.features import FeatureConfig, clean_features
from pipeline.signal.vad import VAD_FRAME_SAMPLES

CONFIG = FeatureConfig()
RATE = 44100  # as many real recordings: the front end resamples to 16 kHz
SAMPLE_ATOL = 1e-4
FEATURE_ATOL_DB = 0.01


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A quiet take (peak 0.05, as RAVDESS's), 44.1 kHz mono."""
    y = synth_speech(emotion=4, seed=2, sample_rate=RATE)
    return (0.05 * y / np.abs(y).max()).astype(np.float32)


def _prepared(samples: np.ndarray) -> frontend.Speech:
    return frontend.from_samples(samples, file_rate=RATE, features=CONFIG)


def _assert_same(a: frontend.Speech, b: frontend.Speech) -> None:
    assert a.regions == b.regions
    assert a.segments == b.segments
    audio_a, audio_b = a.main_segment_audio(), b.main_segment_audio()
    np.testing.assert_allclose(audio_a, audio_b, atol=SAMPLE_ATOL)
    np.testing.assert_allclose(clean_features(audio_a, CONFIG), clean_features(audio_b, CONFIG),
                               atol=FEATURE_ATOL_DB)


@pytest.mark.parametrize("gain_db", [-30.0, -20.0, 20.0])
def test_a_gain_changes_nothing(speech, gain_db):
    scaled = speech * np.float32(10 ** (gain_db / 20))  # float samples: +20 dB is not clipped
    _assert_same(_prepared(speech), _prepared(scaled))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exponent=st.floats(0.0, 38.5))
def test_any_finite_sample_scale_is_conditioned_like_the_source(speech, exponent):
    scaled = (speech / np.abs(speech).max()).astype(np.float64) * 10 ** exponent
    _assert_same(_prepared(speech), _prepared(scaled.astype(np.float32)))


@pytest.mark.parametrize("peak", [2.0, 1e6, 1e18, 3e38])
def test_absurd_float_sample_values_are_conditioned_like_the_source(speech, peak):
    # float files may hold any finite value; a corrupt one can peak near float32's maximum
    huge = (speech / np.abs(speech).max()).astype(np.float64) * peak
    _assert_same(_prepared(speech), _prepared(huge.astype(np.float32)))


def test_peak_normalised_copy_changes_nothing(speech):
    _assert_same(_prepared(speech), _prepared(0.9 * speech / np.abs(speech).max()))


def test_the_conditioned_speech_has_the_target_loudness(speech):
    from pipeline.signal.conditioning import loudness

    for gain in (0.03, 1.0, 10.0):
        audio = _prepared(speech * np.float32(gain)).main_segment_audio()
        assert loudness(audio, sample_rate=CONFIG.sample_rate) == pytest.approx(
            CONFIG.front_end.target_lufs, abs=0.01)


@pytest.mark.parametrize("offset", [0.002, 0.01, 0.02, 0.05, -0.03])
def test_a_dc_offset_changes_nothing(speech, offset):
    _assert_same(_prepared(speech), _prepared(speech + np.float32(offset)))


def test_inverted_channel_stereo_equals_its_mono_source(tmp_path, speech):
    path = tmp_path / "inverted.flac"
    soundfile.write(path, np.stack([speech, -speech], axis=1), RATE)
    mono = tmp_path / "mono.flac"
    soundfile.write(mono, speech, RATE)
    _assert_same(frontend.load(mono, CONFIG), frontend.load(path, CONFIG))


def test_a_click_before_speech_moves_the_start_by_at_most_one_detector_frame(speech):
    clicked = speech.copy()
    onset = _prepared(speech).regions[0][0] * RATE // CONFIG.sample_rate
    click = slice(onset - int(0.2 * RATE), onset - int(0.2 * RATE) + int(0.0025 * RATE))
    clicked[click] = 1.0  # 2.5 ms at full scale, 0.2 s before the speech
    plain, with_click = _prepared(speech), _prepared(clicked)
    assert abs(with_click.regions[0][0] - plain.regions[0][0]) <= VAD_FRAME_SAMPLES
    assert with_click.regions[0][0] > (onset - int(0.2 * RATE)) * CONFIG.sample_rate / RATE
    # the click is outside the speech, so it does not set the speech's level
    assert with_click.segments[0].start >= plain.segments[0].start - VAD_FRAME_SAMPLES
    level = np.sqrt(np.mean(np.square(plain.main_segment_audio())))
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(with_click.main_segment_audio()))), level,
                               rtol=0.05)


def _seconds(n: float) -> np.ndarray:
    return np.arange(int(n * RATE)) / RATE


NOT_SPEECH = {
    "hum-50Hz": lambda rng: 0.3 * np.sin(2 * np.pi * 50 * _seconds(3)),
    "hum-with-harmonics": lambda rng: sum(0.2 / k * np.sin(2 * np.pi * 50 * k * _seconds(3))
                                          for k in range(1, 6)),
    "tone-440Hz": lambda rng: 0.3 * np.sin(2 * np.pi * 440 * _seconds(3)),
    "white-noise": lambda rng: 0.3 * rng.standard_normal(3 * RATE),
    "dc-only": lambda rng: np.full(3 * RATE, 0.2),
    "dither-4-lsb": lambda rng: rng.integers(-4, 5, 3 * RATE) / 32768,
    "one-sample": lambda rng: np.array([0.5]),
    "tone-10ms": lambda rng: 0.5 * np.sin(2 * np.pi * 440 * _seconds(0.01)),
}


@pytest.mark.parametrize("name", sorted(NOT_SPEECH))
def test_what_is_not_speech_is_refused(name):
    samples = NOT_SPEECH[name](np.random.default_rng(5)).astype(np.float32)
    with pytest.raises(AudioError, match="no speech detected|silent"):
        _prepared(samples)


def test_no_speech_says_how_much_was_found(speech):
    # leading silence, 0.3 s of the onset, then a second of silence: under 0.5 s of speech
    snippet = np.concatenate([speech[:int(0.6 * RATE)], np.zeros(RATE, dtype=np.float32)])
    with pytest.raises(NoSpeechError, match=r"no speech detected \([0-9.]+ s of speech found; "
                                            r"a segment needs at least 0.5 s\)"):
        _prepared(snippet)


def test_a_recording_too_short_for_any_segment_says_so(speech):
    with pytest.raises(NoSpeechError, match=r"no speech detected \(the recording lasts only "
                                            r"0\.300 s; a segment needs at least 0.5 s"):
        _prepared(speech[:int(0.3 * RATE)])


def test_speech_between_long_pauses_becomes_separate_segments(speech):
    pause = np.zeros(3 * RATE, dtype=np.float32)
    talk = _prepared(np.concatenate([speech, pause, speech, pause, speech]))
    assert len(talk.segments) == 3
    starts = [s.start / CONFIG.sample_rate for s in talk.segments]
    assert np.all(np.diff(starts) > 3.0)
    one = _prepared(speech)
    for segment in talk.segments:
        assert segment.speech_samples == pytest.approx(one.segments[0].speech_samples,
                                                       abs=2 * VAD_FRAME_SAMPLES)


@pytest.mark.realdata
@pytest.mark.parametrize("name", [
    "Actor_01/03-01-02-01-01-02-01",   # stereo
    "Actor_02/03-01-04-01-01-01-02",   # a quiet sad take
    "Actor_11/03-01-05-02-01-01-11",   # a strong angry take
    "Actor_20/03-01-06-01-01-02-20",   # stereo, fearful
])
def test_real_clips_keep_their_features_under_gain_and_dc(name):
    from conftest import SHARED_RAVDESS

    samples, rate = soundfile.read(str(SHARED_RAVDESS / f"{name}.flac"), dtype="float32",
                                   always_2d=True)
    reference = frontend.from_samples(samples, file_rate=rate, features=CONFIG)
    for changed in (samples * np.float32(10 ** (-30 / 20)), samples * np.float32(10.0),
                    0.9 * samples / np.abs(samples).max(), samples + np.float32(0.02)):
        _assert_same(reference, frontend.from_samples(changed, file_rate=rate, features=CONFIG))


def test_speech_detection_never_sets_torch_threads(speech, monkeypatch):
    """The thread count is the process's, set once by its entry point: detecting speech
    (while the service scores in other threads) never changes it, even for a moment."""
    import torch

    from pipeline.signal import vad

    vad._detector()
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    _prepared(speech)
    assert calls == []


@pytest.mark.parametrize("seconds_before", [0.0, 0.08])
def test_a_click_at_the_start_or_next_to_the_speech_is_not_speech(speech, seconds_before):
    plain = _prepared(speech)
    onset = plain.regions[0][0] * RATE // CONFIG.sample_rate
    at = max(0, onset - int(seconds_before * RATE) - int(0.0025 * RATE)) if seconds_before else 0
    clicked = speech.copy()
    clicked[at:at + int(0.0025 * RATE)] = 1.0
    with_click = _prepared(clicked)
    assert abs(with_click.regions[0][0] - plain.regions[0][0]) <= VAD_FRAME_SAMPLES


def test_extract_trains_on_the_segment_with_the_most_speech():
    from pipeline.signal.vad import Segment

    rate = CONFIG.sample_rate
    signal = np.random.default_rng(0).standard_normal(10 * rate).astype(np.float32)
    segments = [Segment(0, rate, int(0.6 * rate)), Segment(2 * rate, 6 * rate, 3 * rate),
                Segment(7 * rate, 9 * rate, 2 * rate)]
    speech = frontend.Speech(signal, rate, [(0, rate), (2 * rate, 9 * rate)], segments)
    np.testing.assert_array_equal(speech.main_segment_audio(), speech.segment_audio(segments[1]))
    assert speech.main_segment_audio().size == 4 * rate
