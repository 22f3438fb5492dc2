"""pipeline/evaluation/bundle_eval.py on the real RAVDESS copy (the synthetic cases are in
tests/test_evaluate.py, beside the fold models they share): the shipped bundle gives the
same per-emotion recalls on clips under their RAVDESS names and on the same clips copied
into ``DIR/<emotion>/<names that say nothing>``."""

from __future__ import annotations

import shutil

import pytest

from conftest import SHARED_RAVDESS
from pipeline.core.labels import EMOTIONS
from pipeline.evaluation.bundle_eval import evaluate_bundle
from pipeline.inference.locate import SHIPPED


@pytest.mark.realdata
@pytest.mark.slow
def test_shipped_bundle_on_emotion_folders_equals_ravdess_names(tmp_path):
    named, folders = tmp_path / "named", tmp_path / "by-emotion"
    for path in sorted((SHARED_RAVDESS / "Actor_03").glob("03-01-*.flac")):
        (named / "Actor_03").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, named / "Actor_03" / path.name)
        emotion = EMOTIONS[int(path.stem.split("-")[2]) - 1]
        (folders / emotion).mkdir(parents=True, exist_ok=True)
        # intensity-statement-repetition: the same names recur in every emotion's folder
        shutil.copy(path, folders / emotion / f"take-{path.stem[9:17]}.flac")
    reports = [evaluate_bundle(bundle_path=SHIPPED, source=source, jobs=2, tta=False,
                               artifacts_dir=tmp_path / source.name)
               for source in (named, folders)]
    assert [r["corpus"] for r in reports] == ["ravdess", "by-emotion"]
    assert reports[0]["pooled"]["n"] == reports[1]["pooled"]["n"] == 60
    recalls = [{e: m["recall"] for e, m in r["pooled"]["per_class"].items()} for r in reports]
    assert recalls[0] == recalls[1]
    assert reports[0]["pooled"]["confusion"] == reports[1]["pooled"]["confusion"]
