"""Tests of pipeline/signal/channel.py: the telephone band, coloured noise and synthetic room
reverberation used by augmentation, each against what it is defined to do."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.signal import channel

RATE = 16000


def _tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _gain_db(hz: float) -> float:
    tone = _tone(hz)
    out = channel.telephone_band(tone, sample_rate=RATE)[RATE // 2:]  # past the transient
    return 20 * np.log10(np.sqrt(np.mean(out ** 2)) / np.sqrt(np.mean(tone[RATE // 2:] ** 2)))


@pytest.mark.parametrize("hz", [500.0, 1000.0, 2500.0])
def test_telephone_band_passes_the_band(hz):
    assert _gain_db(hz) == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize("hz", [60.0, 100.0, 6000.0, 7500.0])
def test_telephone_band_stops_outside_it(hz):
    assert _gain_db(hz) < -20.0


def test_telephone_band_keeps_length_and_dtype_and_handles_empty_input():
    out = channel.telephone_band(_tone(1000.0, 0.1), sample_rate=RATE)
    assert out.shape == (1600,) and out.dtype == np.float32
    assert channel.telephone_band(np.zeros(0, np.float32), sample_rate=RATE).size == 0


def test_white_noise_is_the_generators_own_standard_normal():
    noise = channel.coloured_noise(1000, beta=0.0, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(noise, np.random.default_rng(4).standard_normal(1000, dtype=np.float32))


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_coloured_noise_has_unit_rms_and_a_1_over_f_beta_spectrum(beta):
    noise = channel.coloured_noise(2 ** 16, beta=beta, rng=np.random.default_rng(0))
    assert noise.dtype == np.float32
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(noise.size)
    # average the power in octave bands and fit its slope on log-log axes
    edges = 2.0 ** np.arange(-12, 0)
    centres = np.sqrt(edges[:-1] * edges[1:])
    levels = [power[(freqs >= lo) & (freqs < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:])]
    slope = np.polyfit(np.log(centres), np.log(levels), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.15)


def test_coloured_noise_is_reproducible_from_its_seed():
    first = channel.coloured_noise(500, beta=1.0, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(first, channel.coloured_noise(500, beta=1.0,
                                                                rng=np.random.default_rng(9)))


@pytest.mark.parametrize("drr_db", [0.0, 6.0])
def test_impulse_response_has_a_unit_direct_path_and_the_asked_ratio(drr_db):
    response = channel.room_impulse_response(rt60=0.5, drr_db=drr_db, sample_rate=RATE,
                                             rng=np.random.default_rng(1))
    assert response.size == RATE // 2 and response[0] == 1.0
    ratio = 10 * np.log10(1.0 / np.sum(response[1:] ** 2))
    assert ratio == pytest.approx(drr_db, abs=1e-6)


def test_impulse_response_decays_by_about_60_db_over_rt60():
    response = channel.room_impulse_response(rt60=0.4, drr_db=0.0, sample_rate=RATE,
                                              rng=np.random.default_rng(2))
    tail = response[1:]
    tenth = tail.size // 10
    first, last = np.mean(tail[:tenth] ** 2), np.mean(tail[-tenth:] ** 2)
    # from the first tenth to the last the envelope falls 54 dB (0.05 -> 0.95 of rt60)
    assert 10 * np.log10(first / last) == pytest.approx(54.0, abs=4.0)


def test_impulse_response_refuses_a_non_positive_rt60():
    with pytest.raises(ValueError, match="rt60"):
        channel.room_impulse_response(rt60=0.0, drr_db=0.0, sample_rate=RATE,
                                      rng=np.random.default_rng(0))


def test_reverberation_keeps_length_and_rms_and_smears_an_impulse():
    click = np.zeros(RATE, dtype=np.float32)
    click[100] = 1.0
    wet = channel.reverberate(click, rt60=0.3, drr_db=0.0, sample_rate=RATE,
                              rng=np.random.default_rng(3))
    assert wet.shape == click.shape and wet.dtype == np.float32
    assert np.sqrt(np.mean(wet.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(click.astype(np.float64) ** 2)), rel=1e-5)
    assert np.all(np.abs(wet[:100]) < 1e-12)  # causal: nothing before the click (FFT rounding)
    assert np.count_nonzero(np.abs(wet[101:]) > 1e-4) > 1000  # its tail
