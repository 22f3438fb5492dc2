"""Tests of pipeline/corpus/card.py: what a bundle says about the corpora behind it."""

from __future__ import annotations

from pipeline.corpus.card import accuracy_statement, corpora_card, licence_notice

INFO = {"corpora": ["emovo", "ravdess"], "train_clips": {"emovo": 588, "ravdess": 1195},
        "actors": {"train": ["emovo:f1", "emovo:m1", "ravdess:01", "ravdess:02", "ravdess:03"],
                   "val": [], "test": []}}
CV = {"corpus_summary": {
    "ravdess": {"folds": 5, "clips": 1195, "ua": {"mean": 0.671, "std": 0.05}},
    "emovo": {"folds": 5, "clips": 588, "ua": {"mean": 0.52, "std": 0.08},
              "restricted_ua": {"mean": 0.55, "std": 0.07}},
    "mine": {"folds": 2, "clips": 9, "ua": {"mean": 0.3, "std": 0.1}}}}


def test_the_card_names_each_corpus_its_terms_role_and_figures():
    card = {c["name"]: c for c in corpora_card(INFO, CV)}
    assert list(card) == ["emovo", "mine", "ravdess"]
    assert card["ravdess"]["language"] == "English"
    assert "CC BY-NC-SA 4.0" in card["ravdess"]["licence"]
    assert card["emovo"]["licence"] == "free for research use; no open licence"
    assert "Costantini" in card["emovo"]["reference"]
    assert (card["emovo"]["clips"], card["emovo"]["speakers"]) == (588, 2)
    assert (card["ravdess"]["clips"], card["ravdess"]["speakers"]) == (1195, 3)
    assert card["emovo"]["cv"]["restricted_ua"]["mean"] == 0.55
    # tested by the cross-validation, not trained on, known to no recipe
    assert card["mine"] == {"name": "mine", "language": "", "licence": "", "reference": "",
                            "role": "test only", "clips": None, "speakers": None,
                            "cv": CV["corpus_summary"]["mine"]}


def test_a_run_from_before_corpora_were_recorded_trained_on_ravdess_alone():
    card = corpora_card({"actors": {"train": [1, 2, 3]}}, {})
    assert [(c["name"], c["role"], c["speakers"], c["cv"]) for c in card] == [
        ("ravdess", "train", 3, None)]


def test_the_licence_notice_names_every_training_corpus_and_its_terms():
    notice = licence_notice(corpora_card(INFO, CV))
    assert notice.startswith("The weights were trained on emovo (free for research use; no "
                             "open licence) and ravdess (CC BY-NC-SA 4.0")
    assert "mine" not in notice and "every one of these terms binds" in notice
    own = corpora_card({"corpora": ["mine"], "actors": {"train": ["mine:a"]}}, {})
    assert "mine (licence not recorded: check its own terms)" in licence_notice(own)
    assert "non-commercial" in licence_notice(None)  # bundles without a card: RAVDESS's


def test_the_accuracy_statement_gives_each_corpus_its_figure():
    statement = accuracy_statement(corpora_card(INFO, CV), {})
    assert "emovo 52.0% ± 8.0%" in statement and "ravdess 67.1% ± 5.0%" in statement
    old = {"test": {"ua": {"mean": 0.655, "std": 0.041}}}
    assert "65.5% ± 4.1%" in accuracy_statement(None, old)
    assert accuracy_statement(None, {}) == "No test figures were stamped into this model."
