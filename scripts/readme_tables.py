#!/usr/bin/env python3
"""Print the README's accuracy tables (Markdown) from the reports of
``ser evaluate --fold all``, ``--fold random`` and ``--bundle B --source ../shared/urdu``
(every ``reports/bundle-*.json`` of a corpus with fewer than eight emotions), and the
table of corpora from the bundle's own card (``pipeline.corpus.card``) with those
reports, so the README quotes the reports and the shipped bundle exactly:

    python scripts/readme_tables.py [--artifacts-dir artifacts] [--bundle shipped]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core import layout  # noqa: E402


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def cv_tables(report: dict) -> str:
    lines, sentences = [], []
    if report.get("members", 1) > 1:
        first = report["train_config"]["seed"]
        sentences.append(f"Each fold's model is an ensemble of {report['members']} members "
                         f"(seeds {first}–{first + report['members'] - 1}, probabilities "
                         "averaged).")
    if len(report.get("test_views") or [{}]) > 1:
        sentences.append(f"Each test clip is scored in {len(report['test_views'])} test-time "
                         "views (`pipeline.signal.views`), probabilities averaged.")
    if sentences:
        lines += [" ".join(sentences), ""]
    lines += ["| fold | test actors | UA | WA | macro-F1 |", "|---|---|---|---|---|"]
    for run in report["fold_runs"]:
        metrics = run["metrics"]
        test = run["actors"]["test"]  # "ravdess:05"; RAVDESS actor numbers before issue 28
        names = [a if isinstance(a, str) else f"ravdess:{a:02d}" for a in test]
        one_corpus = len({n.split(":", 1)[0] for n in names}) == 1
        actors = ", ".join(n.split(":", 1)[-1] if one_corpus else n for n in names)
        lines.append(f"| {run['fold']} | {actors} | {pct(metrics['ua'])} | {pct(metrics['wa'])} "
                     f"| {pct(metrics['macro_f1'])} |")
    summary = {k: f"{pct(report['summary'][k]['mean'])} ± {pct(report['summary'][k]['std'])}"
               for k in ("ua", "wa", "macro_f1")}
    lines.append(f"| **mean ± std** | | **{summary['ua']}** | {summary['wa']} | {summary['macro_f1']} |")
    pooled = report["pooled"]
    lines += ["", f"Per emotion, pooled over the {len(report['fold_runs'])} test folds "
                  f"({pooled['n']} clips):", "",
              "| emotion | recall | precision | F1 | clips |", "|---|---|---|---|---|"]
    for label, figures in sorted(pooled["per_class"].items()):
        lines.append(f"| {label} | {pct(figures['recall'])} | {pct(figures['precision'])} "
                     f"| {pct(figures['f1'])} | {figures['support']} |")
    lines += ["", f"Pooled: UA {pct(pooled['ua'])}, WA {pct(pooled['wa'])}, "
                  f"macro-F1 {pct(pooled['macro_f1'])}."]
    return "\n".join(lines)


def random_line(report: dict, cv: dict) -> str:
    pooled = report["pooled"]
    gap = 100 * (pooled["ua"] - cv["summary"]["ua"]["mean"])
    return (f"Random clip-level split: UA {pct(pooled['ua'])}, WA {pct(pooled['wa'])}, "
            f"macro-F1 {pct(pooled['macro_f1'])} ({pooled['n']} test clips), "
            f"{gap:.1f} points above the actor-independent mean UA.")


def cross_corpus_table(report: dict) -> str:
    """Recall per emotion and UA, with the 8-way and the restricted verdict."""
    emotions, eight, restricted = report["emotions"], report["pooled"], report["restricted"]
    lines = [f"`{Path(report['bundle']).name}` on {report['pooled']['n']} {report['corpus']} "
             f"clips ({report['failed']} of {report['files']} not scored: no speech detected):",
             "", "| verdict | " + " | ".join(emotions) + " | UA |",
             "|---|" + "---|" * (len(emotions) + 1)]
    for name, figures in (("8-way (calm and the others count as wrong)", eight),
                          (f"{len(emotions)}-way (calm added to neutral)", restricted)):
        recalls = " | ".join(pct(figures["per_class"][e]["recall"]) for e in emotions)
        lines.append(f"| {name} | {recalls} | **{pct(figures['ua'])}** |")
    shares = sorted(report["predicted_share"].items(), key=lambda item: -item[1])
    lines += ["", "8-way verdicts: " + ", ".join(f"{label} {pct(share)}"
                                                for label, share in shares if share > 0) + "."]
    return "\n".join(lines)


def corpus_table(card: list[dict], reports: list[dict]) -> str:
    """One row per corpus: the bundle's training corpora with their cross-validated
    figures (mean ± std over folds), then each corpus a bundle report scored and the
    bundle did not train on; and the licences of everything the weights trained on."""
    from pipeline.corpus.recipes import RECIPES

    lines = ["| corpus | language | clips | speakers | UA, 8-way | UA over its own emotions "
             "| used for | licence |", "|---|---|---|---|---|---|---|---|"]
    for c in card:
        cv = c.get("cv") or {}
        ua = f"{pct(cv['ua']['mean'])} ± {pct(cv['ua']['std'])}" if "ua" in cv else "–"
        own = (f"{pct(cv['restricted_ua']['mean'])} ± {pct(cv['restricted_ua']['std'])}"
               if "restricted_ua" in cv else "(all eight)")
        role = ("training; recipe chosen on its validation speakers; CV on unseen speakers"
                if c["role"] == "train" else "cross-validation test only")
        lines.append(f"| {c['name']} | {c['language'] or '?'} | {c['clips'] or '–'} | "
                     f"{c['speakers'] or '–'} | {ua} | {own} | {role} | {c['licence'] or '?'} |")
    trained = {c["name"] for c in card}
    for report in reports:
        if report["corpus"] in trained:
            continue
        recipe = RECIPES.get(report["corpus"])
        own = pct(report["restricted"]["ua"]) if "restricted" in report else "(all eight)"
        lines.append(f"| {report['corpus']} | {recipe.language if recipe else '?'} | "
                     f"{report['pooled']['n']} | {len(report.get('actors') or []) or '–'} | "
                     f"{pct(report['pooled']['ua'])} | {own} | report only: never trained on, "
                     "every speaker unseen; the shipped bundle scored once | "
                     f"{recipe.licence if recipe else '?'} |")
    from pipeline.corpus.card import licence_notice

    return "\n".join(lines + ["", licence_notice(card)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifacts-dir", default="artifacts", type=Path)
    parser.add_argument("--bundle", default="shipped",
                        help="the bundle whose corpora to tabulate ('shipped' or a path)")
    args = parser.parse_args()
    reports = layout.reports_dir(args.artifacts_dir)
    cv_path = layout.cv_report(args.artifacts_dir)
    random_path = layout.report_stem(args.artifacts_dir, "random").with_suffix(".json")
    if not cv_path.exists():
        raise SystemExit(f"{cv_path} not found: run 'ser evaluate --fold all' first")
    cv = json.loads(cv_path.read_text())
    print(cv_tables(cv))
    if random_path.exists():
        print("\n" + random_line(json.loads(random_path.read_text()), cv))
    bundle_reports = [json.loads(p.read_text()) for p in sorted(reports.glob("bundle-*.json"))]
    for report in bundle_reports:
        if "restricted" in report:
            print("\n" + cross_corpus_table(report))
    from pipeline.inference import bundle, locate

    loaded = bundle.load(locate.resolve(args.bundle, artifacts_dir=args.artifacts_dir))
    mine = [r for r in bundle_reports if r.get("model") == loaded.identity]
    print("\n" + corpus_table(loaded.metadata.get("corpora") or [], mine))


if __name__ == "__main__":
    main()
