"""One clip is one clip: finding the same recording twice in a folder being evaluated.

Two kinds of duplicate are recognised, and in each group the first is kept:

- **by clip id**: manifest rows (``pipeline.corpus.manifest.Row``) with the same clip id, which a
  recipe gives the same clip in several formats or folders (``x.wav``, ``x.flac``,
  ``backup/x.mp3`` of a RAVDESS clip: its name carries every field, the actor included).
  They are dropped before scoring; the kept file is the one in the most faithful format
  (lossless before lossy, then path order);
- **by audio**: files whose decoded samples and rate are identical (a copy under another
  name or in another folder), recognised from the hash the scoring worker computes
  (``FileResult.audio_sha256``), so no file is decoded twice.

The index of the training corpus applies the same idea to cross-validation
(``pipeline.corpus.index``: one row per clip id, identical audio marked).
"""

from __future__ import annotations

from pathlib import Path


# lossy codecs last: when the same clip comes in several formats, score the best copy
_LOSSY = (".mp3", ".ogg", ".oga", ".opus")


def by_clip_id(rows: list) -> tuple[list, dict[str, str]]:
    """``(kept rows in their original order, {dropped path: kept path})`` for manifest
    rows whose ``clip_id`` is the same, wherever their files are."""
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row.clip_id, []).append(row)
    keep, dropped = set(), {}
    for group in groups.values():
        best = min(group, key=lambda r: (Path(r.path).suffix.lower() in _LOSSY, r.path))
        keep.add(best.path)
        dropped.update({r.path: best.path for r in group if r is not best})
    return [r for r in rows if r.path in keep], dropped


def by_audio(results: list) -> tuple[list, dict[str, str]]:
    """``(kept results, {dropped path: kept path})`` for results (``FileResult``) whose
    ``audio_sha256`` equals an earlier one's; results without a hash are all kept."""
    first: dict[str, str] = {}
    kept, dropped = [], {}
    for result in results:
        digest = getattr(result, "audio_sha256", "")
        if digest and digest in first:
            dropped[result.path] = first[digest]
            continue
        if digest:
            first[digest] = result.path
        kept.append(result)
    return kept, dropped
