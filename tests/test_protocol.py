"""The evaluation protocol on the real index: actor-independent folds, and no copy of a
test-fold (or validation) clip ever reaches training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import SHARED_RAVDESS
from pipeline.corpus.download import download
from pipeline.corpus.index import IndexConfig, build_index
from pipeline.corpus.splits import fold_split
from pipeline.signal.augment import AugmentConfig


@pytest.mark.realdata
def test_real_index_keeps_actors_and_copies_of_test_clips_out_of_training(tmp_path):
    data_dir = tmp_path / "data"
    download(data_dir=data_dir, source=str(SHARED_RAVDESS))
    clips = build_index(data_dir=data_dir, config=IndexConfig(folds=5, seed=0)).clips
    actor_folds = {}
    for clip in clips:
        actor_folds.setdefault(clip.speaker, set()).add(clip.fold)
    assert len(actor_folds) == 20
    assert all(len(folds) == 1 for folds in actor_folds.values()), actor_folds

    # the rows a feature store holds: every clip x (clean + K augmented copies)
    copies = AugmentConfig().copies + 1
    clip_id = np.repeat([c.clip_id for c in clips], copies)
    actor = np.repeat([c.speaker for c in clips], copies)
    fold = np.repeat([c.fold for c in clips], copies)
    copy = np.tile(np.arange(copies), len(clips))
    for test_fold, val_folds in itertools.product(range(5), (0, 1)):
        split = fold_split(fold=fold, copy=copy, test_fold=test_fold, val_folds=val_folds)
        train_clips = set(clip_id[split.train])
        held_out = set(clip_id[split.test]) | set(clip_id[split.val])
        assert len(split.test) == 240 and len(split.val) == 240 * val_folds
        assert not train_clips & held_out
        assert not set(actor[split.train]) & (set(actor[split.test]) | set(actor[split.val]))
        assert not set(actor[split.test]) & set(actor[split.val])
        assert set(copy[split.test]) == {0} and set(copy[split.val]) <= {0}
        assert set(copy[split.train]) == set(range(copies))  # augmented copies train
        assert len(split.train) == 240 * (4 - val_folds) * copies
