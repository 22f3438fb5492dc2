"""Speaker-disjoint cross-validation folds over one or several corpora.

Each speaker (``<corpus>:<speaker>``, unique across corpora) goes to exactly one fold.
Corpora are dealt one at a time, the one with the most speakers first (ties: by name).
Within a corpus, speakers are grouped by gender (unknown gender is a group of its own),
each group shuffled with the split seed and dealt round-robin, the next group continuing
where the previous stopped, over the folds in the order of how few speakers they hold so
far (ties: the lower fold). So each corpus is spread over every fold it can fill, fold
sizes and each gender's counts differ by at most one within a corpus, and a small
corpus's remainder goes to the folds the larger ones left lightest.

For the first (or only) corpus every fold is empty, so the order is 0, 1, ...: RAVDESS
alone gets exactly the folds earlier versions assigned (actors by number within gender,
``numpy.random.default_rng(seed).permutation``, dealt from fold 0).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipeline.core.errors import CorpusError


def assign_folds(speakers: dict[str, tuple[str, str]], *, folds: int,
                 seed: int) -> dict[str, int]:
    """Speaker -> fold. ``speakers``: speaker key -> (corpus, gender). Raises
    ``CorpusError`` with the fix for fewer than 2 folds or more folds than speakers."""
    if folds < 2:
        raise CorpusError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if len(speakers) < 2:
        raise CorpusError(f"only {len(speakers)} speaker(s) ({', '.join(sorted(speakers))}): "
                          "speaker-disjoint folds need at least 2; add speakers, or check what "
                          "'ser index' left out")
    if len(speakers) < folds:
        raise CorpusError(f"--folds {folds} is more than the {len(speakers)} speakers present; "
                          f"use --folds {max(2, len(speakers))} or fewer")
    by_corpus: dict[str, list[str]] = defaultdict(list)
    for key, (corpus, _) in speakers.items():
        by_corpus[corpus].append(key)
    load = [0] * folds
    assignment: dict[str, int] = {}
    for corpus in sorted(by_corpus, key=lambda c: (-len(by_corpus[c]), c)):
        order = sorted(range(folds), key=lambda f: (load[f], f))
        rng = np.random.default_rng(seed)
        position = 0
        for gender in sorted({speakers[k][1] for k in by_corpus[corpus]}):
            group = sorted(k for k in by_corpus[corpus] if speakers[k][1] == gender)
            for key in rng.permutation(group):
                fold = order[position % folds]
                assignment[str(key)] = fold
                load[fold] += 1
                position += 1
    return assignment
