"""The ``evaluate`` stage: metrics on held-out actors, or on any folder through a bundle.

- ``evaluate_folds``: each fold's model (``runs/fold-K/model.pt``, or the ensemble of its
  members ``fold-K``, ``fold-K.m1``, ...) on its test fold's clips; per fold, mean and
  standard deviation across folds, and the pooled confusion matrix. Report
  ``reports/cv.json`` (+ ``cv.png``). Each test clip is read from the corpus and scored
  through exactly ``predict``'s path (``pipeline.inference.scorer``), in the test-time views
  (``pipeline.signal.views``) or, with ``--no-tta``, the clean window alone: one scoring input
  either way.
  The report has every figure per corpus too (``by_corpus``: for a corpus without some
  of the model's emotions also the figures restricted to its own, ``metrics.cross_corpus``).
- a bundle on any labelled folder or manifest: ``pipeline.evaluation.bundle_eval``.

Every report states which model(s), folds, actors and config produced it, carries the
stage's ``key`` (the runs' keys, views and code) and is written last, after its plot.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from pipeline.core import layout
from pipeline.core.atomic import read_json, write_json_atomic
from pipeline.core.errors import PipelineError, StaleInputError
from pipeline.core.hashing import code_hash, hash_obj
from pipeline.core.metrics import confusion, cross_corpus, summarise
from pipeline.core.progress import log
from pipeline.corpus.index import load_index
from pipeline.corpus.splits import split_for
from pipeline.corpus.store import load_store
from pipeline.signal import views as test_views

SUMMARY_KEYS = ("ua", "wa", "macro_f1")


def evaluate_folds(*, data_dir: Path, artifacts_dir: Path, folds: list[int | str],
                   members: int = 1, views: tuple = test_views.TEST_VIEWS, jobs: int = 1) -> dict:
    """Test-fold metrics of each fold's trained model, or of the ensemble of its first
    ``members`` members, each test clip scored in ``views`` (see module docstring).
    Raises ``StaleInputError`` when a fold was trained on other features, or with another
    recipe or code than the first fold (the summary would mix recipes). Report
    ``reports/cv.json`` (several folds) or ``reports/<run>.json``; the returned dict also
    holds its path as ``report_path``. Raises ``PipelineError`` before scoring when the
    report cannot be written (``layout.check_output_folder``)."""
    from pipeline.inference.scorer import from_run
    from pipeline.network.recipe import recipe_of

    clips = load_index(data_dir)
    store = load_store(artifacts_dir, clips=clips)
    clip_folds = {clip.clip_id: clip.fold for clip in clips}
    failures = store.manifest.get("failures", {})
    stem = layout.report_stem(artifacts_dir, "cv" if len(folds) > 1 else layout.run_name(folds[0]))
    layout.check_output_folder(stem.parent, option="--artifacts-dir", given=artifacts_dir)
    labels = store.label_map
    per_fold, pooled = [], np.zeros((len(labels),) * 2, dtype=np.int64)
    first, scored = None, []  # (probabilities, labels) of each fold's test clips
    for fold in folds:
        run = layout.run_name(fold)
        scorer = from_run(artifacts_dir, run, members, views)
        saved = scorer.saved[0]
        info = saved["info"]
        if info["features_key"] != store.manifest["key"]:
            raise StaleInputError(f"runs/{run} was trained on other features than the current "
                                  f"store: rerun 'ser train --fold {fold}'")
        _check_labels(saved, store, run, fold)
        first = first or saved
        if (recipe_of(saved["train_config"]), info.get("train_code")) != (
                recipe_of(first["train_config"]), first["info"].get("train_code")):
            raise StaleInputError(f"runs/{run} was trained with another recipe or code than "
                                  f"runs/{per_fold[0]['run']}: retrain it with the same settings")
        split = split_for(store, fold, val_folds=saved["train_config"]["val_folds"],
                          seed=info["split_seed"])
        probabilities = held_out_probabilities(scorer, store, split.test, clips=clips,
                                               data_dir=data_dir, jobs=jobs)
        matrix = confusion(store.label[split.test], probabilities.argmax(1), len(labels))
        scored.append((probabilities, store.label[split.test], store.corpus[split.test]))
        pooled += matrix
        per_fold.append({"run": run, "member_runs": layout.member_runs(run, members),
                         "run_keys": [(read_json(layout.run_manifest(artifacts_dir, r)) or {})
                                      .get("key") for r in layout.member_runs(run, members)],
                         "fold": fold, "actors": info["actors"],
                         "best_epoch": info["best_epoch"], "validation": _pick(info.get("val")),
                         # clips extract could not use (no speech detected): not scored
                         "unscored": sorted(c for c in failures if clip_folds.get(c) == fold),
                         "metrics": summarise(matrix, labels),
                         "by_corpus": fold_corpora(scored[-1], clips, labels)})
    report = _fold_report(per_fold, pooled, first, store.manifest, folds=folds, members=members,
                          views=views, failures=failures, labels=labels)
    report["by_corpus"] = by_corpus(scored, clips, labels)
    report["corpus_summary"] = corpus_summary(per_fold)
    report["calibration"] = _calibration(artifacts_dir, report["recipe"], scored)
    write_report(report, stem)
    return {**report, "report_path": str(stem.with_suffix(".json"))}


def _check_labels(saved: dict, store, run: str, fold) -> None:
    """A run trained on other labels or speakers than the index now joins onto the
    features, or with another label order, is refused with the fix."""
    from pipeline.corpus.store import labels_key

    trained = saved["info"].get("labels_key")  # runs from before issue 28 have none
    if (trained and trained != labels_key(store)) or tuple(saved["label_map"]) != store.label_map:
        raise StaleInputError(f"runs/{run} was trained on other labels or speakers than the "
                              f"index now gives: rerun 'ser train --fold {fold}'")


def _fold_report(per_fold: list[dict], pooled: np.ndarray, saved: dict, store_manifest: dict,
                 *, folds: list, members: int, views: tuple, failures: dict,
                 labels: tuple[str, ...]) -> dict:
    """The cross-validation report, with what ``export`` checks it against
    (``bundle.report_mismatch``): recipe, training code, index, features, members, views."""
    from pipeline.network.recipe import recipe_of

    report = {
        "stage": "evaluate",
        "kind": "cross-validation" if "random" not in folds else "random clip-level split (leaky)",
        "folds": folds, "members": members, "test_views": test_views.to_list(views),
        "fold_runs": per_fold,
        "features": store_manifest["config"], "features_key": store_manifest["key"],
        "index_hash": saved["info"]["index_hash"], "train_code": saved["info"].get("train_code"),
        "recipe": recipe_of(saved["train_config"]),
        "train_config": saved["train_config"], "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": _mean_std([f["metrics"] for f in per_fold], labels),
        "unscored": sorted(failures),
        "pooled": summarise(pooled, labels),
    }
    report["key"] = hash_obj({"runs": [f["run_keys"] for f in per_fold],
                              "views": report["test_views"], "code": code_hash(__name__)})
    return report


def _calibration(artifacts_dir: Path, recipe: dict, scored: list) -> dict:
    """ECE and NLL of the test clips' probabilities as scored, and with the temperature
    fitted for this recipe on validation actors, if there is one
    (``pipeline.inference.calibration``)."""
    from pipeline.inference import calibration

    fitted = calibration.matching(artifacts_dir, recipe)
    return calibration.figures(np.concatenate([p for p, _, _ in scored]),
                               np.concatenate([y for _, y, _ in scored]).astype(int),
                               fitted["temperature"] if fitted else None)


def held_out_probabilities(scorer, store, rows: np.ndarray, *, clips: list,
                           data_dir: Path, jobs: int = 1) -> np.ndarray:
    """Class probabilities ``(len(rows), classes)`` of ``scorer`` (``pipeline.inference.scorer``)
    for store ``rows``: their clips' audio read from the corpus and scored through
    ``predict_files``, in the scorer's views. Raises ``PipelineError`` naming a clip that
    can no longer be read."""
    from pipeline.inference.predict import predict_files

    paths = {clip.clip_id: Path(clip.path) for clip in clips}
    files = [paths[str(clip_id)] for clip_id in store.clip_id[rows]]
    results = predict_files(files, scorer, jobs=jobs)
    failed = next((r for r in results if r.error), None)
    if failed:
        raise PipelineError(f"{failed.path}: {failed.error}; it was readable when 'ser "
                            "extract' ran: restore the file, or rerun 'ser index' and "
                            "'ser extract' without it")
    return np.array([[r.probabilities[label] for label in scorer.labels] for r in results])


def _pick(metrics: dict | None) -> dict | None:
    return {k: metrics[k] for k in SUMMARY_KEYS} if metrics else None


def _mean_std(metrics: list[dict], labels: tuple[str, ...]) -> dict:
    summary = {}
    for key in SUMMARY_KEYS:
        values = np.array([m[key] for m in metrics])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    with warnings.catch_warnings():  # an emotion no test fold has: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        summary["per_class_recall"] = {
            label: {"mean": float(np.nanmean([m["per_class"][label]["recall"]
                                              for m in metrics]))}
            for label in labels}
    return summary


def by_corpus(scored: list[tuple], clips: list, labels: tuple[str, ...]) -> dict:
    """Per corpus of the test clips, pooled over the folds: every figure and the confusion
    matrix (``metrics.cross_corpus``: for a corpus without some of ``labels``, also the
    argmax restricted to its own emotions, calm added to neutral). ``scored``: each
    fold's (probabilities, label indices, corpus names) of its test rows."""
    probabilities = np.concatenate([p for p, _, _ in scored])
    true = np.concatenate([y for _, y, _ in scored]).astype(int)
    corpus = np.concatenate([c for _, _, c in scored])
    figures = {}
    for name in sorted(set(corpus.tolist())):
        mine = corpus == name
        emotions = tuple(e for e in labels if any(c.corpus == name and c.emotion == e
                                                  for c in clips))
        figures[name] = {"clips": int(mine.sum()), "emotions": list(emotions),
                         **cross_corpus(true[mine], probabilities[mine], emotions, labels)}
    return figures


