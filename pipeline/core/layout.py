"""Where every file of the data and artifact trees lives. No other module builds these
paths: a stage asks here, so renaming or moving a file is a change to this module alone.

::

    <data>/                         --data-dir (default data/)
      download.json                 download: where the corpus is
      manifest.jsonl                index: the indexed rows (pipeline.corpus.manifest)
      index.csv, index.json         index: one row per clip with its fold; its record
    <artifacts>/                    --artifacts-dir (default artifacts/)
      features/                     extract
        shard-NNNNN.h5              rows of clip copies (pipeline.corpus.store)
        manifest.json               written last
      runs/<run>/                   train: fold-K, final, random; member m > 0 in <run>.m<m>
        checkpoint.pt, metrics.jsonl, model.pt
        result.json                 written last
      reports/<name>.json, .png     evaluate: cv.json (cross-validation), fold-K.json,
                                    bundle-<bundle>-<source>-<hash>.json
      bundles/<name>.safetensors    export
      experiments/<name>/           scripts/experiment.py: an artifacts tree of its own
      variants/<name>/              scripts/extract_variant.py: an artifacts tree of its own
"""

from __future__ import annotations

from pathlib import Path

BUNDLE_SUFFIX = ".safetensors"


# --- data/ ---------------------------------------------------------------------------

def download_manifest(data_dir: Path) -> Path:
    return Path(data_dir) / "download.json"


def index_csv(data_dir: Path) -> Path:
    return Path(data_dir) / "index.csv"


def index_manifest(data_dir: Path) -> Path:
    return Path(data_dir) / "index.json"


def corpus_manifest(data_dir: Path) -> Path:
    """The indexed rows in the manifest format (``pipeline.corpus.manifest``)."""
    return Path(data_dir) / "manifest.jsonl"


# --- artifacts/features --------------------------------------------------------------

def features_dir(artifacts_dir: Path) -> Path:
    return Path(artifacts_dir) / "features"


def features_manifest(artifacts_dir: Path) -> Path:
    return features_dir(artifacts_dir) / "manifest.json"


SHARD_PATTERN = "shard-*.h5"  # every shard file; a writer's temporary is .<name>.<pid>.tmp


def shard_file(artifacts_dir: Path, number: int) -> Path:
    return features_dir(artifacts_dir) / f"shard-{number:05d}.h5"


# --- artifacts/runs ------------------------------------------------------------------

def run_name(fold: int | str | None) -> str:
    """``fold-K``, ``final`` (None) or ``random`` (the leaky clip-level contrast)."""
    if fold is None:
        return "final"
    return "random" if fold == "random" else f"fold-{fold}"


def member_run(run: str, member: int = 0) -> str:
    """The run folder of ensemble member ``member`` of ``run``: ``fold-K``, then
    ``fold-K.m1``, ``fold-K.m2``, ..."""
    return run if member == 0 else f"{run}.m{member}"


def member_runs(run: str, members: int) -> list[str]:
    """The run folders of the first ``members`` members of ``run``."""
    return [member_run(run, member) for member in range(members)]


def run_dir(artifacts_dir: Path, run: str) -> Path:
    """The folder of one trained run (a member's own name, e.g. ``fold-0.m1``)."""
    return Path(artifacts_dir) / "runs" / run


def model_file(artifacts_dir: Path, run: str) -> Path:
    return run_dir(artifacts_dir, run) / "model.pt"


def checkpoint_file(artifacts_dir: Path, run: str) -> Path:
    return run_dir(artifacts_dir, run) / "checkpoint.pt"


def metrics_file(artifacts_dir: Path, run: str) -> Path:
    return run_dir(artifacts_dir, run) / "metrics.jsonl"


def run_manifest(artifacts_dir: Path, run: str) -> Path:
    return run_dir(artifacts_dir, run) / "result.json"


# --- artifacts/reports and bundles ---------------------------------------------------

