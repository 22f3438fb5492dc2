"""Signal conditioning: what a recording's microphone, channel layout and level put into
the samples, taken out before anything listens for speech or emotion.

Three steps, each linear or scale-equivariant, so that a gain anywhere from -30 to
+20 dB (float samples, no clipping) leaves the conditioned signal unchanged up to float
rounding:

1. ``mix_channels``: channels are aligned in polarity to the loudest one, then averaged.
   A plain average cancels out-of-phase channels (a stereo file whose right channel is
   the left inverted averages to silence); after alignment it equals its mono source.
2. ``remove_dc``: a Butterworth high-pass below the speech band (4th order, 60 Hz: -0.1 dB
   at 100 Hz, where the lowest voices' fundamentals start). Its state starts at the
   steady state of the first sample, so a constant offset leaves no transient; the filter
   is causal and keeps its state, so it can run block by block on a stream.
3. ``loudness`` / ``loudness_gain``: integrated loudness per ITU-R BS.1770-4 (K-weighted
   mean square over 400 ms blocks, an absolute gate at -70 LUFS and a relative gate
   10 LU below the ungated level; computed here as ``pyloudnorm`` computes it, its
   K-weighting filters and gating, in numpy (``pipeline.signal.iir``), and checked against
   it). BS.1770 is the broadcast
   standard for "how loud does this programme sound": its K-weighting follows hearing and
   its gates ignore pauses, so it measures the talker, not the silence around them. The
   front end (``pipeline.signal.frontend``) measures it over each speech segment the detector
   finds and scales the segment to ``TARGET_LUFS``: absolute level, which in RAVDESS
   betrays the recording session rather than the emotion, never reaches the model.

Source: ITU-R BS.1770-4 (2015), "Algorithms to measure audio programme loudness and
true-peak audio level"; EBU R 128 for the -23 LUFS target.
"""

from __future__ import annotations

import functools

import numpy as np

from pipeline.signal import iir

TARGET_LUFS = -23.0  # EBU R 128 programme loudness


def mix_channels(samples: np.ndarray) -> np.ndarray:
    """Polarity-aligned average of the channels.

    ``samples``: float array ``(num_frames, channels)``. Returns float32 ``(num_frames,)``.
    Each channel whose correlation with the loudest channel is negative is inverted
    before averaging, so out-of-phase channels add up instead of cancelling. Loudness
    and correlation are measured with each channel's mean removed, so a DC offset does
    not decide the polarity.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples
    if samples.shape[1] == 1:
        return samples[:, 0]
    # in float64 but a block at a time: a whole copy of a long multichannel recording
    # in float64 would take twice its decoded size, three times over
    spans = [slice(start, start + _MIX_BLOCK) for start in range(0, len(samples), _MIX_BLOCK)]
    mean = sum(samples[span].astype(np.float64).sum(axis=0) for span in spans) / len(samples)
    products = np.zeros((samples.shape[1], samples.shape[1]))
    for span in spans:
        centred = samples[span].astype(np.float64) - mean  # the signal, not a DC offset
        products += centred.T @ centred
    reference = int(np.argmax(np.diag(products)))  # the loudest channel
    signs = np.where(products[reference] < 0, -1.0, 1.0)
    mixed = np.empty(len(samples), dtype=np.float32)
    for span in spans:
        mixed[span] = samples[span].astype(np.float64) @ signs / samples.shape[1]
    return mixed


@functools.lru_cache(maxsize=16)
def highpass(sample_rate: int, cutoff_hz: float, order: int) -> iir.Cascade:
    """``remove_dc``'s Butterworth high-pass at ``sample_rate``, as second-order sections
    (``iir.butter_highpass``); ``Cascade.filter`` carries its state across the blocks of a
    stream."""
    return iir.butter_highpass(order, cutoff_hz, sample_rate)


def remove_dc(y: np.ndarray, *, sample_rate: int, cutoff_hz: float = 60.0,
              order: int = 4) -> np.ndarray:
    """High-pass ``y`` (float ``(num_samples,)`` at ``sample_rate`` Hz) at ``cutoff_hz``.

    Returns float32 ``(num_samples,)``. The filter starts in the steady state for a
    constant input equal to ``y[0]``, so a DC offset is removed without a start-up step;
    a constant signal becomes zeros. (The filter is linear and blocks DC: starting in
    that steady state is filtering ``y - y[0]`` from rest.)
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y.astype(np.float32)
    out, _ = highpass(int(sample_rate), float(cutoff_hz), int(order)).filter(y - y[0])
    return out.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _k_weighting(sample_rate: int) -> tuple[iir.Cascade, iir.Cascade]:
    """BS.1770's K-weighting at ``sample_rate``: the high shelf (+4 dB above 1.5 kHz) and
    the high-pass (38 Hz), with pyloudnorm's coefficients (RBJ cookbook formulas)."""
    w_shelf, w_pass = 2 * np.pi * 1500.0 / sample_rate, 2 * np.pi * 38.0 / sample_rate
    gain, alpha = 10 ** (4.0 / 40.0), np.sin(w_shelf) / (2 * (1 / np.sqrt(2)))
    c, root = np.cos(w_shelf), 2 * np.sqrt(gain) * alpha
    shelf_b = gain * np.array([(gain + 1) + (gain - 1) * c + root,
                               -2 * ((gain - 1) + (gain + 1) * c),
                               (gain + 1) + (gain - 1) * c - root])
    shelf_a = np.array([(gain + 1) - (gain - 1) * c + root, 2 * ((gain - 1) - (gain + 1) * c),
                        (gain + 1) - (gain - 1) * c - root])
    alpha_pass, c_pass = np.sin(w_pass) / (2 * 0.5), np.cos(w_pass)
    pass_b = np.array([(1 + c_pass) / 2, -(1 + c_pass), (1 + c_pass) / 2])
    pass_a = np.array([1 + alpha_pass, -2 * c_pass, 1 - alpha_pass])
    return iir.biquad(shelf_b, shelf_a), iir.biquad(pass_b, pass_a)


