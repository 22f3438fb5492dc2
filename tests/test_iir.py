"""Tests of pipeline/signal/iir.py and the loudness built on it: the numpy filters equal
scipy.signal's, and BS.1770 loudness equals pyloudnorm's, on real (synthesised) speech and
noise, at every rate a file may have, block by block as on a stream."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.signal import conditioning, iir
from tests.conftest import synth_speech

RATES = (8000, 16000, 22050, 44100, 48000, 96000)


def _speech(rate: int) -> np.ndarray:
    """Two utterances with a pause, a DC offset and a little noise, at ``rate``."""
    y = np.concatenate([synth_speech(emotion=e, seconds=1.5, sample_rate=rate, seed=e)
                        for e in (2, 6)]).astype(np.float64)
    return y + 0.05 + 1e-3 * np.random.default_rng(rate).standard_normal(y.size)


@pytest.mark.parametrize("rate", RATES)
def test_the_high_pass_is_scipy_s_butterworth(rate):
    from scipy import signal

    y = _speech(rate)
    sos = signal.butter(4, 60.0, btype="highpass", fs=rate, output="sos")
    expected, _ = signal.sosfilt(sos, y, zi=signal.sosfilt_zi(sos) * y[0])
    ours = conditioning.remove_dc(y, sample_rate=rate)
    np.testing.assert_allclose(ours, expected.astype(np.float32), atol=1e-6)
    # block by block, the state carried (a stream), from rest
    cascade, state, parts = iir.butter_highpass(4, 60.0, rate), None, []
    for start in range(0, y.size, 7919):
        part, state = cascade.filter(y[start:start + 7919], state)
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts), signal.sosfilt(sos, y), atol=1e-9)


@pytest.mark.parametrize("rate", RATES)
def test_k_weighting_and_loudness_are_pyloudnorm_s(rate):
    import pyloudnorm
    from scipy import signal

    y = _speech(rate)
    meter = pyloudnorm.Meter(rate)
    shelf, high_pass = conditioning._k_weighting(rate)
    ours = high_pass.filter(shelf.filter(y)[0])[0]
    expected = y
    for stage in meter._filters.values():
        expected = signal.lfilter(stage.b, stage.a, expected)
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    for scale in (1.0, 1e-3, 1e-5):  # loud, quiet, nearly all under the absolute gate
        assert conditioning.loudness(scale * y, sample_rate=rate) == pytest.approx(
            meter.integrated_loudness(scale * y), abs=1e-6)


def test_silence_has_no_loudness_and_a_short_signal_is_refused():
    assert conditioning.loudness(np.zeros(16000), sample_rate=16000) == -np.inf
    with pytest.raises(ValueError, match="shorter than one"):
        conditioning.loudness(np.ones(100), sample_rate=16000)


def test_an_odd_order_is_refused():
    with pytest.raises(ValueError, match="even order"):
        iir.butter_highpass(3, 60.0, 16000)
