"""Recipes: how each labelled corpus names its recordings, turned into manifest rows
(``pipeline.manifest.Row``), as lhotse's ``prepare_<corpus>`` functions do.

A recipe reads a corpus folder in its documented layout (``Recipe.layout``): the audio
files are found by ``pipeline.scan.scan`` and each root-relative path is parsed by the
corpus's own small parser (``named`` for the published corpora, ``custom`` for a user's
folders or CSV). What cannot be used is never guessed, it is counted:

- ``Found.left_out``: files whose emotion the model does not have (EmoDB's boredom), by
  the corpus's label;
- ``Found.skipped``: files that do not follow the layout (or are song, or not audio), by
  reason, so that ``Found.summary`` says in one line what was used and what was not.

``find_rows(name, root)`` runs one recipe; ``detect(root)`` picks the recipe whose naming
labels the most files under a folder.
"""

from __future__ import annotations

import inspect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, NamedTuple

from pipeline.errors import CorpusError
from pipeline.manifest import Row


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
    from pipeline.scan import scan

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


def find_rows(name: str, root: Path, **options: object) -> Found:
    """Run the recipe ``name`` on ``root`` with its ``options``. Raises ``CorpusError``
    for an unknown recipe or option (naming the known ones), a root that is not a folder
    (a file for ``csv``), or one in which nothing is labelled."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise CorpusError(f"no recipe {name!r}: choose one of {', '.join(RECIPES)}")
    accepted = [p for p in inspect.signature(recipe.find).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise CorpusError(f"recipe {name} has no option {', '.join(unknown)}: it takes "
                          f"{', '.join(accepted) or 'none'}")
    root = Path(root)
    if recipe.root_kind == "file" and not root.is_file():
        raise CorpusError(f"{name}: {root} is not a file: pass the file itself, e.g. "
                          f"{recipe.layout}")
    if recipe.root_kind == "folder":
        corpus_folder(root, corpus=name, layout=recipe.layout)
    return recipe.find(root, **options)


def detect(root: Path) -> Recipe:
    """The folder recipe whose naming labels the most audio files under ``root`` (a file
    left out for its emotion counts as labelled; ties go to the earlier recipe in
    ``RECIPES``). Raises ``CorpusError`` for a root that is not a folder, or one under
    which no recipe labels any file, naming every recipe's layout."""
    root = corpus_folder(root, corpus="the", layout="one of the recipes' layouts")
    best, best_count = None, 0
    for recipe in RECIPES.values():
        if recipe.root_kind != "folder":
            continue
        try:
            found = recipe.find(root)
        except CorpusError:
            continue
        count = len(found.rows) + sum(found.left_out.values())
        if count > best_count:
            best, best_count = recipe, count
    if best is None:
        layouts = "; ".join(f"{r.name}: {r.layout}" for r in RECIPES.values()
                            if r.root_kind == "folder")
        raise CorpusError(f"no audio file under {root} is named the way a recipe reads it "
                          f"({layouts}): rename or sort the files like one of these, or list "
                          "them in a CSV with columns path,emotion")
    return best


# The recipes import Found, Recipe and collect from this module, so they come last.
from pipeline.recipes import custom, named  # noqa: E402

RECIPES: dict[str, Recipe] = {**named.RECIPES, **custom.RECIPES}

__all__ = ["Found", "Recipe", "RECIPES", "find_rows", "detect"]
