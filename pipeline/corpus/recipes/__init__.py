"""Recipes: how each labelled corpus names its recordings, turned into manifest rows
(``pipeline.corpus.manifest.Row``), as lhotse's ``prepare_<corpus>`` functions do.

A recipe reads a corpus folder in its documented layout (``Recipe.layout``): the audio
files are found by ``pipeline.corpus.scan.scan`` and each root-relative path is parsed by the
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
from pathlib import Path

from pipeline.core.errors import CorpusError
from pipeline.corpus.recipes import custom, named
from pipeline.corpus.recipes.base import Found, Recipe, corpus_folder


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


RECIPES: dict[str, Recipe] = {**named.RECIPES, **custom.RECIPES}

__all__ = ["Found", "Recipe", "RECIPES", "find_rows", "detect"]
