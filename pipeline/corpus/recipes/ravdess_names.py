"""The RAVDESS file-name convention (the ``ravdess`` recipe's names).

A clip is named ``MM-VV-EE-II-SS-RR-AA.ext`` (seven two-digit fields):

- MM modality: 01 audio-video, 02 video-only, 03 audio-only
- VV vocal channel: 01 speech, 02 song
- EE emotion: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
  08 surprised
- II intensity: 01 normal, 02 strong (neutral has no strong take)
- SS statement: 01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
- RR repetition: 01, 02
- AA actor: 01-24; odd actors are male, even actors female

The speech corpus has 60 clips per actor: 2 neutral and 8 of every other emotion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RAVDESS's emotion codes 01-08 in order, the model's default label set too
from pipeline.core.labels import EMOTIONS

N_CLASSES = len(EMOTIONS)

# ASCII digits only, matched against the whole stem (``\d`` takes any Unicode digit and
# ``$`` matches before a trailing newline: both let a clip id differ from its file name).
_NAME = re.compile("-".join([r"([0-9]{2})"] * 7))


@dataclass(frozen=True)
class ClipName:
    """The fields of one RAVDESS file name; ``emotion`` is the 0-based label."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def clip_id(self) -> str:
        fields = (self.modality, self.vocal_channel, self.emotion + 1, self.intensity,
                  self.statement, self.repetition, self.actor)
        return "-".join(f"{field:02d}" for field in fields)

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def is_speech(self) -> bool:
        return self.vocal_channel == 1


class BadClipName(ValueError):
    """A file name that does not follow the convention (the message says which part)."""


def parse_name(stem: str) -> ClipName:
    """Parse a file stem such as ``03-01-05-01-02-01-12``.

    Raises ``BadClipName`` naming the field that is out of range.
    """
    match = _NAME.fullmatch(stem)
    if not match:
        raise BadClipName("not seven two-digit fields joined by '-'")
    modality, channel, emotion, intensity, statement, repetition, actor = map(int, match.groups())
    checks = (
        (modality in (1, 2, 3), f"modality {modality:02d} not in 01-03"),
        (channel in (1, 2), f"vocal channel {channel:02d} not in 01-02"),
        (1 <= emotion <= N_CLASSES, f"emotion {emotion:02d} not in 01-08"),
        (intensity in (1, 2), f"intensity {intensity:02d} not in 01-02"),
        (statement in (1, 2), f"statement {statement:02d} not in 01-02"),
        (repetition in (1, 2), f"repetition {repetition:02d} not in 01-02"),
        (1 <= actor <= 99, f"actor {actor:02d} not in 01-99"),
    )
    for ok, message in checks:
        if not ok:
            raise BadClipName(message)
    return ClipName(modality, channel, emotion - 1, intensity, statement, repetition, actor)
