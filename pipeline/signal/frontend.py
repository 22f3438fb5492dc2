"""The front end: one path from a file (or samples) to the level-normalised speech that
features are computed from, used identically by extract, evaluate and predict.

Order of the steps, and why:

1. decode (``pipeline.signal.audio.read``), any rate, any number of channels;
2. mix the channels with their polarity aligned (``conditioning.mix_channels``);
3. remove DC with a 60 Hz high-pass at the file's own rate (``conditioning.remove_dc``),
   before resampling, so the resampler never sees an offset's step at the edges;
4. resample to the feature rate (soxr);
5. refuse a silent recording (peak below -80 dBFS once DC is gone);
6. scale to a peak of 1, then to -23 LUFS over the whole recording (BS.1770-4): a
   provisional level, so the speech detector hears every recording at the same level
   and a gain applied to a file changes nothing downstream;
7. detect speech with Silero VAD and group it into segments (``pipeline.signal.vad``); a
   recording without a segment holding ``min_speech_seconds`` of speech is refused
   with ``NoSpeechError`` ("no speech detected (0.21 s of speech found ...)");
8. per segment, scale to -23 LUFS measured over that segment alone
   (``Speech.segment_audio``), so a click, a loud laugh elsewhere in the file or a
   change of talker does not set the level of the speech being scored.

Augmentation (``pipeline.signal.augment``) acts after step 8, on the speech of a segment:
noise is added after speech detection, so each augmented copy covers exactly the clean
copy's speech.

Every step but 7 is linear or scale-equivariant and 7 sees a level-normalised signal,
so scaling a recording by any gain leaves the output unchanged up to float rounding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.errors import NoSpeechError, SilentError
from pipeline.signal import audio, conditioning
from pipeline.signal.audio import read, resample
from pipeline.signal.vad import (
    VAD_SAMPLE_RATE,
    Segment,
    VadConfig,
    group_segments,
    speech_regions,
)

# Below -80 dBFS peak a recording carries no usable speech. The quietest RAVDESS takes
# peak near -36 dBFS, far above this.
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class FrontEndConfig:
    """Conditioning and speech-detection settings; stored in every feature store and
    bundle (inside ``FeatureConfig``), so a model is always scored as it was trained."""

    highpass_hz: float = 60.0
    highpass_order: int = 4
    target_lufs: float = conditioning.TARGET_LUFS
    vad: VadConfig = field(default_factory=VadConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrontEndConfig":
        return cls(**{**data, "vad": VadConfig(**data.get("vad", {}))})


@dataclass
class Speech:
    """A conditioned recording and the speech found in it.

    ``signal``: float32 ``(num_samples,)`` at ``sample_rate``, after steps 1-6;
    ``regions``: the detector's speech regions as sample bounds; ``segments``: the
    segments to score (never empty).
    """

    signal: np.ndarray
    sample_rate: int
    regions: list[tuple[int, int]]
    segments: list[Segment]
    target_lufs: float = conditioning.TARGET_LUFS

    @property
    def speech_seconds(self) -> float:
        return sum(s.speech_samples for s in self.segments) / self.sample_rate

    def segment_audio(self, segment: Segment) -> np.ndarray:
        """The samples of ``segment`` scaled to ``target_lufs`` over the segment (BS.1770-4),
        float32 ``(segment.end - segment.start,)``."""
        return conditioning.normalise_loudness(self.signal[segment.start:segment.end],
                                               sample_rate=self.sample_rate,
                                               target_lufs=self.target_lufs)

    def main_segment_audio(self) -> np.ndarray:
        """The level-normalised audio of the segment with the most speech: what ``extract``
        makes a clip's training window from. For a recording that is one segment (every
        RAVDESS clip: their speech spans at most 3.4 s) it is exactly what ``predict``
        scores."""
        return self.segment_audio(max(self.segments, key=lambda s: s.speech_samples))


def condition(samples: np.ndarray, *, file_rate: int, sample_rate: int,
              config: FrontEndConfig, name: str = "recording") -> np.ndarray:
    """Steps 2-6 of the module docstring. ``samples``: float ``(num_frames, channels)`` at
    ``file_rate``. Returns float32 ``(num_samples,)`` at ``sample_rate``.

    Raises ``SilentError`` (an ``AudioError``, naming ``name``) for a silent recording.

    Sample values of any finite size are conditioned, not refused: a recording peaking
    above 1 (float files may, up to about 3e38) is first divided by its peak, which
    changes nothing downstream (every step is scale-equivariant, step 6 sets the level)
    and keeps the filter and mixing sums far from float32 overflow.
    """
    y = conditioning.mix_channels(bounded(samples))
    y = conditioning.remove_dc(y, sample_rate=file_rate, cutoff_hz=config.highpass_hz,
                               order=config.highpass_order)
    y = resample(y, orig_sr=file_rate, target_sr=sample_rate)
    return level(y, sample_rate=sample_rate, config=config, name=name)


def bounded(samples: np.ndarray) -> np.ndarray:
    """``samples`` (any shape) divided by their peak when it is above 1, else as they are:
    every later step is scale-equivariant, so this changes nothing downstream and keeps
    the filter and mixing sums far from float32 overflow."""
    # max and -min rather than abs(): no temporary copy of a long recording
    peak = float(max(samples.max(), -samples.min())) if samples.size else 0.0
    return samples / np.float32(peak) if peak > 1.0 else samples


def level(y: np.ndarray, *, sample_rate: int, config: FrontEndConfig,
          name: str = "recording") -> np.ndarray:
    """Steps 5-6: refuse a silent signal (``SilentError`` naming ``name``), then scale
    ``y`` (float32 ``(num_samples,)`` at ``sample_rate``) to a peak of 1 and to
    ``config.target_lufs`` over all of it. Returns float32 ``(num_samples,)``."""
    if y.size == 0 or float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise SilentError(f"{name}: silent (peak below -80 dBFS once DC is removed); "
                         "nothing to score")
    return conditioning.normalise_loudness(conditioning.peak_normalise(y),
                                           sample_rate=sample_rate,
                                           target_lufs=config.target_lufs)


def detect(y: np.ndarray, *, sample_rate: int, window_samples: int, config: FrontEndConfig,
           name: str = "recording") -> Speech:
    """Step 7: speech regions and segments of a conditioned signal ``y`` (float32
    ``(num_samples,)`` at ``sample_rate``). Raises ``NoSpeechError`` (naming ``name``)
    when no segment holds ``config.vad.min_speech_seconds`` of speech."""
    if sample_rate == VAD_SAMPLE_RATE:
        regions = speech_regions(y, config.vad)
    else:  # the detector runs at 16 kHz; bounds are mapped back to this rate
        scale = sample_rate / VAD_SAMPLE_RATE
        regions = [(int(round(s * scale)), min(y.size, int(round(e * scale)))) for s, e in
                   speech_regions(resample(y, orig_sr=sample_rate, target_sr=VAD_SAMPLE_RATE),
                                  config.vad)]
    segments = group_segments(regions, config.vad, sample_rate=sample_rate,
                              window_samples=window_samples)
    if not segments:
        found = sum(e - s for s, e in regions) / sample_rate
        raise NoSpeechError(f"{name}: no speech detected ({found:.2f} s of speech found; "
                            f"a segment needs at least {config.vad.min_speech_seconds:g} s)")
    return Speech(y, sample_rate, regions, segments, config.target_lufs)


def from_samples(samples: np.ndarray, *, file_rate: int, features, name: str = "recording",
                 check_header: bool = True) -> Speech:
    """Steps 2-7 on decoded ``samples`` (float ``(num_frames,)`` or ``(num_frames,
    channels)``) with the front end of ``features`` (a ``FeatureConfig``). Raises
    ``AudioError`` for a rate or channel count outside ``audio.check_header``'s limits
    (unless ``check_header`` is False: samples decoded from a file whose header was
    checked when it was opened) or a silent recording, ``NoSpeechError`` without enough
    speech; each names ``name``."""
    samples = np.asarray(samples, dtype=np.float32)
    if check_header:  # False: decoded from a file whose header open_audio checked
        audio.check_header(file_rate, 1 if samples.ndim == 1 else samples.shape[1], name=name)
    shortest = features.front_end.vad.min_speech_seconds
    if samples.shape[0] < shortest * file_rate:  # too short to hold a segment at all
        raise NoSpeechError(f"{name}: no speech detected (the recording lasts only "
                            f"{samples.shape[0] / file_rate:.3f} s; a segment needs at least "
                            f"{shortest:g} s of speech)")
    if samples.ndim == 1:
        samples = samples[:, None]
    y = condition(samples, file_rate=file_rate, sample_rate=features.sample_rate,
                  config=features.front_end, name=name)
    return detect(y, sample_rate=features.sample_rate, window_samples=features.window_samples,
                  config=features.front_end, name=name)


def load(path: Path, features) -> Speech:
    """Steps 1-7 for a file. Raises ``AudioError`` (unreadable, empty, silent) or
    ``NoSpeechError``, each naming ``path``."""
    samples, file_rate = read(path)  # its header checked on the way
    return from_samples(samples, file_rate=file_rate, features=features, name=str(path),
                        check_header=False)
