"""What a bundle says about the corpora behind its weights: the data of its model card.

``corpora_card`` lists every corpus the exported run trained on or the
cross-validation tested, each with its language, licence and reference (from its
recipe, ``pipeline.corpus.recipes``; empty for a corpus no recipe names), the clips and
speakers trained on, its role, and its cross-validation figures (``evaluate``'s
``corpus_summary``: the mean ± std over the folds that test it, UA over all the model's
emotions and restricted to the corpus's own). ``licence_notice`` turns it into the one
line a user of the weights must read, and ``accuracy_statement`` into the one line of
what to expect. Both are what ``serve`` shows and the README's model card quotes.
"""

from __future__ import annotations

from collections import Counter

TRAIN, TEST_ONLY = "train", "test only"


def corpora_card(info: dict, cv_report: dict) -> list[dict]:
    """One entry per corpus, sorted by name: ``name``, ``language``, ``licence``,
    ``reference``, ``role`` (``"train"``, or ``"test only"`` for a corpus the
    cross-validation tested but the run did not train on), ``clips`` and ``speakers``
    trained on (None when not trained on, or not recorded by a run from before issue
    29), ``cv`` (``corpus_summary``'s entry, or None). ``info``: the run's
    ``result.json`` record; ``cv_report``: its cross-validation report, or ``{}``. Runs
    from before issue 28 name no corpus and trained on RAVDESS alone."""
    from pipeline.corpus.recipes import RECIPES

    corpora = info.get("corpora") or ["ravdess"]
    clips = info.get("train_clips") or {}
    speakers = Counter(_corpus_of(s) for s in (info.get("actors") or {}).get("train", []))
    summary = cv_report.get("corpus_summary") or {}
    card = []
    for name in sorted(set(corpora) | set(summary)):
        recipe = RECIPES.get(name)
        trained = name in corpora
        card.append({
            "name": name, "language": recipe.language if recipe else "",
            "licence": recipe.licence if recipe else "",
            "reference": recipe.reference if recipe else "",
            "role": TRAIN if trained else TEST_ONLY,
            "clips": clips.get(name) if trained else None,
            "speakers": speakers.get(name) if trained else None,
            "cv": summary.get(name)})
    return card


def _corpus_of(speaker) -> str:
    """``"emovo:f1"`` -> ``"emovo"``; a bare RAVDESS actor number (runs before issue 28)
    -> ``"ravdess"``."""
    return str(speaker).split(":", 1)[0] if ":" in str(speaker) else "ravdess"


def licence_notice(card: list[dict] | None) -> str:
    """One line: the corpora the weights were trained on and each one's terms, e.g.
    ``"The weights were trained on ravdess (CC BY-NC-SA 4.0 …) and emovo (free for
    research use; …): every one of these terms binds their use."`` A bundle without a
    card (exported before issue 29) was trained on RAVDESS alone."""
    if not card:
        return ("The weights were trained on RAVDESS (CC BY-NC-SA 4.0): research and "
                "non-commercial use only.")
    parts = [f"{c['name']} ({c['licence'] or 'licence not recorded: check its own terms'})"
             for c in card if c["role"] == TRAIN]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    binds = "its terms bind" if len(parts) == 1 else "every one of these terms binds"
    return f"The weights were trained on {listed}: {binds} their use."


def accuracy_statement(card: list[dict] | None, provenance: dict) -> str:
    """One line of what to expect: each corpus's cross-validated UA (mean ± std over
    folds) when the card has them, else the run's stamped summary, else that there is
    none."""
    figures = [(c["name"], c["cv"]["ua"]) for c in card or [] if (c.get("cv") or {}).get("ua")]
    if figures:
        each = "; ".join(f"{name} {ua['mean']:.1%} ± {ua['std']:.1%}" for name, ua in figures)
        return (f"Cross-validated UA on speakers the model never heard: {each}; expect less "
                "on other speakers, languages and microphones.")
    ua = (provenance.get("test") or {}).get("ua", {})
    if isinstance(ua, dict) and "mean" in ua:
        return (f"Cross-validated UA {ua['mean']:.1%} ± {ua['std']:.1%} on actors the model "
                "never heard (5-fold, RAVDESS); expect less on other speakers, languages and "
                "microphones.")
    return "No test figures were stamped into this model."
