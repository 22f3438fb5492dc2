"""The command line, ``ser`` (also ``python -m pipeline`` and ``python cli.py``): one
command per stage, each parsing options, building the stage's config and calling one
library function in ``pipeline/``. Heavy libraries (torch) are imported inside the
commands, so ``ser --help`` stays fast."""

from __future__ import annotations

from pipeline.cli import prepare, score, workflow  # noqa: F401  (they register their commands)
from pipeline.cli.base import cli


def main() -> None:
    """The ``ser`` console script."""
    cli(prog_name="ser")