def fold_corpora(scored: tuple, clips: list, labels: tuple[str, ...]) -> dict:
    """One fold's figures per corpus of its test clips: ``clips``, ``ua``, ``wa``,
    ``macro_f1`` (argmax over every label) and ``restricted_ua`` (over the corpus's own
    emotions, ``metrics.cross_corpus``; None when it has all of them)."""
    figures = {}
    for name, f in by_corpus([scored], clips, labels).items():
        figures[name] = {"clips": f["clips"], **{k: f["pooled"][k] for k in SUMMARY_KEYS},
                         "restricted_ua": f["restricted"]["ua"] if "restricted" in f else None}
    return figures


def corpus_summary(per_fold: list[dict]) -> dict:
    """Per corpus, the mean and standard deviation over the folds that test it of each
    figure of ``fold_corpora`` (what compares with a one-corpus cross-validation's mean
    over folds), and ``folds``: how many folds test it."""
    summary = {}
    for name in sorted({c for fold in per_fold for c in fold.get("by_corpus", {})}):
        rows = [fold["by_corpus"][name] for fold in per_fold if name in fold.get("by_corpus", {})]
        summary[name] = {"folds": len(rows), "clips": sum(r["clips"] for r in rows)}
        for key in (*SUMMARY_KEYS, "restricted_ua"):
            values = np.array([r[key] for r in rows if r[key] is not None], dtype=float)
            if len(values):
                summary[name][key] = {"mean": float(values.mean()), "std": float(
                    values.std(ddof=1)) if len(values) > 1 else 0.0}
    return summary


