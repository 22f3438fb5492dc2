"""Tests of pipeline/signal/vad.py: how detected speech regions become the segments that are
scored (the detector itself is exercised on real speech in test_frontend.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.signal.vad import Segment, VadConfig, group_segments

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
