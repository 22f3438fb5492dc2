"""Tests of scripts/readme_tables.py's table of corpora: a trained corpus's cross-validated
row, a corpus the bundle only scored, and the licence line of what the weights saw."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "readme_tables.py"


def _script():
    spec = importlib.util.spec_from_file_location("readme_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_table_has_a_row_per_corpus_and_the_training_licences_only():
    card = [{"name": "ravdess", "language": "English", "licence": "CC BY-NC-SA 4.0",
             "reference": "", "role": "train", "clips": 1195, "speakers": 20,
             "cv": {"ua": {"mean": 0.667, "std": 0.07}}}]
    reports = [{"corpus": "urdu", "pooled": {"n": 399, "ua": 0.228},
                "restricted": {"ua": 0.446}, "actors": ["a", "b", "c"]},
               {"corpus": "ravdess", "pooled": {"n": 1194, "ua": 0.999}}]
    table = _script().corpus_table(card, reports).splitlines()
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2  # the training corpus's own bundle report is not a second row
    assert rows[0].startswith("| ravdess | English | 1195 | 20 | 66.7% ± 7.0% | (all eight) "
                              "| training")
    assert rows[1].startswith("| urdu | Urdu | 399 | 3 | 22.8% | 44.6% | report only")
    assert "research use only" in rows[1]
    assert table[-1] == ("The weights were trained on ravdess (CC BY-NC-SA 4.0): its terms "
                         "bind their use.")
