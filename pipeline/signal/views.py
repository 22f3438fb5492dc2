"""Test-time views: each window is scored as it is and as a few mild variants of it, and
the probabilities are averaged (test-time augmentation).

``TEST_VIEWS`` is the clean window plus, one change at a time, pitch -1 / +1 semitone,
a shift of -0.15 / +0.15 s and speed 0.95 / 1.05: milder versions of the training
augmentations, in both directions, without noise. They were chosen on validation actors
(docs/experiments.md, "Fourth round"). ``CLEAN`` scores the window alone.

The views are part of how a model is scored, so a bundle records the ones its
cross-validation figures were measured with, and ``predict`` uses those; a bundle that
records none is scored on the clean window alone.
"""

from __future__ import annotations

import numpy as np

from pipeline.signal.augment import AugmentParams, speech_features
from pipeline.signal.features import FeatureConfig, clean_features

_IDENTITY = AugmentParams()
CLEAN: tuple[AugmentParams, ...] = (_IDENTITY,)
TEST_VIEWS: tuple[AugmentParams, ...] = (
    AugmentParams(),
    AugmentParams(semitones=-1.0), AugmentParams(semitones=1.0),
    AugmentParams(shift_seconds=-0.15), AugmentParams(shift_seconds=0.15),
    AugmentParams(speed=0.95), AugmentParams(speed=1.05),
)


def window_views(speech: np.ndarray, config: FeatureConfig,
                 views: tuple[AugmentParams, ...]) -> np.ndarray:
    """The features of every view of one stretch of speech, ``(len(views), 2, n_mels,
    num_frames)`` float32. The first view of ``TEST_VIEWS`` and ``CLEAN`` is the window
    ``extract`` stores as a clean copy; it is computed without the augmentation code
    (``features.clean_features``, which identity params equal exactly)."""
    return np.stack([clean_features(speech, config) if view == _IDENTITY else
                     speech_features(speech, view, config) for view in views])


def to_list(views: tuple[AugmentParams, ...]) -> list[dict]:
    """JSON form, for reports and bundle metadata: ``[{"semitones": 1.0}, ...]`` with
    only the fields that differ from the clean window."""
    clean = AugmentParams().__dict__
    return [{k: v for k, v in view.__dict__.items() if v != clean[k]} for view in views]


def from_list(items: list[dict] | None) -> tuple[AugmentParams, ...]:
    """Inverse of ``to_list``; ``None`` (a bundle without views) is the clean window."""
    if not items:
        return CLEAN
    return tuple(AugmentParams(**item) for item in items)
