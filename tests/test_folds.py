"""Tests of pipeline/corpus/folds.py: speakers whole, spread over the folds, balanced per corpus
and gender; RAVDESS alone keeps the folds earlier versions assigned."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import CorpusError
from pipeline.corpus.folds import assign_folds

# The folds the index assigned to RAVDESS actors 01-20 (split seed 0, 5 folds) before
# the index knew several corpora (index format 2, main at 2e9c4c0): actor -> fold.
RAVDESS_SEED0 = {1: 4, 2: 2, 3: 4, 4: 4, 5: 0, 6: 2, 7: 2, 8: 4, 9: 0, 10: 0, 11: 3, 12: 0,
                 13: 3, 14: 1, 15: 2, 16: 3, 17: 1, 18: 3, 19: 1, 20: 1}


def _ravdess(actors=range(1, 21)) -> dict[str, tuple[str, str]]:
    return {f"ravdess:{a:02d}": ("ravdess", "male" if a % 2 else "female") for a in actors}


def _emovo() -> dict[str, tuple[str, str]]:
    return {f"emovo:{g}{n}": ("emovo", "female" if g == "f" else "male")
            for g in "fm" for n in (1, 2, 3)}


def test_ravdess_alone_keeps_the_folds_of_earlier_versions() -> None:
    assignment = assign_folds(_ravdess(), folds=5, seed=0)
    assert assignment == {f"ravdess:{a:02d}": fold for a, fold in RAVDESS_SEED0.items()}


def test_a_second_corpus_leaves_ravdess_folds_alone_and_fills_the_lightest_folds() -> None:
    assignment = assign_folds({**_ravdess(), **_emovo()}, folds=5, seed=0)
    assert {k: v for k, v in assignment.items() if k.startswith("ravdess")} == \
        assign_folds(_ravdess(), folds=5, seed=0)
    emovo = Counter(v for k, v in assignment.items() if k.startswith("emovo"))
    assert set(emovo) == set(range(5)) and sorted(emovo.values()) == [1, 1, 1, 1, 2]
    # each emovo gender spread: 3 women in 3 folds, 3 men in 3 folds
    for gender in "fm":
        assert len({v for k, v in assignment.items() if k.startswith(f"emovo:{gender}")}) == 3


speakers_strategy = st.dictionaries(
    keys=st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 30)),
    values=st.sampled_from(["male", "female", ""]), min_size=2, max_size=40)


@settings(max_examples=60, deadline=None)
@given(drawn=speakers_strategy, data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_every_speaker_in_one_fold_and_each_corpus_balanced(drawn, data, seed) -> None:
    speakers = {f"{c}:{n}": (c, g) for (c, n), g in drawn.items()}
    folds = data.draw(st.integers(2, len(speakers)), label="folds")
    assignment = assign_folds(speakers, folds=folds, seed=seed)
    assert set(assignment) == set(speakers)
    assert set(assignment.values()) <= set(range(folds))
    sizes = Counter(assignment.values())
    assert max(sizes[f] for f in range(folds)) - min(sizes[f] for f in range(folds)) <= 1
    for corpus in {c for c, _ in speakers.values()}:
        for gender in {g for c, g in speakers.values() if c == corpus}:
            per_fold = Counter(assignment[k] for k, (c, g) in speakers.items()
                               if c == corpus and g == gender)
            counts = [per_fold[f] for f in range(folds)]
            assert max(counts) - min(counts) <= 1, (corpus, gender, counts)
    assert assign_folds(dict(reversed(speakers.items())), folds=folds, seed=seed) == assignment


def test_the_seed_changes_the_folds() -> None:
    assignments = {tuple(sorted(assign_folds(_ravdess(), folds=5, seed=s).items()))
                   for s in range(10)}
    assert len(assignments) > 1


@pytest.mark.parametrize("speakers, folds, message", [
    (4, 1, "at least 2 folds"), (4, 0, "at least 2 folds"), (3, 4, "more than the 3 speakers"),
])
def test_impossible_splits_are_refused_with_the_fix(speakers, folds, message) -> None:
    with pytest.raises(CorpusError, match=message):
        assign_folds(_ravdess(range(1, speakers + 1)), folds=folds, seed=0)
