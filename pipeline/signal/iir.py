"""IIR filters in numpy, so that scoring never imports ``scipy.signal`` (1.2 s of start-up):
the front end's Butterworth high-pass and BS.1770's K-weighting run here.

A filter is a cascade of second-order sections (``Section``: a real numerator ``b`` and
two poles), each applied as its numerator (a 3-tap FIR) and then its poles: a pair of
complex-conjugate poles as one complex first-order recursion ``w[n] = p w[n-1] + v[n]``
whose partial fraction gives the real output ``2 Re(r w)``, two real poles as two real
recursions in turn. A first-order recursion is solved exactly in blocks of ``L``
samples, all blocks at once: inside a block ``w[k] = p^k (p w_prev + sum_j p^-j v[j])``
(a cumulative sum), ``L`` short enough that ``|p|^-L`` stays below ``GROWTH``, so no
precision is lost; the blocks' end states are then chained one block at a time. Results
agree with ``scipy.signal.sosfilt`` / ``lfilter`` to about 1e-12 of the signal's scale
(``tests/test_iir.py``).

Sources: S. Butterworth (1930), "On the theory of filter amplifiers" (the prototype's
poles); the bilinear transform with pre-warping as in ``scipy.signal.butter``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROWTH = 1e4  # the largest |p|^-k inside a block
# Samples filtered at a time: each section's complex temporaries then stay near 1 MB (a
# 60 s block at 48 kHz at once took some 200 MB more), and they stay in cache.
CHUNK = 1 << 16


@dataclass(frozen=True)
class Section:
    """``(b[0] + b[1] q^-1 + b[2] q^-2) / ((1 - poles[0] q^-1)(1 - poles[1] q^-1))``,
    ``q^-1`` one sample's delay; ``poles`` a conjugate pair or two real poles."""

    b: tuple[float, float, float]
    poles: tuple[complex, complex]

    @property
    def conjugate(self) -> bool:
        return abs(self.poles[0].imag) > 1e-12


@dataclass(frozen=True)
class Cascade:
    """Second-order sections applied in turn (module docstring)."""

    sections: tuple[Section, ...]

    def initial_state(self) -> np.ndarray:
        """A filter at rest: complex ``(len(sections), 4)``: each section's last two inputs
        and its recursions' last outputs."""
        return np.zeros((len(self.sections), 4), dtype=np.complex128)

    def filter(self, x: np.ndarray, state: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(y, state)``: ``x`` (float ``(num_samples,)``) filtered, float64 ``(num_samples,)``,
        starting from ``state`` (``initial_state`` when None), and the state after its
        last sample, to pass with the next block of a stream."""
        state = self.initial_state() if state is None else state.copy()
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(x.size, dtype=np.float64)
        for start in range(0, x.size, CHUNK):  # bounded temporaries, whatever the length
            y = x[start:start + CHUNK]
            for i, section in enumerate(self.sections):
                y, state[i] = _section(y, section, state[i])
            out[start:start + CHUNK] = y
        return out, state


def _section(x: np.ndarray, section: Section, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One second-order section of ``x`` from ``state`` (last two inputs, recursions' last
    outputs); returns ``(y, new state)``."""
    if not x.size:
        return x, state
    b0, b1, b2 = section.b
    before = np.concatenate([[state[1].real, state[0].real], x])  # x[-2], x[-1], x...
    v = b0 * x + b1 * before[1:-1] + b2 * before[:-2]
    new = np.array([x[-1], x[-2] if x.size > 1 else state[0].real, 0, 0], dtype=np.complex128)
    first, second = section.poles
    if section.conjugate:  # 1/((1-p q^-1)(1-p* q^-1)) = 2 Re(r / (1 - p q^-1)), r = p/(p-p*)
        w = _pole(v.astype(np.complex128), first, state[2])
        new[2] = w[-1]
        return 2.0 * (first / (first - first.conjugate()) * w).real, new
    w = _pole(v, first.real, state[2].real)
    y = _pole(w, second.real, state[3].real)
    new[2], new[3] = w[-1], y[-1]
    return y, new


def _pole(v: np.ndarray, pole, previous) -> np.ndarray:
    """``w[n] = pole * w[n-1] + v[n]``, ``w[-1]`` being ``previous``, exactly (module
    docstring), in ``v``'s dtype. Needs ``0 < |pole| < 1``."""
    length = max(1, min(v.size, int(np.log(GROWTH) / -np.log(abs(pole)))))
    blocks = -(-v.size // length)
    padded = np.zeros(blocks * length, dtype=v.dtype)
    padded[:v.size] = v
    ramp = pole ** np.arange(length)  # p^k, |p^-k| <= GROWTH
    inside = padded.reshape(blocks, length)
    inside *= 1.0 / ramp  # a product is cheaper than a (complex) division
    np.cumsum(inside, axis=1, out=inside)
    inside *= ramp  # zero state
    ends = np.empty(blocks, dtype=inside.dtype)  # each block's last output
    carry, step = previous, pole ** length
    for b in range(blocks):
        ends[b] = carry = step * carry + inside[b, -1]
    starts = np.concatenate([[previous], ends[:-1]])
    inside += np.outer(starts, pole * ramp)  # + p^(k+1) * the state before the block
    return inside.reshape(-1)[:v.size]


def butter_highpass(order: int, cutoff_hz: float, sample_rate: float) -> Cascade:
    """The digital Butterworth high-pass of even ``order`` with -3 dB at ``cutoff_hz``, as
    ``scipy.signal.butter(order, cutoff_hz, 'highpass', fs=sample_rate)`` designs it
    (analogue prototype, pre-warped bilinear transform), as ``order / 2`` sections."""
    if order % 2:
        raise ValueError(f"order {order}: an even order (pairs of conjugate poles)")
    k = np.arange(-order + 1, order, 2)
    prototype = -np.exp(1j * np.pi * k / (2 * order))  # analogue low-pass poles, unit cut-off
    warped = 2 * sample_rate * np.tan(np.pi * cutoff_hz / sample_rate)
    analogue = warped / prototype  # low-pass -> high-pass: zeros at s = 0
    fs2 = 2.0 * sample_rate
    poles = (fs2 + analogue) / (fs2 - analogue)
    gain = float(np.real(fs2 ** order / np.prod(fs2 - analogue)))
    upper = sorted((p for p in poles if p.imag > 0), key=lambda p: abs(p))
    sections = [Section((1.0, -2.0, 1.0), (complex(p), complex(p.conjugate()))) for p in upper]
    scaled = Section(tuple(gain * c for c in sections[0].b), sections[0].poles)
    return Cascade((scaled, *sections[1:]))


def biquad(b: np.ndarray, a: np.ndarray) -> Cascade:
    """The second-order filter ``b / a`` (``b``, ``a``: 3 coefficients) as one section."""
    b, a = np.asarray(b, dtype=np.float64) / a[0], np.asarray(a, dtype=np.float64) / a[0]
    first, second = np.roots(a)
    if abs(first.imag) > 1e-12 and first.imag < 0:
        first, second = second, first
    return Cascade((Section((float(b[0]), float(b[1]), float(b[2])),
                            (complex(first), complex(second))),))