def reports_dir(artifacts_dir: Path) -> Path:
    return Path(artifacts_dir) / "reports"


def report_stem(artifacts_dir: Path, name: str) -> Path:
    """``reports/<name>``: the report is ``<stem>.json``, its plot ``<stem>.png``."""
    return reports_dir(artifacts_dir) / name


def bundle_report_stem(artifacts_dir: Path, bundle: Path, source: Path) -> Path:
    """``reports/bundle-<bundle>-<source folder or file>-<6 hex of the source's absolute
    path>``: one report per bundle and source, so evaluating another folder or manifest
    keeps the first."""
    import hashlib

    where = Path(source).resolve()
    digest = hashlib.sha256(str(where).encode("utf-8", "surrogateescape")).hexdigest()[:6]
    # dots become "_": the stem's suffix is replaced by .json / .png (my.jsonl -> my_jsonl)
    name = where.name.replace(".", "_")
    return report_stem(artifacts_dir, f"bundle-{Path(bundle).stem}-{name}-{digest}")


def calibration_file(artifacts_dir: Path) -> Path:
    """The temperature fitted on validation actors (``scripts/calibrate.py``)."""
    return reports_dir(artifacts_dir) / "calibration.json"


def cv_report(artifacts_dir: Path) -> Path:
    """The cross-validation report that ``export`` stamps into a bundle."""
    return report_stem(artifacts_dir, "cv").with_suffix(".json")


def bundles_dir(artifacts_dir: Path) -> Path:
    return Path(artifacts_dir) / "bundles"


def bundle_file(artifacts_dir: Path, run: str, suffix: str = BUNDLE_SUFFIX) -> Path:
    """Where ``export`` writes the bundle of ``run`` (``suffix`` ``.onnx``: its ONNX
    network) unless told otherwise."""
    return bundles_dir(artifacts_dir) / f"ser-{run}{suffix}"


def converted_file(artifacts_dir: Path, bundle: Path, suffix: str) -> Path:
    """Where ``export --bundle B --format onnx`` writes B's network unless told otherwise."""
    return bundles_dir(artifacts_dir) / f"{Path(bundle).stem}{suffix}"


# --- recipe experiments (scripts/): each an artifacts tree of its own ------------------

def experiment_dir(artifacts_dir: Path, name: str) -> Path:
    """The artifacts tree of recipe experiment ``name`` (its features: a link)."""
    return Path(artifacts_dir) / "experiments" / name


def variant_dir(artifacts_dir: Path, name: str) -> Path:
    """The artifacts tree of feature variant ``name`` (features extracted with overrides)."""
    return Path(artifacts_dir) / "variants" / name


# --- checks before work ----------------------------------------------------------------

def check_output_folder(folder: Path, *, option: str, given: Path | None = None) -> None:
    """Make sure files can be written in ``folder`` (created if missing) before a stage
    starts, so that no work is lost at the end. ``given``: the folder the user named with
    ``option`` when ``folder`` lies inside it (default: ``folder`` itself).

    Raises ``PipelineError``, one line naming the folder and the fix, when ``folder`` or a
    folder above it is a symbolic link to nothing, a file, or cannot be written in."""
    import os
    import tempfile

    from pipeline.core.errors import PipelineError

    folder = Path(folder)
    given = Path(given) if given is not None else folder
    for step in (folder, *folder.parents):  # up to the first that exists
        where = f"{option} {given}" + (f": {step}" if step != given else "")
        if step.is_symlink() and not step.exists():
            raise PipelineError(f"{where} is a symbolic link to {os.readlink(step)}, which does "
                                f"not exist: create the target or point {option} elsewhere")
        if step.exists():
            if not step.is_dir():
                raise PipelineError(f"{where} is a file, not a folder: move it away or point "
                                    f"{option} elsewhere")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PipelineError(f"{option} {given}: cannot write in {folder} "
                            f"({exc.strerror or exc}): make it writable or point {option} "
                            "elsewhere") from None
