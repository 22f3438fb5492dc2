"""Evaluating a bundle on any labelled recordings: a folder in a recipe's layout
(``pipeline.corpus.recipes``: a corpus's own names, or ``DIR/<emotion>/<file>``) or a manifest
(``pipeline.corpus.manifest``), scored through exactly the ``predict`` path.

For a corpus with fewer emotions than the bundle's labels, the report adds the figures
with the argmax restricted to the corpus's emotions (``metrics.cross_corpus``). What is
left out is counted under ``skipped`` and warned about: files the recipe cannot name,
labels the model lacks, files without speech or unreadable, duplicates (``pipeline.
duplicates``, counted once). Speakers that trained the bundle are warned about and
listed (``trained_actors``). Report ``layout.bundle_report_stem`` (named after the
bundle and the source).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipeline.core import layout
from pipeline.core.errors import PipelineError
from pipeline.core.hashing import code_hash, hash_obj
from pipeline.core.metrics import cross_corpus
from pipeline.core.progress import log
from pipeline.signal import views as test_views


def labelled_rows(*, source: Path | None, manifest_path: Path | None,
                  corpus: str = "auto", speaker_pattern: str | None = None
                  ) -> tuple[list, str, dict[str, int]]:
    """``(rows, corpus name, {reason left out: count})`` from a folder through a recipe
    (``corpus``, or ``auto``: the one that names the most files) or from a manifest file.
    Raises ``CorpusError`` (one line, the fix) when neither labels any recording."""
    from pipeline.corpus import manifest, recipes

    if manifest_path is not None:
        rows = manifest.read(Path(manifest_path))
        manifest.check(rows, source=str(manifest_path), need_speakers=False)
        return rows, "+".join(sorted({r.corpus for r in rows})), {}
    if corpus == "auto" and Path(source).is_file():
        corpus = "csv"  # a user's CSV of path,emotion[,speaker]
    recipe = recipes.detect(Path(source)) if corpus == "auto" else recipes.RECIPES.get(corpus)
    options = {"speaker_pattern": speaker_pattern} if speaker_pattern else {}
    found = recipes.find_rows(recipe.name if recipe else corpus, Path(source), **options)
    left = {f"{reason}": len(paths) for reason, paths in found.skipped.items()}
    left.update({f"label {label}: the model has no such emotion": n
                 for label, n in found.left_out.items()})
    for reason, count in left.items():
        log.warning("%d file(s) left out: %s", count, reason)
    return found.rows, found.rows[0].corpus if found.rows else corpus, left


def evaluate_bundle(*, bundle_path: Path, source: Path | None, artifacts_dir: Path,
                    jobs: int = 1, tta: bool = True, corpus: str = "auto",
                    manifest_path: Path | None = None,
                    speaker_pattern: str | None = None, threads: int | None = None) -> dict:
    """A bundle on the labelled recordings of ``source`` or ``manifest_path``
    (``labelled_rows``; ``speaker_pattern`` names a folders corpus's speakers, so that
    those the bundle trained on are warned about), each segment in the bundle's
    test-time views (``tta=False``: the clean window alone), an ONNX model on ``threads``
    threads (``bundle.load``); see the module docstring.
    The returned dict also holds the report's path as ``report_path``. Raises
    ``PipelineError`` before scoring when the report cannot be written
    (``layout.check_output_folder``) or nothing is labelled."""
    from pipeline.corpus import duplicates
    from pipeline.evaluation.evaluate import write_report
    from pipeline.inference import bundle as bundles
    from pipeline.inference.predict import predict_files

    loaded = bundles.load(bundle_path, threads=threads)
    where = Path(manifest_path if manifest_path is not None else source)
    rows, name, skipped = labelled_rows(source=source, manifest_path=manifest_path,
                                        corpus=corpus, speaker_pattern=speaker_pattern)
    stem = layout.bundle_report_stem(artifacts_dir, bundle_path, where)
    layout.check_output_folder(stem.parent, option="--artifacts-dir", given=artifacts_dir)
    rows, same_name = duplicates.by_clip_id(rows)
    emotion_of = {row.path: row.emotion for row in rows}
    results, same_audio = duplicates.by_audio(
        predict_files([Path(r.path) for r in rows], loaded, jobs=jobs, tta=tta))
    scored = [r for r in results if not r.error]
    repeated = {**same_name, **same_audio}
    skipped = _skipped(skipped, results, repeated)
    if not scored:
        raise PipelineError(f"none of the {len(rows)} clips of {where} could be scored; "
                            f"first: {results[0].path}: {results[0].error}")
    labels = tuple(loaded.labels)
    _check_label_set({emotion_of[r.path] for r in scored}, labels, loaded.path)
    true = np.array([labels.index(emotion_of[r.path]) for r in scored])
    probabilities = np.array([[r.probabilities[label] for label in labels] for r in scored])
    report = {"kind": "bundle", "bundle": str(bundle_path), "model": loaded.identity,
              "source": str(where.resolve()), "corpus": name, "files": len(results),
              "failed": len(results) - len(scored), "duplicates": repeated,
              "skipped": skipped, "provenance": loaded.metadata["provenance"],
              "test_views": test_views.to_list(loaded.views if tta else test_views.CLEAN),
              "features": loaded.metadata["feature_config"],
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              **cross_corpus(true, probabilities, tuple({e for e in emotion_of.values()}),
                             labels)}
    speaker_of = {row.path: row.speaker_key for row in rows if row.speaker}
    report["actors"] = sorted({speaker_of[r.path] for r in scored if r.path in speaker_of})
    report["trained_actors"] = _trained_actors(report["actors"], loaded, where)
    report["stage"] = "evaluate"
    report["key"] = hash_obj({"bundle": loaded.metadata["provenance"].get("key"),
                              "source": report["source"], "tta": tta, "corpus": name,
                              "code": code_hash(__name__)})
    write_report(report, stem)
    return {**report, "report_path": str(stem.with_suffix(".json"))}


def _check_label_set(emotions: set[str], labels: tuple[str, ...], path: Path) -> None:
    missing = sorted(emotions - set(labels))
    if missing:
        raise PipelineError(f"{path} has no output for {', '.join(missing)} (its labels: "
                            f"{', '.join(labels)}): leave those recordings out, or evaluate a "
                            "bundle trained with them")


def _skipped(left: dict[str, int], results: list, repeated: dict) -> dict:
    """What a bundle evaluation leaves out, counted by reason, each reason warned once."""
    skipped = {**left, "not scored (no speech, unreadable)": sum(1 for r in results if r.error),
               "duplicates (counted once)": len(repeated)}
    for r in results:
        if r.error:
            log.warning("not scored: %s: %s", r.path, r.error)
    if repeated:
        log.warning("%d duplicate file(s) counted once (same clip in another format or folder, "
                    "or identical audio); listed under 'duplicates' in the report", len(repeated))
    return skipped


def trained_speakers(provenance: dict) -> set[str]:
    """The speakers (``<corpus>:<speaker>``) a bundle trained on, from its provenance;
    bundles from before several corpora list RAVDESS actor numbers."""
    names = (provenance.get("actors") or {}).get("train", [])
    return {f"ravdess:{n:02d}" if isinstance(n, int) else str(n) for n in names}


def _trained_actors(speakers: list[str], scorer, source: Path) -> list[str]:
    """The ``speakers`` of a source that trained the bundle, warned about: their
    figures say nothing about unseen voices."""
    provenance = scorer.metadata.get("provenance", {})
    overlap = sorted(set(speakers) & trained_speakers(provenance))
    if overlap:
        tested = (provenance.get("actors") or {}).get("test", [])
        log.warning("%d of the %d speakers in %s trained this bundle (%s): their figures "
                    "measure voices it learned from, not unseen ones; evaluate on other "
                    "speakers (the bundle's test speakers: %s)", len(overlap), len(speakers),
                    source, ", ".join(overlap),
                    ", ".join(map(str, tested)) or "none: it trained on every speaker")
    return overlap
