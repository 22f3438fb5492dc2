"""The parts every recipe is made of (``pipeline.corpus.recipes`` lists the recipes): ``Found``
(the rows a recipe read and what it left out, by reason), ``Recipe`` (a corpus's name,
layout, language, licence and parser), ``Parsed`` (one file's labels), and ``collect``,
which scans a folder and parses each root-relative path; ``corpus_folder`` and
``require_rows`` refuse a folder that is not there or labels nothing, naming the fix.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, NamedTuple

from pipeline.core.errors import CorpusError
from pipeline.corpus.manifest import Row


@dataclass(frozen=True)
class Found:
    """What a recipe found under its root.

    ``rows``: the usable recordings, sorted by path (absolute); ``left_out``: corpus label
    -> number of files whose emotion the model lacks; ``skipped``: reason -> root-relative
    posix paths of files not used; ``corpus``: the recipe's corpus name (for messages);
    ``meanings``: corpus label -> what it means ("boredom"), for the labels left out."""

    rows: list[Row]
    left_out: dict[str, int]
    skipped: dict[str, list[str]]
    corpus: str = ""
    meanings: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line, e.g. ``"emodb: 454 clips from 10 speakers; left out: L boredom (81
        files) — the model has no such emotion; skipped 2 files (name does not follow
        emodb's layout (wav/03a01Fa.wav): 2)"``."""
        corpus = self.corpus or (self.rows[0].corpus if self.rows else "corpus")
        speakers = {row.speaker for row in self.rows if row.speaker}
        line = f"{corpus}: {_count(len(self.rows), 'clip')}"
        if speakers:
            line += f" from {_count(len(speakers), 'speaker')}"
        if self.left_out:
            parts = [" ".join(filter(None, (label, self.meanings.get(label, ""))))
                     + f" ({_count(n, 'file')})" for label, n in sorted(self.left_out.items())]
            line += f"; left out: {', '.join(parts)} — the model has no such emotion"
        if self.skipped:
            total = sum(map(len, self.skipped.values()))
            parts = [f"{reason}: {len(paths)}" for reason, paths in sorted(self.skipped.items())]
            line += f"; skipped {_count(total, 'file')} ({'; '.join(parts)})"
        return line


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Recipe:
    """One corpus's naming. ``layout``: an example root-relative path (for messages and
    the README); ``labels``: corpus label -> model emotion (None: left out);
    ``find(root, **options) -> Found`` raises ``CorpusError`` naming the root and the fix
    when nothing under it is labelled; ``root_kind``: ``"folder"``, or ``"file"`` for a
    recipe that reads one file (``csv``); ``licence``: the corpus's terms of use as its
    distributor states them ("" when not recorded here: a user's own corpus)."""

    name: str
    layout: str
    labels: dict[str, str | None]
    language: str
    reference: str
    find: Callable[..., Found]
    root_kind: str = "folder"
    licence: str = ""


class Parsed(NamedTuple):
    """One recording as a parser reads it: ``emotion`` None when the model lacks it."""

    label: str
    emotion: str | None
    speaker: str
    gender: str
    clip_id: str


# A parser reads a root-relative path: a Parsed, or the reason the file is skipped.
Parser = Callable[[PurePosixPath], "Parsed | str"]


def corpus_folder(root: Path, *, corpus: str, layout: str) -> Path:
    """``root`` made absolute. Raises ``CorpusError`` when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise CorpusError(f"{corpus} corpus folder {root} {what}: pass the folder that holds "
                          f"its audio, laid out as {layout}")
    return root.resolve()


def collect(root: Path, *, corpus: str, layout: str, parse: Parser,
            meanings: Mapping[str, str] | None = None) -> Found:
    """The common loop of every folder recipe: scan ``root``, parse each audio file's
    root-relative path into a row (two copies of a clip keep one clip id: the caller
    keeps one, ``duplicates.by_clip_id``), count the emotions the model lacks and the
    skipped files. Rows are not required: see
    ``require_rows``. Raises ``CorpusError`` for a root that is not a folder."""
    from pipeline.corpus.scan import scan

    root = corpus_folder(root, corpus=corpus, layout=layout)
    found = scan([root])
    skipped: dict[str, list[str]] = defaultdict(list)
    for reason, paths in found.skipped.items():
        skipped[reason].extend(_relative(path, root) for path in paths)
    rows: list[Row] = []
    left_out: Counter[str] = Counter()
    for path in found.files:
        relative = PurePosixPath(_relative(path, root))
        parsed = parse(relative)
        if isinstance(parsed, str):
            skipped[parsed].append(str(relative))
        elif parsed.emotion is None:
            left_out[parsed.label] += 1
        else:
            rows.append(Row(path=str(path), label=parsed.label, emotion=parsed.emotion,
                            speaker=parsed.speaker, corpus=corpus, gender=parsed.gender,
                            clip_id=parsed.clip_id))
    used = {label: meanings[label] for label in left_out if meanings and label in meanings}
    return Found(rows=sorted(rows, key=lambda row: row.path), left_out=dict(left_out),
                 skipped={reason: sorted(paths) for reason, paths in skipped.items()},
                 corpus=corpus, meanings=used)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def require_rows(found: Found, *, root: Path, layout: str) -> Found:
    """``found``, or ``CorpusError`` when it has no row: naming the root, the layout and
    the fix (or the emotions the model lacks, when every file had one)."""
    if found.rows:
        return found
    if found.left_out:
        raise CorpusError(f"{found.corpus}: every labelled file under {root} is of an emotion "
                          f"the model lacks ({found.summary()}): pass a corpus with at least "
                          "one of the model's emotions")
    n_skipped = sum(map(len, found.skipped.values()))
    raise CorpusError(f"no audio file under {root} follows the layout {layout} "
                      f"({n_skipped} files skipped): pass the folder that holds the corpus's "
                      "audio, or the recipe that matches its names")