MIN_LOUDNESS_SECONDS = 0.4  # one BS.1770 gating block
_MIX_BLOCK = 1 << 20  # frames mixed at a time (mix_channels)


def loudness(y: np.ndarray, *, sample_rate: int) -> float:
    """Integrated loudness of ``y`` (float ``(num_samples,)``) in LUFS per ITU-R BS.1770-4;
    ``-inf`` when every block falls under the -70 LUFS absolute gate.

    Raises ``ValueError`` when ``y`` is shorter than one 400 ms block.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size < MIN_LOUDNESS_SECONDS * sample_rate:
        raise ValueError(f"{y.size / sample_rate:.3f} s is shorter than one "
                         f"{MIN_LOUDNESS_SECONDS} s loudness block")
    shelf, high_pass = _k_weighting(int(sample_rate))
    weighted = high_pass.filter(shelf.filter(y)[0])[0]
    return _gated_loudness(weighted, int(sample_rate))


def _gated_loudness(weighted: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4's gating over K-weighted ``weighted``: 400 ms blocks every 100 ms (their
    bounds computed as pyloudnorm computes them), -70 LUFS absolute gate, relative gate
    10 LU below the absolutely gated level. ``-inf`` when no block passes."""
    block, step = 0.4, 0.25  # seconds; a quarter of a block
    count = int(np.round((weighted.size / sample_rate - block) / (block * step))) + 1
    j = np.arange(count)
    lower = np.array([int(block * (k * step) * sample_rate) for k in j], dtype=np.int64)
    upper = np.array([int(block * (k * step + 1) * sample_rate) for k in j], dtype=np.int64)
    upper = np.minimum(upper, weighted.size)
    energy = np.concatenate([[0.0], np.cumsum(np.square(weighted))])
    z = (energy[upper] - energy[lower]) / (block * sample_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = -0.691 + 10.0 * np.log10(z)
        above = levels >= -70.0
        relative = -0.691 + 10.0 * np.log10(z[above].mean()) - 10.0 if above.any() else np.nan
        kept = (levels > relative) & (levels > -70.0)
        mean = z[kept].mean() if kept.any() else 0.0
        return float(-0.691 + 10.0 * np.log10(mean))


def loudness_gain(y: np.ndarray, *, sample_rate: int, target_lufs: float = TARGET_LUFS) -> float:
    """The linear gain that brings ``y`` to ``target_lufs`` (BS.1770-4 integrated
    loudness), or ``nan`` when ``y`` has no block above the -70 LUFS absolute gate."""
    level = loudness(y, sample_rate=sample_rate)
    if not np.isfinite(level):
        return float("nan")
    return float(10.0 ** ((target_lufs - level) / 20.0))


def normalise_loudness(y: np.ndarray, *, sample_rate: int,
                       target_lufs: float = TARGET_LUFS) -> np.ndarray:
    """``y`` (float32 ``(num_samples,)``) scaled to ``target_lufs`` (BS.1770-4); returned
    unchanged when it is shorter than one 400 ms block or has no block above the
    -70 LUFS absolute gate."""
    if y.size < MIN_LOUDNESS_SECONDS * sample_rate:
        return y
    gain = loudness_gain(y, sample_rate=sample_rate, target_lufs=target_lufs)
    return y * np.float32(gain) if np.isfinite(gain) else y


def peak_normalise(y: np.ndarray) -> np.ndarray:
    """``y / max|y|`` as float32 (a silent ``y`` is returned unchanged). Used before the
    loudness measure so its -70 LUFS absolute gate acts relative to the recording's own
    peak: a whole recording 30 dB quieter is then measured exactly like the original."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return (y / peak).astype(np.float32) if peak > 0 else np.asarray(y, dtype=np.float32)