def write_report(report: dict, stem: Path) -> None:
    """``<stem>.png`` when matplotlib is installed (the ``plot`` extra; without it a
    one-line hint), then ``<stem>.json`` (strict JSON), last: the report is its manifest."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("no confusion-matrix PNG: matplotlib is not installed "
                    "(pip install 'ser-pipeline[plot]'); the JSON report is written")
    else:
        plot_confusion(np.array(report["pooled"]["confusion"]), stem.with_suffix(".png"),
                       title=_title(report), labels=report["pooled"]["labels"])
    write_json_atomic(stem.with_suffix(".json"), report)


def _title(report: dict) -> str:
    m = report["pooled"]
    if report["kind"] == "bundle":
        return (f"{Path(report['bundle']).name} on {report['files']} {report.get('corpus', '')} "
                f"clips: UA {m['ua']:.1%}")
    s = report["summary"]
    if "random" in report["folds"]:
        return f"random clip-level split (actors shared, leaky): UA {m['ua']:.1%}"
    ensemble = f", ensembles of {report['members']}" if report.get("members", 1) > 1 else ""
    return (f"{len(report['fold_runs'])}-fold actor-independent CV{ensemble}: "
            f"UA {s['ua']['mean']:.1%} ± {s['ua']['std']:.1%}")


def plot_confusion(matrix: np.ndarray, path: Path, *, title: str, labels: list[str]) -> None:
    """A row-normalised confusion matrix ``(classes, classes)`` with counts, rows and
    columns named by ``labels``, as PNG. Uses
    matplotlib's object API (no pyplot, so no global backend or figure state)."""
    from matplotlib.figure import Figure

    from pipeline.core.atomic import atomic_path

    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(7.5, 6.5))
    axes = figure.subplots()
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            axes.text(j, i, f"{matrix[i, j]}", ha="center", va="center", fontsize=8,
                      color="white" if rates[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of true class")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")


def _calibration_line(figures: dict | None) -> list[str]:
    if not figures:
        return []
    line = f"confidence: expected calibration error {figures['ece']:.3f} as scored"
    if "temperature" in figures:
        line += (f", {figures['ece_calibrated']:.3f} with the temperature fitted on "
                 f"validation actors (T = {figures['temperature']:.3f})")
    return [line]


def _speakers_cell(speakers: list, *, shared: bool) -> str:
    """A fold's test speakers in a few characters: ``05,09,10,12`` (one corpus, its own
    names), ``6 (2 corpora)``, ``18 speakers``, or ``20 (shared)`` for the random split."""
    corpora = {str(s).split(":", 1)[0] for s in speakers}
    if shared:
        return f"{len(speakers)} (shared)"
    if len(speakers) > 6:
        return f"{len(speakers)} speakers"
    if len(corpora) > 1:
        return f"{len(speakers)} ({len(corpora)} corpora)"
    return ",".join(str(s).split(":", 1)[-1] for s in speakers)


def _corpus_lines(by_corpus: dict, summary: dict | None = None) -> list[str]:
    """One line per corpus of a cross-validation report, when it has several: pooled
    over its test clips, and (``summary``) the mean ± std of its folds' UAs."""
    if len(by_corpus) < 2:
        return []
    lines = ["corpus      clips   UA      WA      macro-F1  fold UA mean±std  "
             "(restricted to its emotions: UA)"]
    for name, figures in by_corpus.items():
        m = figures["pooled"]
        restricted = figures.get("restricted")
        folds = (summary or {}).get(name, {}).get("ua")
        lines.append(f"{name:<10} {figures['clips']:6d}  {m['ua']:6.1%}  {m['wa']:6.1%}  "
                     f"{m['macro_f1']:6.1%}    " + (f"{folds['mean']:.1%}±{folds['std']:.1%}"
                                                   if folds else "-").ljust(14)
                     + (f"    {restricted['ua']:.1%} over {len(figures['emotions'])}"
                        if restricted else ""))
    return lines


def format_report(report: dict) -> str:
    """A readable table: per-emotion recall / precision / F1, then the summary figures."""
    pooled = report["pooled"]
    lines = []
    if report["kind"] != "bundle":
        if report.get("members", 1) > 1:
            lines.append(f"each fold's model: an ensemble of {report['members']} members "
                         "(probabilities averaged)")
        if len(report.get("test_views") or [{}]) > 1:
            lines.append(f"each test clip scored in {len(report['test_views'])} test-time views "
                         "(probabilities averaged)")
        lines.append("fold  speakers            UA      WA      macro-F1")
        for run in report["fold_runs"]:
            m = run["metrics"]
            test_actors = run["actors"]["test"]
            actors = _speakers_cell(test_actors, shared=run["fold"] == "random")
            lines.append(f"{run['fold']:>4}  {actors:<18} {m['ua']:6.1%}  {m['wa']:6.1%}  {m['macro_f1']:6.1%}")
        s = report["summary"]
        lines.append("mean  ± std             " + "  ".join(
            f"{s[k]['mean']:.1%}±{s[k]['std']:.1%}" for k in SUMMARY_KEYS))
        if report.get("unscored"):
            lines.append(f"not scored: {len(report['unscored'])} clip(s) in which extract found "
                         "no speech (listed in the report)")
        lines += _calibration_line(report.get("calibration"))
        lines += _corpus_lines(report.get("by_corpus") or {}, report.get("corpus_summary"))
        lines.append("")
    emotions = report.get("emotions") or [label for label, m in pooled["per_class"].items()
                                          if m["support"] or m["precision"]]
    lines.append(f"{'emotion':<10} {'recall':>7} {'precision':>9} {'F1':>6} {'n':>5}")
    for label in emotions:
        m = pooled["per_class"][label]
        lines.append(f"{label:<10} {m['recall']:7.1%} {m['precision']:9.1%} {m['f1']:6.1%} {m['support']:5d}")
    lines.append(f"{'pooled':<10} UA {pooled['ua']:.1%}  WA {pooled['wa']:.1%}  "
                 f"macro-F1 {pooled['macro_f1']:.1%}  ({pooled['n']} clips)")
    if "restricted" in report:
        restricted = report["restricted"]
        recalls = ", ".join(f"{label} {restricted['per_class'][label]['recall']:.1%}"
                            for label in emotions)
        lines.append(f"{len(emotions)}-way (argmax over the corpus's emotions, calm added to "
                     f"neutral): UA {restricted['ua']:.1%}  WA {restricted['wa']:.1%}  ({recalls})")
    for reason, count in (report.get("skipped") or {}).items():
        if count:
            lines.append(f"skipped: {count} file(s), {reason}")
    if report.get("trained_actors"):
        lines.append(f"warning: speakers {', '.join(report['trained_actors'])} "
                     "trained this bundle: these figures are not of unseen voices")
    if "predicted_share" in report:
        shares = sorted(report["predicted_share"].items(), key=lambda item: -item[1])
        lines.append(f"verdicts ({len(shares)}-way): " + ", ".join(
            f"{label} {share:.0%}" for label, share in shares if share > 0))
    return "\n".join(lines)
