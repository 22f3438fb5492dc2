"""Tests of pipeline/signal/views.py: the test-time views are the clean window plus one mild,
noise-free change each, computed exactly as the augmentation computes them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from conftest import synth_speech
from pipeline.signal import frontend
from pipeline.signal.augment import AugmentParams, speech_features
from pipeline.signal.features import FeatureConfig, clean_features
from pipeline.signal.views import CLEAN, TEST_VIEWS, from_list, to_list, window_views

FEATURES = FeatureConfig()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return frontend.from_samples(synth_speech(emotion=4, seconds=1.5, seed=3), file_rate=16000,
                                 features=FEATURES).main_segment_audio()


def test_every_view_is_its_augmentation_and_the_first_is_the_clean_window(speech):
    views = window_views(speech, FEATURES, TEST_VIEWS)
    assert views.shape == (len(TEST_VIEWS), *FEATURES.shape) and views.dtype == np.float32
    np.testing.assert_array_equal(views[0], clean_features(speech, FEATURES))
    for features, view in zip(views[1:], TEST_VIEWS[1:]):
        np.testing.assert_array_equal(features, speech_features(speech, view, FEATURES))
        assert np.abs(features - views[0]).max() > 1.0  # each view really changes the input


def test_each_view_changes_one_thing_mildly_and_adds_no_noise():
    clean = dataclasses.asdict(AugmentParams())
    assert TEST_VIEWS[0] == AugmentParams() and CLEAN == (AugmentParams(),)
    for view in TEST_VIEWS[1:]:
        changed = {k for k, v in dataclasses.asdict(view).items() if v != clean[k]}
        assert len(changed) == 1 and view.snr_db == float("inf")
    assert {abs(v.semitones) for v in TEST_VIEWS} <= {0.0, 1.0}
    assert {abs(v.shift_seconds) for v in TEST_VIEWS} <= {0.0, 0.15}
    assert {v.speed for v in TEST_VIEWS} <= {0.95, 1.0, 1.05}


def test_views_round_trip_through_json():
    text = json.dumps(to_list(TEST_VIEWS), allow_nan=False)  # no infinities in the metadata
    assert from_list(json.loads(text)) == TEST_VIEWS
    assert to_list(CLEAN) == [{}] and from_list([{}]) == CLEAN
    assert from_list(None) == CLEAN  # a bundle that records no views: the clean window
