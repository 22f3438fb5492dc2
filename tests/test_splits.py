"""Which rows each role sees: actor-disjoint folds, clean-only evaluation, no leakage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import TrainingError
from pipeline.corpus.splits import fold_split


def _store(*, actors: int = 8, folds: int = 4, clips: int = 3, copies: int = 2):
    """Columns of a fake store: actor a is in fold (a - 1) % folds; every clip has
    ``copies + 1`` rows (copy 0 clean)."""
    actor, copy, clip = [], [], []
    for a in range(1, actors + 1):
        for c in range(clips):
            for k in range(copies + 1):
                actor.append(a), copy.append(k), clip.append(f"{a:02d}-{c}")
    actor = np.asarray(actor, dtype=np.int8)
    return actor, (actor - 1) % folds, np.asarray(copy, dtype=np.int8), np.asarray(clip)


def test_by_default_every_other_fold_trains():
    actor, fold, copy, clip = _store()
    split = fold_split(fold=fold, copy=copy, test_fold=2)
    assert split.test_folds == (2,) and split.val_folds == () and len(split.val) == 0
    speaker = np.array([f"c:{a}" for a in actor])
    assert split.actors(speaker) == {"train": ["c:1", "c:2", "c:4", "c:5", "c:6", "c:8"],
                                     "val": [], "test": ["c:3", "c:7"]}
    assert not set(clip[split.test]) & set(clip[split.train])


def test_roles_for_one_fold():
    actor, fold, copy, clip = _store()
    split = fold_split(fold=fold, copy=copy, test_fold=2, val_folds=1)
    assert split.test_folds == (2,) and split.val_folds == (3,)
    speaker = np.array([f"c:{a}" for a in actor])
    assert split.actors(speaker) == {"train": ["c:1", "c:2", "c:5", "c:6"], "val": ["c:4", "c:8"],
                                     "test": ["c:3", "c:7"]}
    assert np.all(copy[split.test] == 0) and np.all(copy[split.val] == 0)
    assert set(copy[split.train].tolist()) == {0, 1, 2}
    assert not set(clip[split.test]) & set(clip[split.train])
    assert not set(clip[split.val]) & set(clip[split.train])
    assert len(split.test) == 2 * 3 and len(split.val) == 2 * 3 and len(split.train) == 4 * 3 * 3


def test_validation_wraps_around_to_the_first_fold():
    _, fold, copy, _ = _store()
    split = fold_split(fold=fold, copy=copy, test_fold=3, val_folds=2)
    assert split.val_folds == (0, 1)
    assert set(fold[split.train].tolist()) == {2}


def test_final_trains_on_every_row():
    _, fold, copy, _ = _store()
    split = fold_split(fold=fold, copy=copy, test_fold=None)
    assert np.array_equal(split.train, np.arange(len(fold)))
    assert len(split.val) == 0 and len(split.test) == 0
    assert split.test_folds == () and split.val_folds == ()


def test_unknown_fold_names_the_folds():
    _, fold, copy, _ = _store()
    with pytest.raises(TrainingError, match=r"--fold 9: the index has folds \[0, 1, 2, 3\]"):
        fold_split(fold=fold, copy=copy, test_fold=9)


def test_too_few_folds_for_test_validation_and_training():
    _, fold, copy, _ = _store(folds=2)
    with pytest.raises(TrainingError, match="no training actors"):
        fold_split(fold=fold, copy=copy, test_fold=0, val_folds=1)
    assert fold_split(fold=fold, copy=copy, test_fold=0).test_folds == (0,)  # fine without validation
    _, fold, copy, _ = _store(folds=3)
    with pytest.raises(TrainingError, match="2 validation fold"):
        fold_split(fold=fold, copy=copy, test_fold=0, val_folds=2)


@st.composite
def stores(draw):
    """Random fold and copy columns (folds need not be 0..K-1 or contiguous)."""
    n = draw(st.integers(1, 60))
    fold_ids = draw(st.lists(st.integers(0, 9), min_size=1, max_size=6, unique=True))
    fold = np.asarray(draw(st.lists(st.sampled_from(fold_ids), min_size=n, max_size=n)),
                      dtype=np.int8)
    copy = np.asarray(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.int8)
    present = sorted(set(fold.tolist()))
    test_fold = draw(st.sampled_from(present + [None]))
    val_folds = draw(st.integers(0, 3))
    return fold, copy, test_fold, val_folds


@settings(max_examples=300, deadline=None)
@given(stores())
def test_fold_split_invariants(case):
    fold, copy, test_fold, val_folds = case
    present = sorted(set(fold.tolist()))
    if test_fold is not None and len(present) < 2 + val_folds:
        with pytest.raises(TrainingError):
            fold_split(fold=fold, copy=copy, test_fold=test_fold, val_folds=val_folds)
        return
    split = fold_split(fold=fold, copy=copy, test_fold=test_fold, val_folds=val_folds)
    train, val, test = (set(rows.tolist()) for rows in (split.train, split.val, split.test))
    for rows in (split.train, split.val, split.test):
        assert len(set(rows.tolist())) == len(rows)  # no row twice
        assert np.all((rows >= 0) & (rows < len(fold)))
    assert not train & val and not train & test and not val & test
    if test_fold is None:
        assert train == set(range(len(fold))) and not val and not test
        return
    # folds (hence actors) are in one role each
    assert split.test_folds == (test_fold,)
    assert len(split.val_folds) == val_folds and test_fold not in split.val_folds
    assert set(split.val_folds) <= set(present)
    train_folds = set(fold[split.train].tolist())
    assert not train_folds & set(split.val_folds) and test_fold not in train_folds
    # test and validation see exactly the clean rows of their folds; training sees every
    # copy of every other fold, and nothing of the held-out folds
    assert test == set(np.flatnonzero((fold == test_fold) & (copy == 0)).tolist())
    assert val == set(np.flatnonzero(np.isin(fold, split.val_folds) & (copy == 0)).tolist())
    assert train == set(np.flatnonzero(~np.isin(fold, (test_fold, *split.val_folds))).tolist())
    # the validation folds are the ones after the test fold, wrapping around
    position = present.index(test_fold)
    assert split.val_folds == tuple(present[(position + step) % len(present)]
                                    for step in range(1, val_folds + 1))


def test_random_clip_split_shares_actors_but_never_trains_on_a_held_out_clip():
    from pipeline.corpus.splits import random_clip_split

    actors = np.repeat(np.arange(1, 9), 30 * 3)  # 8 actors x 30 clips x 3 copies
    clip_id = np.repeat([f"c{i}" for i in range(240)], 3)
    copy = np.tile(np.arange(3), 240)
    split = random_clip_split(clip_id=clip_id, copy=copy, n_folds=4, seed=0, val_folds=1)
    held_out = set(clip_id[split.test]) | set(clip_id[split.val])
    assert not held_out & set(clip_id[split.train])
    assert len(split.test) == len(split.val) == 60
    assert set(copy[split.test]) == {0}
    assert set(actors[split.test]) & set(actors[split.train])  # the leak it exists to show
    again = random_clip_split(clip_id=clip_id, copy=copy, n_folds=4, seed=0)  # no validation
    assert np.array_equal(again.test, split.test) and len(again.val) == 0
    assert set(clip_id[again.train]) == set(clip_id) - set(clip_id[again.test])


def test_a_random_split_without_room_for_training_names_the_fix():
    from pipeline.core.errors import TrainingError
    from pipeline.corpus.splits import random_clip_split

    clip_id = np.array([f"c{i}" for i in range(20)])
    with pytest.raises(TrainingError, match="5 folds leave no training clips.*--val-folds"):
        random_clip_split(clip_id=clip_id, copy=np.zeros(20, dtype=int), n_folds=5, seed=0,
                          val_folds=4)


@pytest.mark.parametrize("choice, folds, expected", [
    ("all", [0, 1, 2], [0, 1, 2]), ("random", [0, 1], ["random"]), ("1", [0, 1], [1]),
    ("3", None, [3]),  # no index yet: the stage reports that
])
def test_a_fold_choice_names_its_runs(choice, folds, expected):
    from pipeline.corpus.splits import runs_for

    assert runs_for(choice, folds) == expected


@pytest.mark.parametrize("choice, message", [("7", "the index has folds 0 to 2"),
                                             ("seven", "give a fold number, 'all', or 'random'")])
def test_a_fold_choice_outside_the_index_is_refused(choice, message):
    from pipeline.corpus.splits import runs_for

    with pytest.raises(ValueError, match=message):
        runs_for(choice, [0, 1, 2])
