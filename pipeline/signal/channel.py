"""Simulated recording conditions for training augmentation: a telephone band, coloured
background noise, and room reverberation. Each takes float ``(num_samples,)`` at the
features' rate and returns float32; randomness comes only from the generator passed in,
so a copy is rebuilt exactly from its stored parameters (``pipeline.signal.augment``).

- ``telephone_band``: the narrowband telephone channel, 300-3400 Hz (ITU-T G.712), as a
  Butterworth band-pass (4th-order prototype: 24 dB/octave at each edge, 8th order in all).
- ``coloured_noise``: Gaussian noise with a power spectrum proportional to ``1/f**beta``
  (beta 0 white, 1 pink, 2 brown), the usual stand-ins for hiss, ambience and rumble.
- ``reverberate``: convolution with a synthetic room impulse response, a unit direct path
  followed by Gaussian noise decaying by 60 dB over ``rt60`` seconds (Polack's statistical
  model of late reverberation: J.-D. Polack, "Playing billiards in the concert hall",
  Applied Acoustics 38, 1993), its energy set by a direct-to-reverberant ratio.

These are augmentations, not the front end: nothing here runs when a recording is scored.
"""

from __future__ import annotations

import functools

import numpy as np

TELEPHONE_BAND_HZ = (300.0, 3400.0)  # ITU-T G.712 narrowband channel


def rms(y: np.ndarray) -> float:
    """Root mean square of ``y`` (any float array), computed in float64; 0.0 when empty."""
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


@functools.lru_cache(maxsize=4)
def _bandpass(sample_rate: int) -> np.ndarray:
    from scipy import signal

    return signal.butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")


def telephone_band(y: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """``y`` band-limited to 300-3400 Hz (causal Butterworth band-pass from a 4th-order
    prototype, zero initial state). float32 ``(num_samples,)``. Raises ``ValueError``
    (from scipy) when ``sample_rate`` is 6800 Hz or less."""
    from scipy import signal

    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y.astype(np.float32)
    return signal.sosfilt(_bandpass(int(sample_rate)), y).astype(np.float32)


def coloured_noise(num_samples: int, *, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as ``1/f**beta``, float32
    ``(num_samples,)``. ``beta == 0`` is ``rng.standard_normal`` itself (unit variance);
    other colours are shaped in the frequency domain and scaled to unit RMS. The DC bin
    is set to zero.

    Known limit (docs/experiments.md, seventh round): the RMS is taken over the whole
    spectrum, down to ``1/num_samples`` cycles per sample, so for beta 2 most of the
    power lies below 60 Hz, where the front end's high-pass would remove it from a real
    recording: a brown copy's SNR in the speech band is some 25-35 dB higher than the
    drawn SNR. The trained recipe was chosen with this behaviour; changing it changes
    the features and needs a new validation round."""
    white = rng.standard_normal(num_samples, dtype=np.float32)
    if beta == 0.0 or num_samples < 2:
        return white
    spectrum = np.fft.rfft(white.astype(np.float64))
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-beta / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=num_samples)
    return (noise / (rms(noise) or 1.0)).astype(np.float32)


def room_impulse_response(*, rt60: float, drr_db: float, sample_rate: int,
                          rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response, float64 ``(num_taps,)`` covering ``rt60``
    seconds: ``h[0] = 1`` (the direct path), then Gaussian noise under the envelope
    ``exp(-6.91 t / rt60)`` (-60 dB at ``rt60``), scaled so that the direct path's energy
    over the tail's is ``drr_db`` dB. Raises ``ValueError`` when ``rt60 <= 0``."""
    if rt60 <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    taps = max(2, int(round(rt60 * sample_rate)))
    t = np.arange(1, taps) / sample_rate
    tail = rng.standard_normal(taps - 1) * np.exp(-6.91 * t / rt60)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / max(float(np.sum(tail * tail)), 1e-12))
    return np.concatenate([[1.0], tail])


def reverberate(y: np.ndarray, *, rt60: float, drr_db: float, sample_rate: int,
                rng: np.random.Generator) -> np.ndarray:
    """``y`` convolved with ``room_impulse_response``, cut to ``y``'s length (the tail
    past the end is dropped, so the speech stays where it was) and scaled back to ``y``'s
    RMS. float32 ``(num_samples,)``. Augmentation applies it to speech the detector has
    already trimmed, so copies carry no decay after the last word, which a reverberant
    recording keeps up to the detector's 30 ms pad; accepted for simplicity."""
    from scipy import signal

    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y.astype(np.float32)
    response = room_impulse_response(rt60=rt60, drr_db=drr_db, sample_rate=sample_rate, rng=rng)
    wet = signal.fftconvolve(y, response)[:y.size]
    before, after = rms(y), rms(wet)
    return (wet * (before / after if after > 0 else 1.0)).astype(np.float32)
