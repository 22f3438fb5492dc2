"""Tests of pipeline/signal/conditioning.py: channel mix, DC removal and BS.1770 loudness."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.signal.conditioning import (
    TARGET_LUFS,
    loudness,
    loudness_gain,
    mix_channels,
    peak_normalise,
    remove_dc,
)

RATE = 16000


def _tone(freq: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * RATE)) / RATE)
            ).astype(np.float32)


def test_mix_keeps_mono_and_averages_channels_in_phase():
    mono = _tone(300)
    np.testing.assert_array_equal(mix_channels(mono[:, None]), mono)
    left = _tone(300)
    right = 0.4 * left + _tone(1000, amplitude=0.1)  # correlated, as real stereo is
    np.testing.assert_allclose(mix_channels(np.stack([left, right], axis=1)), (left + right) / 2,
                               atol=1e-7)


def test_mix_does_not_cancel_an_inverted_channel():
    y = _tone(300)
    np.testing.assert_allclose(mix_channels(np.stack([y, -y], axis=1)), y, atol=1e-7)
    np.testing.assert_allclose(mix_channels(np.stack([-y, 0.5 * y], axis=1)), -0.75 * y, atol=1e-7)


def test_mix_decides_polarity_on_the_signal_not_on_a_dc_offset():
    y = _tone(300, amplitude=0.01)
    for left, right in ((y + 0.02, -y + 0.02), (y + 0.02, y - 0.02)):
        mixed = remove_dc(mix_channels(np.stack([left, right], axis=1)), sample_rate=RATE)
        expected = remove_dc(y, sample_rate=RATE)[RATE // 2:]
        sign = np.sign(mixed[RATE // 2:] @ expected)  # the polarity of the whole is free
        np.testing.assert_allclose(sign * mixed[RATE // 2:], expected, atol=1e-4)


def test_mix_of_three_channels_aligns_each_to_the_loudest():
    y = _tone(300)
    three = np.stack([0.5 * y, -y, 0.25 * y], axis=1)
    np.testing.assert_allclose(mix_channels(three), -(0.5 + 1.0 + 0.25) / 3 * y, atol=1e-6)


def test_remove_dc_removes_an_offset_without_a_start_up_step():
    y = _tone(200)
    for offset in (0.002, 0.05, -0.3):
        np.testing.assert_allclose(remove_dc(y + np.float32(offset), sample_rate=RATE),
                                   remove_dc(y, sample_rate=RATE), atol=1e-6)
    assert np.max(np.abs(remove_dc(np.full(RATE, 0.4, dtype=np.float32), sample_rate=RATE))) < 1e-6


def test_remove_dc_keeps_the_speech_band():
    for freq in (100.0, 300.0, 3000.0):
        out = remove_dc(_tone(freq), sample_rate=RATE)[RATE // 2:]  # past the filter's start
        assert np.sqrt(np.mean(out ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02), freq
    hum = remove_dc(_tone(20.0), sample_rate=RATE)[RATE // 2:]
    assert np.sqrt(np.mean(hum ** 2)) < 0.02  # well below the band: strongly cut


def test_loudness_follows_gain_and_reaches_the_target():
    y = _tone(1000, seconds=2.0)
    base = loudness(y, sample_rate=RATE)
    # BS.1770-4: a full-scale 1 kHz sine reads -3.01 LKFS
    assert base == pytest.approx(20 * np.log10(0.3) - 3.01, abs=0.1)
    assert loudness(y * np.float32(0.1), sample_rate=RATE) == pytest.approx(base - 20.0, abs=1e-3)
    gained = y * np.float32(loudness_gain(y, sample_rate=RATE))
    assert loudness(gained, sample_rate=RATE) == pytest.approx(TARGET_LUFS, abs=1e-3)


def test_loudness_of_nothing_and_of_too_little():
    assert np.isnan(loudness_gain(np.zeros(RATE, dtype=np.float32), sample_rate=RATE))
    with pytest.raises(ValueError, match="shorter than one 0.4 s loudness block"):
        loudness(_tone(1000, seconds=0.2), sample_rate=RATE)


def test_peak_normalise():
    y = _tone(440, amplitude=0.02)
    assert np.max(np.abs(peak_normalise(y))) == pytest.approx(1.0)
    np.testing.assert_array_equal(peak_normalise(np.zeros(4, np.float32)), np.zeros(4))
