"""Tests of pipeline/signal/stream.py: a long recording decoded and segmented block by block
finds the speech the whole-file front end finds, never cut at a block edge, and is
scored as it goes. Blocks are shrunk (8 s, margin 6 s) so a 40 s file spans five."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from conftest import synth_speech
from pipeline.core.errors import NoSpeechError
from pipeline.signal import frontend, stream
from pipeline.signal.features import FeatureConfig

RATE = 22050  # another rate than the features': the streaming resampler runs
SPEECH_AT = (1.0, 7.2, 13.0, 20.5, 30.0, 37.0)  # 7.2 s: speech across the first block edge


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(stream, "BLOCK_SECONDS", 8.0)
    monkeypatch.setattr(stream, "MARGIN_SECONDS", 6.0)
    monkeypatch.setattr(stream, "STREAM_SECONDS", 20.0)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """40 s of stereo at 22.05 kHz: quiet noise and six utterances of ~1.5 s."""
    y = 1e-4 * np.random.default_rng(0).standard_normal((40 * RATE, 2)).astype(np.float32)
    for k, at in enumerate(SPEECH_AT):
        speech = synth_speech(emotion=1 + k, seconds=1.5, sample_rate=RATE, seed=k, channels=2)
        start = int(at * RATE)
        y[start:start + len(speech)] += speech[:len(y) - start]
    path = tmp_path_factory.mktemp("long") / "talk.wav"
    soundfile.write(path, y, RATE)
    return path


def test_blocks_find_the_segments_the_whole_file_front_end_finds(long_file, small_blocks):
    config = FeatureConfig()
    whole = frontend.load(long_file, config)
    streamed = list(stream.segments(long_file, config))
    assert len(streamed) == len(whole.segments) == len(SPEECH_AT)
    for segment, reference in zip(streamed, whole.segments):
        assert segment.start_s == pytest.approx(reference.start / config.sample_rate, abs=0.15)
        assert segment.end_s == pytest.approx(reference.end / config.sample_rate, abs=0.15)
        assert segment.audio.size == pytest.approx((segment.end_s - segment.start_s)
                                                   * config.sample_rate, abs=2)
    assert [s.start_s for s in streamed] == sorted(s.start_s for s in streamed)


def test_the_carried_filter_and_resampler_equal_the_whole_file_ones(long_file):
    from pipeline.signal import conditioning
    from pipeline.signal.audio import resample

    # one channel: how a block's channels are mixed (polarity) is decided per block
    samples = soundfile.read(long_file, dtype="float32", always_2d=True)[0][:, :1]
    config = FeatureConfig()
    whole = resample(conditioning.remove_dc(samples[:, 0], sample_rate=RATE),
                     orig_sr=RATE, target_sr=config.sample_rate)
    conditioner = stream.Conditioner(RATE, config.sample_rate, config.front_end)
    parts = [conditioner.push(samples[i:i + 3 * RATE]) for i in range(0, len(samples), 3 * RATE)]
    parts.append(conditioner.push(samples[:0], last=True))
    blockwise = np.concatenate(parts)
    assert abs(blockwise.size - whole.size) <= 1
    n = min(blockwise.size, whole.size)
    # identical filtering; soxr's streaming and one-shot outputs agree to float precision
    np.testing.assert_allclose(blockwise[:n], whole[:n], atol=2e-4)


def test_a_recording_without_speech_names_the_file(tmp_path, small_blocks):
    path = tmp_path / "hum.wav"
    t = np.arange(30 * 16000) / 16000
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 120 * t)).astype(np.float32), 16000)
    with pytest.raises(NoSpeechError, match=r"hum.wav: no speech detected in 30 s"):
        list(stream.segments(path, FeatureConfig()))


def test_only_files_longer_than_the_threshold_are_streamed(long_file, tmp_path, small_blocks):
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(16000 * 5, np.float32), 16000)
    assert is_long(long_file) and not is_long(short)
    from pipeline.inference.predict import file_windows
    from pipeline.signal.features import FeatureConfig

    missing = file_windows(tmp_path / "missing.wav", FeatureConfig())  # reported, not streamed
    assert missing.error.startswith("cannot open") and not missing.streamed
    assert file_windows(long_file, FeatureConfig()).streamed


def test_a_long_file_is_scored_segment_by_segment_as_it_goes(long_file, small_blocks):
    from test_scorer import _model
    from pipeline.core import labels
    from pipeline.inference.predict import iter_predictions
    from pipeline.inference.scorer import Scorer
    from pipeline.signal.views import CLEAN

    scorer = Scorer(_model(0), FeatureConfig(), labels.EMOTIONS, CLEAN)
    seen = []
    [result] = iter_predictions([long_file], scorer, on_segment=seen.append)
    assert result.error == "" and len(result.segments) == len(SPEECH_AT)
    assert seen == result.segments  # each record passed on as it was scored
    assert "streamed" in result.notes[0]
    weights = np.array([s["speech_s"] for s in seen])
    per_segment = np.array([[s["probabilities"][label] for label in labels.EMOTIONS] for s in seen])
    expected = weights @ per_segment / weights.sum()
    assert [result.probabilities[label] for label in labels.EMOTIONS] == pytest.approx(expected)


def is_long(path) -> bool:
    """``stream.is_long`` of the file at ``path``, opened as ``predict`` opens it."""
    from pipeline.signal import stream
    from pipeline.signal.audio import open_file

    with open_file(path) as opened:
        return stream.is_long(opened)


def test_the_python_api_scores_a_long_file_as_the_command_line_does(long_file, small_blocks):
    from test_scorer import _model
    from pipeline.core import labels
    from pipeline.inference import api
    from pipeline.inference.predict import iter_predictions
    from pipeline.inference.scorer import Scorer
    from pipeline.signal.views import CLEAN

    scorer = Scorer(_model(0), FeatureConfig(), labels.EMOTIONS, CLEAN)
    record = api.predict_file(long_file, model=scorer, tta=False)
    [result] = iter_predictions([long_file], scorer, tta=False)
    assert "streamed" in record["notes"][0] and record["path"] == str(long_file)
    assert record["probabilities"] == result.probabilities
    assert record["timeline"] == result.segments
