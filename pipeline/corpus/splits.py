"""Which rows of the feature store each role sees, for one cross-validation fold.

- test: the held-out fold's actors, clean copies only;
- validation (``val_folds`` > 0, for picking an epoch or a recipe): the actors of the next
  fold(s), taken from the training folds, clean copies only;
- training: every other actor, clean and augmented copies.

No actor is ever in two roles, and no copy of a test or validation clip is trained on.
``final`` trains on every actor and has neither validation nor test rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import TrainingError


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices
    val: np.ndarray
    test: np.ndarray
    test_folds: tuple[int, ...]
    val_folds: tuple[int, ...]

    def actors(self, speaker_column: np.ndarray) -> dict[str, list[str]]:
        """The speakers (``<corpus>:<speaker>``) of each role, sorted."""
        return {role: sorted({str(a) for a in speaker_column[rows]})
                for role, rows in (("train", self.train), ("val", self.val), ("test", self.test))}


def fold_split(*, fold: np.ndarray, copy: np.ndarray, test_fold: int | None,
               val_folds: int = 0) -> Split:
    """Rows for holding out ``test_fold`` (None: the final model, trained on everything)."""
    folds = sorted({int(f) for f in fold})
    if test_fold is None:
        return Split(np.flatnonzero(np.ones_like(fold, dtype=bool)), np.zeros(0, int),
                     np.zeros(0, int), (), ())
    if test_fold not in folds:
        raise TrainingError(f"--fold {test_fold}: the index has folds {folds}; pick one of them")
    if len(folds) < 2 + val_folds:
        raise TrainingError(f"{len(folds)} folds leave no training actors beside the test fold and "
                            f"{val_folds} validation fold(s): rerun 'ser index --folds' with more")
    position = folds.index(test_fold)
    val = tuple(folds[(position + step) % len(folds)] for step in range(1, val_folds + 1))
    clean = copy == 0
    is_test, is_val = fold == test_fold, np.isin(fold, val)
    return Split(train=np.flatnonzero(~is_test & ~is_val), val=np.flatnonzero(is_val & clean),
                 test=np.flatnonzero(is_test & clean), test_folds=(test_fold,), val_folds=val)


def random_clip_split(*, clip_id: np.ndarray, copy: np.ndarray, n_folds: int, seed: int,
                      val_folds: int = 0) -> Split:
    """The leaky contrast: clips (not actors) drawn at random into test (1/n_folds),
    validation (``val_folds``/n_folds) and training, so every actor is in all of them.
    Copies of a held-out clip still never train. Only for showing how much actor overlap
    inflates accuracy; never the number to quote."""
    clips = np.unique(clip_id)
    order = np.random.default_rng(seed).permutation(len(clips))
    share = len(clips) // n_folds
    if n_folds < 2 + val_folds:
        raise TrainingError(f"{n_folds} folds leave no training clips beside the test share and "
                            f"{val_folds} validation share(s): lower --val-folds or rerun "
                            "'ser index --folds' with more")
    test_clips, val_clips = clips[order[:share]], clips[order[share:(1 + val_folds) * share]]
    clean = copy == 0
    is_test, is_val = np.isin(clip_id, test_clips), np.isin(clip_id, val_clips)
    return Split(train=np.flatnonzero(~is_test & ~is_val), val=np.flatnonzero(is_val & clean),
                 test=np.flatnonzero(is_test & clean), test_folds=(), val_folds=())


def split_for(store, fold: int | str | None, *, val_folds: int, seed: int) -> Split:
    """The split a run name asks for: a fold number, ``"random"``, or None (final)."""
    if fold == "random":
        return random_clip_split(clip_id=store.clip_id, copy=store.copy,
                                 n_folds=len(set(store.fold.tolist())), seed=seed,
                                 val_folds=val_folds)
    return fold_split(fold=store.fold, copy=store.copy, test_fold=fold, val_folds=val_folds)


def split_key(store, fold: int | str | None, *, split_seed: int) -> dict | None:
    """What a run's split depends on beyond the clips: each speaker's fold (fold runs), and
    the split seed too (``random``); None for ``final``, which trains on every actor."""
    if fold is None:
        return None
    folds = sorted({(str(a), int(f)) for a, f in zip(store.speaker, store.fold)})
    return {"folds": folds, **({"split_seed": split_seed} if fold == "random" else {})}


def runs_for(choice: str, folds: list[int] | None) -> list:
    """The runs a ``--fold`` choice names: ``[k]``, every one of ``folds`` (``all``) or
    ``["random"]``. ``folds``: the index's, or None without an index (a number then
    passes, for the stage to report the missing index). Raises ``ValueError`` with the
    message for ``--fold``."""
    if choice == "random":
        return ["random"]
    if choice == "all":
        return list(folds or [])
    try:
        number = int(choice)
    except ValueError:
        raise ValueError(f"{choice!r}: give a fold number, 'all', or 'random' (the leaky "
                         "clip-level contrast)") from None
    if folds is not None and number not in folds:
        raise ValueError(f"{choice}: the index has folds {folds[0]} to {folds[-1]}")
    return [number]
