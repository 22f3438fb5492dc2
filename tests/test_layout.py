"""Tests of pipeline/core/layout.py: the one owner of artifact paths, and that no other
module builds them."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.core import layout

PACKAGE = Path(layout.__file__).parent


def test_paths_are_where_the_docs_say():
    data, art = Path("d"), Path("a")
    assert layout.index_csv(data) == Path("d/index.csv")
    assert layout.index_manifest(data) == Path("d/index.json")
    assert layout.download_manifest(data) == Path("d/download.json")
    assert layout.features_manifest(art) == Path("a/features/manifest.json")
    assert layout.shard_file(art, 7) == Path("a/features/shard-00007.h5")
    assert layout.shard_file(art, 7).match(layout.SHARD_PATTERN)
    assert layout.model_file(art, "fold-2.m1") == Path("a/runs/fold-2.m1/model.pt")
    assert layout.run_manifest(art, "final") == Path("a/runs/final/result.json")
    assert layout.cv_report(art) == Path("a/reports/cv.json")
    assert layout.bundle_file(art, "final") == Path("a/bundles/ser-final.safetensors")


def test_run_and_member_names():
    assert [layout.run_name(f) for f in (0, 3, None, "random")] == [
        "fold-0", "fold-3", "final", "random"]
    assert layout.member_runs("fold-1", 3) == ["fold-1", "fold-1.m1", "fold-1.m2"]
    assert layout.member_run("final", 0) == "final"


def test_no_other_module_spells_an_artifact_file_or_folder_name():
    """The names layout owns appear as string literals in no other module of the
    package (docstrings and comments aside), so a path changes in one place."""
    owned = ['"runs"', '"reports"', '"bundles"', '"features"', '"model.pt"', '"result.json"',
             '"checkpoint.pt"', '"metrics.jsonl"', '"manifest.json"', '"cv.json"',
             '"index.csv"', '"index.json"', '"download.json"']
    offenders = []
    for path in PACKAGE.glob("*.py"):
        if path.name == "layout.py":
            continue
        for line in path.read_text().splitlines():
            if line.strip().startswith(("#", '"""')):
                continue
            builds_a_path = re.search(r"/\s*\"|Path\(", line)  # x / "name" or Path(...)
            if builds_a_path and any(name in line for name in owned):
                offenders.append(f"{path.name}: {line.strip()}")
    assert not offenders, offenders
