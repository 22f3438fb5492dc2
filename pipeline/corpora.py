"""Labelled corpora that a bundle can be evaluated on, and how each names its labels.

- ``ravdess``: RAVDESS speech clips, labels from the name ``03-01-EE-II-SS-RR-AA``
  (``pipeline.ravdess``); all eight emotions.
- ``urdu``: the URDU-Dataset (Latif et al. 2018, "Cross Lingual Speech Emotion
  Recognition: Urdu vs. Western Languages", arXiv:1812.10411): 400 utterances from Urdu
  TV talk shows in ``Angry/``, ``Happy/``, ``Neutral/``, ``Sad/``, each named
  ``S<G><N>_F<XX>_<E><YY>`` (G gender M/F, N speaker, XX the speaker's file number,
  E the emotion A/H/N/S, YY the file's number within its emotion). Four of RAVDESS's
  eight emotions: A angry, H happy, N neutral, S sad. It is a cross-corpus measure
  (other language, speakers, microphones, rooms, spontaneous speech): evaluate on it,
  never train or tune on it.

``detect`` picks the corpus from the names under a folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline import ravdess
from pipeline.errors import PipelineError

_URDU_NAME = re.compile(r"S[MF][0-9]+_F[0-9]+_([AHNS])[0-9]+")
_URDU_LABELS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}


def ravdess_label(path: Path) -> int | None:
    """The 0-based RAVDESS emotion of a RAVDESS-named speech clip, else None."""
    label = ravdess.label_of(path.stem)
    return label if label is not None and ravdess.parse_name(path.stem).is_speech else None


def urdu_label(path: Path) -> int | None:
    """The RAVDESS emotion index of a URDU-Dataset file name, else None."""
    match = _URDU_NAME.fullmatch(path.stem)
    return ravdess.EMOTIONS.index(_URDU_LABELS[match[1]]) if match else None


@dataclass(frozen=True)
class Corpus:
    name: str
    label_of: Callable[[Path], int | None]
    emotions: tuple[str, ...]  # the emotions it has, in RAVDESS order
    pattern: str  # for messages


CORPORA = {
    "ravdess": Corpus("ravdess", ravdess_label, ravdess.EMOTIONS, "03-01-EE-II-SS-RR-AA.wav"),
    "urdu": Corpus("urdu", urdu_label, ("neutral", "happy", "sad", "angry"),
                   "Angry/SM1_F10_A010.wav"),
}


def detect(files: list[Path]) -> Corpus:
    """The corpus whose naming labels the most of ``files``. Raises ``PipelineError`` when
    none labels any."""
    counts = {name: sum(c.label_of(f) is not None for f in files) for name, c in CORPORA.items()}
    best = max(counts, key=counts.get)
    if not counts[best]:
        raise PipelineError("no labelled clips: evaluation takes labels from the file names, "
                            + " or ".join(f"{c.name} ({c.pattern})" for c in CORPORA.values()))
    return CORPORA[best]
