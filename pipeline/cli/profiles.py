"""The two end-to-end runs of the whole pipeline (``ser run --profile``): ``quick``, the
first thing a new user runs, and ``full``, the reproduction of the README's figures.

Each profile is a frozen list of choices; ``pipeline.cli.workflow`` runs the stages
with them. Both resume: every stage is cached, and training continues from its last
checkpoint (``train --resume``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Profile:
    name: str
    fold: str  # "0": one test fold; "all": cross-validation
    members: int  # ensemble members per run
    epochs: int | None  # None: the recipe's (TrainConfig.epochs)
    contrast: bool  # also the leaky clip-level split ("random"), as a contrast
    final: bool  # train and export the final model on every actor
    artifacts_subdir: str  # where under --artifacts-dir it writes ("": there itself)
    says: str  # what it does and how long it takes, printed before it starts

    def artifacts_dir(self, root: Path) -> Path:
        return Path(root) / self.artifacts_subdir if self.artifacts_subdir else Path(root)

    @property
    def export_run(self) -> str:
        return "final" if self.final else f"fold-{self.fold}"


QUICK = Profile(
    name="quick", fold="0", members=1, epochs=60, contrast=False, final=False,
    artifacts_subdir="quick",
    says="the quick profile: one test fold (fold 0: 4 actors the model never hears), one "
         "model instead of an ensemble of 2, 60 epochs instead of 120. About 4 minutes on a "
         "2-core CPU after the install. Its figures are the quick profile's, on the hardest "
         "of the five folds (the README's recipe scores 55.9 % UA there, 66.7 % on average "
         "over the five: scripts/reproduce.sh)")
FULL = Profile(
    name="full", fold="all", members=2, epochs=None, contrast=True, final=True,
    artifacts_subdir="",
    says="the full reproduction of the README's figures: 5-fold cross-validation with "
         "2-member ensembles, the leaky random split as a contrast, and the final model on "
         "every actor. About 1 h 45 min on a 2-core CPU (not yet timed on a GPU)")
PROFILES = {profile.name: profile for profile in (QUICK, FULL)}


def example_clip(clips: list, fold: str):
    """A clip to show a prediction on (an ``index.Clip``): the first angry one of test fold
    ``fold`` (an actor the fold's model never heard), else of any actor; None for an empty
    index."""
    candidates = [c for c in clips if fold == "all" or str(c.fold) == fold] or clips
    angry = [c for c in candidates if c.emotion == "angry"] or candidates
    return sorted(angry, key=lambda c: c.path)[0] if angry else None


def about_clip(clip, fold: str) -> str:
    """What the example prediction was made on: the clip, its speaker and its true label,
    and whether the model heard that speaker."""
    unheard = (f"test fold {clip.fold}: a voice the model never heard" if fold != "all"
               and str(clip.fold) == fold else "a voice the model may have heard")
    corpus, _, speaker = clip.speaker.rpartition(":")
    who = f"{'actor' if corpus == 'ravdess' else 'speaker'} {speaker} of {corpus or clip.corpus}"
    return (f"that was {Path(clip.path).name}, spoken by {who} ({unheard}); its true "
            f"label: {clip.emotion}")
