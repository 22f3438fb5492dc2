"""The ``export`` stage and bundle loading: one self-contained model file.

A bundle is a safetensors file (``.safetensors``): tensors and a header of strings, no
pickle at all, so loading it can never run code. It holds

- the weights as tensors, normalisation statistics included (model buffers); for an
  ensemble, every member's, as ``members.<i>.<name>``;
- in the header's string metadata: ``format`` / ``format_version`` (what this file is:
  anything else is refused with a message of our own), ``metadata`` (JSON: model config,
  number of ensemble members (their probabilities are averaged), the test-time views
  ``predict`` scores each window in (``pipeline.signal.views``; none recorded: the clean window
  alone), the full feature config (front end included) and its code version, label
  order, the speech detector's version (another installed version is warned about at
  load), provenance (index hash, folds and actors trained on, seed, validation and test
  metrics, code version and hash, date, and the export's ``key``: the header is the
  export stage's manifest), and ``corpora``: each corpus's language, licence, role and
  figures (``pipeline.corpus.card``)) and ``checksum``: sha256 over the metadata and every
  tensor, which catches a file damaged in transit or edited by hand. It is an integrity
  check, not a signature: anyone can recompute it, so it proves nothing about who wrote
  the file.

Test figures are stamped from ``reports/cv.json`` only when that report belongs to the
exported run (``report_mismatch``); a stale one is refused.

Format 1 (versions up to 0.1) was a ``torch.save`` file (``.pt``); such a file is
recognised and refused with the version that wrote it and how to re-export it.

Loading needs only this package, torch, safetensors and numpy: not ``data/`` nor
``artifacts/``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from pipeline import __version__
from pipeline.core import layout
from pipeline.core.atomic import atomic_path, read_json, strict_json
from pipeline.core.errors import BundleError
from pipeline.core.extras import first_missing, install_hint
from pipeline.core.hashing import code_hash, hash_obj
from pipeline.core.progress import log
from pipeline.corpus.card import corpora_card
from pipeline.inference.bundle_header import header_strings
from pipeline.inference.calibration import bundle_fields
from pipeline.inference.scorer import Scorer
from pipeline.signal import views as test_views
from pipeline.signal.features import FEATURES_VERSION, FeatureConfig
from pipeline.signal.vad import detector_version

FORMAT = "ser-pipeline-bundle"
FORMAT_VERSION = 2  # 1: a torch.save file, versions up to 0.1
SUFFIX = layout.BUNDLE_SUFFIX
REQUIRED_METADATA = ("model_config", "feature_config", "features_version", "label_map",
                     "provenance")


def _checksum(metadata_text: str, state_dict: dict) -> str:
    digest = hashlib.sha256(metadata_text.encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].contiguous().cpu()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def export(*, artifacts_dir: Path, run: str = "final", members: int = 1,
           views: tuple = test_views.TEST_VIEWS, out: Path | None = None,
           test_figures: bool = True, format: str = "safetensors") -> Path:
    """Bundle trained run ``run`` (``runs/<run>/model.pt``, or the ensemble of its first
    ``members`` members) with its provenance and the test-time ``views`` ``predict``
    will use; returns the path. The test figures come from ``reports/cv.json`` (or, for
    a fold evaluated alone, ``reports/fold-K.json``) only when it belongs to this run
    (``report_mismatch``); a report that does not is refused
    with ``BundleError`` naming what differs and the fix. ``test_figures=False``
    exports without any (the bundle then states none). ``format="onnx"`` writes the
    network as ONNX with the same metadata (``pipeline.inference.onnx_bundle``)."""
    from pipeline.inference.scorer import from_run

    scorer = from_run(artifacts_dir, run, members, views)
    cv_report = _test_report(artifacts_dir, run, scorer, members) if test_figures else {}
    metadata = _metadata(scorer, run, members, cv_report or {})
    metadata.update(bundle_fields(artifacts_dir, scorer.saved[0]["train_config"]))
    if format == "onnx":
        from pipeline.inference.onnx_bundle import SUFFIX as ONNX, export_onnx

        out = Path(out) if out else layout.bundle_file(artifacts_dir, run, ONNX)
        return export_onnx(scorer, out, metadata)
    out = Path(out) if out else layout.bundle_file(artifacts_dir, run)
    if _same_export(out, metadata):  # kept: its identity (checksum) stays what outputs name
        log.info("%s is current (the same runs, figures and temperature)", out)
        return out
    write_bundle(out, scorer.model.state_dict(), metadata)
    return out


def _same_export(path: Path, metadata: dict) -> bool:
    """Whether the bundle at ``path`` holds exactly ``metadata`` but its export time."""
    try:
        old = json.loads(header_strings(path)["metadata"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    def timeless(m: dict) -> str:
        return strict_json({**m, "provenance": {k: v for k, v in m.get("provenance", {}).items()
                                                if k != "exported_at"}}, sort_keys=True)
    return timeless(old) == timeless(metadata)


def _test_report(artifacts_dir: Path, run: str, scorer: Scorer, members: int) -> dict:
    """The report whose test figures go into the bundle: for a fold run
    ``reports/fold-K.json`` (the fold evaluated alone) when it belongs, else
    ``reports/cv.json``; {} with a warning when there is none. Raises ``BundleError``
    naming what differs when the report there does not belong (``report_mismatch``)."""
    fold = run.startswith("fold-")
    candidates = ([layout.report_stem(artifacts_dir, run).with_suffix(".json")] if fold
                  else []) + [layout.cv_report(artifacts_dir)]
    found = [(path, report) for path in candidates if (report := read_json(path))]
    for path, report in found:
        if not report_mismatch(report, scorer, run, artifacts_dir):
            return report
    evaluate = (f"'ser evaluate --fold {run.removeprefix('fold-')} --members {members}'" if fold
                else f"'ser evaluate --fold all --members {members}'")
    if not found:
        log.warning("no %s: the bundle carries no test figures; run %s before exporting to "
                    "include them", " or ".join(map(str, candidates)), evaluate)
        return {}
    path, report = found[-1]
    raise BundleError(f"{path} does not belong to runs/{run} "
                      f"({report_mismatch(report, scorer, run, artifacts_dir)}): its figures "
                      f"would be stale or about another model. Rerun {evaluate} with the same "
                      "--tta (after training with this recipe and code), or export with "
                      "--no-test-figures")


def convert(bundle: Path, out: Path | None = None, *,
            artifacts_dir: Path = Path("artifacts")) -> Path:
    """Write the network of the bundle at ``bundle`` as ONNX to ``out`` (default:
    ``layout.converted_file``), with the bundle's metadata (provenance and figures
    unchanged): no retraining."""
    from pipeline.inference.onnx_bundle import SUFFIX as ONNX, export_onnx

    scorer = load(bundle)
    out = Path(out) if out else layout.converted_file(artifacts_dir, bundle, ONNX)
    return export_onnx(scorer, out, scorer.metadata)


def report_mismatch(report: dict, scorer: Scorer, run: str, artifacts_dir: Path) -> str:
    """Why a cross-validation ``report`` does not belong to ``run``, or ``""`` when it
    does. A fold run's report entry belongs when it was measured on exactly these member
    runs (their cache keys) in these views; the final model's report when its folds were
    trained with the same recipe (every setting but the seed) and training code, on the
    same features (whose key holds the index's clips and the extract code), as ensembles
    of as many members, and scored in the same views. The folds themselves may differ:
    the final model trains on every actor whatever the folds."""
    from pipeline.network.recipe import recipe_of

    views = test_views.to_list(scorer.views)
    if report.get("test_views") != views:
        return "measured with other test-time views"
    if run != "final":
        entry = next((f for f in report.get("fold_runs", []) if f.get("run") == run), None)
        if entry is None:
            return f"it has no figures for {run}"
        keys = [(read_json(layout.run_manifest(artifacts_dir, r)) or {}).get("key")
                for r in layout.member_runs(run, len(scorer.saved))]
        return "" if entry.get("run_keys") == keys else "measured on other trainings of it"
    info, train_config = scorer.saved[0]["info"], scorer.saved[0]["train_config"]
    checks = {"recipe": recipe_of(train_config), "train_code": info.get("train_code"),
              "features_key": info.get("features_key"), "members": len(scorer.saved)}
    differs = [name for name, value in checks.items() if report.get(name) != value]
    return f"differs in {', '.join(differs)}" if differs else ""


def _metadata(scorer: Scorer, run: str, members: int, cv_report: dict) -> dict:
    saved = scorer.saved[0]
    info = saved["info"]
    provenance = {
        "run": run, "member_runs": layout.member_runs(run, members),
        "index_hash": info["index_hash"], "features_key": info["features_key"],
        "fold": info["fold"], "actors": info["actors"], "seed": info["seed"],
        "best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"],
        "validation": _brief(info.get("val")),
        "test": _test_metrics(cv_report, run),
        "test_views": cv_report.get("test_views"),  # what "test" was measured with
        "train_config": saved["train_config"],
        "code_version": __version__, "code": code_hash(__name__),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    provenance["key"] = hash_obj({k: v for k, v in provenance.items() if k != "exported_at"})
    return {
        "model_config": saved["model_config"], "members": members,
        "test_views": test_views.to_list(scorer.views),
        "feature_config": saved["feature_config"], "features_version": FEATURES_VERSION,
        "speech_detector": detector_version(),
        "label_map": saved["label_map"], "provenance": provenance,
        "corpora": corpora_card(info, cv_report),  # the model card's data, licences included
    }


def _brief(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {k: metrics[k] for k in ("ua", "wa", "macro_f1", "n") if k in metrics} | {
        "per_class_recall": {c: v["recall"] for c, v in metrics.get("per_class", {}).items()}}


def _test_metrics(cv_report: dict, run: str) -> dict | None:
    """What a run is expected to score on new actors: the CV summary for the final model
    (it has no test fold of its own), a fold model's own test-fold metrics otherwise."""
    if run == "final":
        return cv_report.get("summary")
    return _brief(next((f["metrics"] for f in cv_report.get("fold_runs", [])
                        if f.get("run") == run), None))


def write_bundle(path: Path, state_dict: dict, metadata: dict) -> None:
    """Write a bundle atomically: the tensors of ``state_dict`` and ``metadata`` (JSON)."""
    from safetensors.torch import save_file

    text = strict_json(metadata, sort_keys=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "metadata": text,
              "checksum": _checksum(text, tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def _check_labels(label_map, n_classes: int) -> None:
    """A bundle's own label set: one distinct name per output of its network."""
    if (not isinstance(label_map, list) or len(label_map) != n_classes
            or len(set(label_map)) != n_classes
            or not all(isinstance(name, str) and name for name in label_map)):
        raise ValueError(f"its label set {label_map!r} is not {n_classes} distinct names, one "
                         "per output of its network")


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message, whole (a library's wording, quoted)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _read(path: Path) -> tuple[dict, dict]:
    """``(header strings, tensors)`` of a safetensors file; ``BundleError`` otherwise."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        _refuse_format_1(path)
        raise BundleError(f"{path} is not a model bundle of this tool, or is damaged: pass a "
                          f"{SUFFIX} file written by 'ser export', or 'shipped' or 'latest' "
                          f"(reading it said: {_first_line(exc)})") from exc
    return header, tensors


def _refuse_format_1(path: Path) -> None:
    """Raise a ``BundleError`` naming the version and the way forward if ``path`` is a
    format-1 bundle (a torch file; read with ``weights_only``, so no code can run)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any torch file that is not an old bundle: the caller's message
        return
    if isinstance(saved, dict) and "state_dict" in saved and "train_config" in saved:
        import re

        run, artifacts = re.sub(r"\.m\d+$", "", path.parent.name), path.resolve().parents[2]
        members = 1
        while layout.model_file(artifacts, layout.member_run(run, members)).exists():
            members += 1
        raise BundleError(f"{path} is a trained run's model file, not a bundle: export the "
                          f"run with 'ser --artifacts-dir {artifacts} export --run {run} "
                          f"--members {members}' and pass the .safetensors file it writes")
    if not (isinstance(saved, dict) and saved.get("format") == FORMAT):
        return
    try:
        provenance = json.loads(saved.get("metadata", "{}")).get("provenance") or {}
    except (TypeError, ValueError, AttributeError):
        provenance = {}
    version, run = provenance.get("code_version", "0.1 or older"), provenance.get("run", "final")
    raise BundleError(f"{path} is a format-{saved.get('format_version')} bundle (a torch file) "
                      f"written by version {version}; this version ({__version__}) reads format "
                      f"{FORMAT_VERSION} ({SUFFIX}): re-export it from its trained run with "
                      f"'ser export --run {run}', or install version {version} to use it")


def load(path: Path, *, threads: int | None = None) -> Scorer:
    """Load and verify a bundle (or this tool's ``.onnx`` export) into a ``Scorer``.
    ``threads``: an ONNX model's intra-op threads (``None``: onnxruntime's default, one
    per core); a torch model uses torch's setting. Raises ``BundleError`` naming the file
    for a missing, corrupt, foreign, old (format 1) or incompatible file, with the fix."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle at {path}: pass --bundle with an exported file "
                          "('ser export' writes one)")
    if path.suffix.lower() == ".onnx":
        from pipeline.inference.onnx_bundle import load_onnx

        return load_onnx(path, threads=threads)
    _check_torch(path)
    text, tensors, checksum = _verified(path)
    scorer = _build(path, text, tensors, checksum)
    installed = detector_version()
    if scorer.metadata.get("speech_detector", installed) != installed:
        log.warning("%s was made with %s, this installation has %s: speech boundaries, and so "
                    "scores, can differ slightly; install the bundle's version to reproduce them",
                    path, scorer.metadata["speech_detector"], installed)
    return scorer


def _check_torch(path: Path) -> None:
    """A safetensors bundle is scored with torch: without it, say how to get it or how to
    score the model without it (its ONNX form)."""
    if first_missing("torch", "safetensors") is not None:
        raise BundleError(f"{path} is scored with torch, which this install leaves out: "
                          f"{install_hint('train')}, or convert it once where torch is "
                          f"installed ('ser export --format onnx --bundle {path}') and "
                          "score the .onnx file")


def _verified(path: Path) -> tuple[str, dict, str]:
    """``(metadata text, tensors, checksum)`` of a bundle whose format, version and
    checksum hold."""
    import torch

    header, tensors = _read(path)
    if header.get("format") != FORMAT:
        raise BundleError(f"{path} is a safetensors file but not a model bundle of this tool: "
                          "export one with 'ser export'")
    if header.get("format_version") != str(FORMAT_VERSION):
        raise BundleError(f"{path} has bundle format {header.get('format_version')}, this "
                          f"version ({__version__}) reads format {FORMAT_VERSION}: re-export "
                          "it with this version or install the version that wrote it")
    text = header.get("metadata")
    if not (isinstance(text, str) and tensors and all(
            isinstance(v, torch.Tensor) for v in tensors.values())):
        raise BundleError(f"{path} is corrupt or incompatible: it lacks the metadata or the "
                          "weights of a bundle; export it again")
    try:
        checksum = _checksum(text, tensors)
    except (TypeError, RuntimeError) as exc:  # a tensor type numpy cannot hold (bf16, fp8)
        raise BundleError(f"{path} is corrupt or incompatible: {_first_line(exc)}; export it "
                          "again") from exc
    if checksum != header.get("checksum"):
        raise BundleError(f"{path} is corrupt or incompatible: its weights or metadata do not "
                          "match the checksum written with them (damaged in transit, or "
                          "edited); export it again")
    return text, tensors, checksum


def _build(path: Path, text: str, tensors: dict, checksum: str) -> Scorer:
    """The scorer of an intact bundle; ``BundleError`` when this version cannot take it."""
    from pipeline.network.model import ModelConfig, build

    metadata = None
    try:
        metadata = json.loads(text)
        missing = [k for k in REQUIRED_METADATA if k not in metadata]
        if missing:
            raise KeyError(f"metadata lacks {', '.join(missing)}")
        if metadata.get("features_version") != FEATURES_VERSION:
            raise BundleError(f"{path} was trained on features version "
                              f"{metadata.get('features_version')}; this code computes version "
                              f"{FEATURES_VERSION}: retrain and export with this version")
        model_config = ModelConfig.from_dict(metadata["model_config"])
        _check_labels(metadata["label_map"], model_config.n_classes)
        model = build(model_config, metadata.get("members", 1))
        model.load_state_dict(tensors)
        feature_config = FeatureConfig.from_dict(metadata["feature_config"])
        views = test_views.from_list(metadata.get("test_views"))
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        # an intact file (the checksum matched) that this version's model or features
        # cannot take: written by another version under the same format number
        provenance = metadata.get("provenance") if isinstance(metadata, dict) else None
        written_by = (provenance or {}).get("code_version", "?")
        raise BundleError(f"{path} (written by version {written_by}) does not fit this version "
                          f"({__version__}): {_first_line(exc)}; re-export it with "
                          "this version or install the version that wrote it") from exc
    return Scorer(model.eval(), feature_config, tuple(metadata["label_map"]), views, metadata,
                  path, fingerprint=checksum,
                  temperature=float(metadata.get("temperature", 1.0)))
