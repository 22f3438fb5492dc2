#!/usr/bin/env python3
"""Command line of the speech emotion recognition pipeline: one command per stage.

Each command parses options, builds the stage's config and calls one library function in
``pipeline/``. Heavy libraries (torch, librosa) are imported inside the commands.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import click

from pipeline import options
from pipeline.errors import PipelineError


@dataclasses.dataclass
class Context:
    data_dir: Path
    artifacts_dir: Path


def model_threads(jobs: int) -> None:
    """Give the model the cores the ``jobs`` feature workers leave, at least one: two model
    threads beside two workers on two cores ran a batch 1.3x slower. Set here, in the
    CLI, so the library never changes a caller's torch threads."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) - jobs))


def friendly_errors(command):
    """Turn the project's exceptions into one clean line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PipelineError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def stage(command):
    """A stage command: gets the ``Context`` and reports the project's errors in one line."""
    return click.pass_obj(friendly_errors(command))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default="data",
              envvar="SER_DATA_DIR", help="Corpus and index folder [env SER_DATA_DIR].")
@click.option("--artifacts-dir", type=click.Path(file_okay=False, path_type=Path),
              default="artifacts", envvar="SER_ARTIFACTS_DIR",
              help="Features, runs, reports and bundles [env SER_ARTIFACTS_DIR].")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
              case_sensitive=False), default="INFO", envvar="SER_LOG_LEVEL",
              help="Logging detail [env SER_LOG_LEVEL].")
@click.option("-q", "--quiet", is_flag=True, envvar="SER_QUIET",
              help="Only warnings and results; no progress bars [env SER_QUIET].")
@click.pass_context
def cli(ctx, data_dir, artifacts_dir, log_level, quiet):
    """Speech emotion recognition on RAVDESS: download -> index -> extract -> train ->
    evaluate -> export -> predict. Each stage caches its output and can be rerun alone."""
    from pipeline import progress

    # a file name that is not UTF-8 is printed escaped, never a UnicodeEncodeError
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    progress.configure(level=log_level, quiet=quiet)
    ctx.obj = Context(data_dir, artifacts_dir)


members_option = click.option(
    "--members", type=options.MEMBERS, default=None,
    help="Ensemble members per run, trained from seeds SEED, SEED+1, ... with their "
         "probabilities averaged (default: the recipe's, TrainConfig.members).")


def seed_option(envvar: str, what: str):
    """``--seed`` of one stage: each stage owns its seed (docs/architecture.md, Seeds)."""
    return click.option("--seed", type=options.SEED, default=0, envvar=envvar,
                        help=f"{what} [env {envvar}]")


scheduler_option = click.option(
    "--scheduler", envvar="SER_DASK_SCHEDULER", default=None, metavar="ADDRESS",
    help="Run the per-item work on the Dask cluster at ADDRESS (tcp://host:8786) instead of "
         "--jobs local workers; needs 'pip install ser-pipeline[dask]' and a filesystem the "
         "workers share [env SER_DASK_SCHEDULER].")
tta_option = click.option(
    "--tta/--no-tta", default=True,
    help="Score each window as it is and in mild pitch / shift / speed variants, "
         "probabilities averaged (pipeline.views); --no-tta scores the window alone.")


@cli.command()
@click.option("--source", envvar="SER_SOURCE",
              help="A local zip, a folder of Actor_XX/ clips, or a URL (default: the official "
                   "Zenodo archive) [env SER_SOURCE].")
@click.option("--force", is_flag=True, help="Fetch / unpack again even if done.")
@stage
def download(obj: Context, source, force):
    """Fetch the RAVDESS speech corpus (checksum, resume), or use a local copy."""
    from pipeline.download import download as run

    result = run(data_dir=obj.data_dir, source=source, force=force)
    click.echo(f"corpus {'already ' if result.skipped else ''}at {result.root}")


@cli.command()
@click.option("--folds", type=options.FOLDS, default=5,
              help="Number of actor-disjoint cross-validation folds.")
@seed_option("SER_SPLIT_SEED", "Split seed: which actors go to which fold, and the random "
                               "clip-level split. Changing it re-extracts nothing.")
@click.option("--force", is_flag=True, help="Re-index even if the corpus is unchanged.")
@stage
def index(obj: Context, folds, seed, force):
    """Index every clip from its file name and assign actor-disjoint folds."""
    from pipeline.index import IndexConfig, build_index, summary

    result = build_index(data_dir=obj.data_dir, config=IndexConfig(folds=folds, seed=seed),
                         force=force)
    click.echo(summary(result))


@cli.command()
@click.option("--jobs", "-j", type=options.JOBS, default=lambda: os.cpu_count() or 1,
              show_default="all cores", help="Worker processes.")
@seed_option("SER_AUGMENT_SEED", "Augmentation seed: each copy's draws come from (seed, "
                                 "clip, copy).")
@click.option("--copies", type=options.COPIES, default=None,
              help="Augmented copies per clip (default from the feature config).")
@click.option("--window-seconds", type=options.WINDOW_SECONDS, default=None,
              help="Length of the analysis window.")
@click.option("--n-mels", type=options.N_MELS, default=None, help="Mel bands (= MFCCs).")
@click.option("--max-failure-share", type=options.SHARE, default=0.05,
              help="Fail the stage if more than this share of clips cannot be read.")
@click.option("--force", is_flag=True, help="Recompute every shard.")
@scheduler_option
@stage
def extract(obj: Context, jobs, copies, window_seconds, n_mels, max_failure_share, seed, force,
            scheduler):
    """Compute clean + augmented MFCC/log-mel tensors into HDF5 shards (cached)."""
    from pipeline.extract import ExtractConfig, extract as run

    config = ExtractConfig(seed=seed, max_failure_share=max_failure_share)
    if copies is not None:
        config = dataclasses.replace(config, augment=dataclasses.replace(config.augment, copies=copies))
    feature_changes = {k: v for k, v in (("window_seconds", window_seconds), ("n_mels", n_mels))
                       if v is not None}
    if window_seconds is not None:  # segments of up to 1.5 windows, as with the default 3 s
        front_end = config.features.front_end
        feature_changes["front_end"] = dataclasses.replace(front_end, vad=dataclasses.replace(
            front_end.vad, max_segment_seconds=1.5 * window_seconds))
    if feature_changes:
        config = dataclasses.replace(
            config, features=dataclasses.replace(config.features, **feature_changes))
    result = run(data_dir=obj.data_dir, artifacts_dir=obj.artifacts_dir, config=config,
                 jobs=jobs, force=force, scheduler=scheduler)
    state = "cache hit" if result.cached else f"{result.seconds:.1f} s"
    click.echo(f"features: {result.rows} rows from {result.clips} clips in {result.features_dir} "
               f"({state}; {len(result.failures)} clip(s) failed)")


@cli.command()
@click.option("--fold", default="0", show_default=True,
              help="Test fold to hold out, 'all' for every fold in turn, or 'random' for the "
                   "leaky clip-level split (contrast only).")
@click.option("--final", is_flag=True, help="Train the model to ship, on every actor.")
@click.option("--epochs", type=options.EPOCHS, default=None, help="Training epochs.")
@click.option("--val-folds", type=options.VAL_FOLDS, default=None,
              help="Folds held out of training as validation actors, to keep the epoch with "
                   "the best validation UA (default 0: train on them and keep the last epoch).")
@members_option
@click.option("--device", default="auto", envvar="SER_DEVICE",
              help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1, mps [env SER_DEVICE].")
@seed_option("SER_TRAIN_SEED", "Training seed (initialisation, batch order, masks, dropout); "
                               "member m trains from SEED+m. The split's seed is index's.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option("--force", is_flag=True, help="Retrain even if a finished run matches.")
@stage
def train(obj: Context, fold, final, epochs, val_folds, members, device, seed, resume, force):
    """Train the CNN from the feature shards (one fold, all folds, or the final model)."""
    from pipeline.errors import TrainingError
    from pipeline.devices import pick_device
    from pipeline.recipe import TrainConfig
    from pipeline.train import train as run

    try:
        pick_device(device)  # a device this machine lacks is refused before any work
    except TrainingError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    changes = {k: v for k, v in (("epochs", epochs), ("val_folds", val_folds),
                                 ("members", members)) if v is not None}
    config = dataclasses.replace(TrainConfig(seed=seed), **changes)
    for target in _folds(obj, fold, final):
        for member in range(config.members):
            result = run(data_dir=obj.data_dir, artifacts_dir=obj.artifacts_dir, config=config,
                         fold=target, member=member, resume=resume, force=force, device=device)
            kept = (f"best epoch {result.best_epoch} of {result.epochs_run}, validation UA "
                    f"{result.val['ua']:.1%}, WA {result.val['wa']:.1%}" if result.val else
                    f"last epoch {result.epochs_run} kept (no validation actors)")
            click.echo(f"{result.run_dir.name}: {kept}" + (" (cached)" if result.cached else ""))


def _folds(obj: Context, fold: str, final: bool) -> list:
    """The runs a --fold / --final choice names: [k], every fold, or [None] (final)."""
    from pipeline.index import load_index
    from pipeline.splits import runs_for

    if final:
        return [None]
    try:
        known = sorted({clip.fold for clip in load_index(obj.data_dir)})
    except PipelineError:
        if fold == "all":
            raise
        known = None  # no index yet: the stage itself says to run 'index'
    try:
        return runs_for(fold, known)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fold") from None


@cli.command()
@click.option("--fold", default=None, help="Fold to evaluate, or 'all' (cross-validation).")
@click.option("--bundle", "bundle_path", default=None,
              help="Evaluate this bundle ('latest', a path, or 'shipped') on --source.")
@click.option("--source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Folder of labelled clips (RAVDESS or URDU names), with --bundle.")
@click.option("--corpus", type=click.Choice(["auto", "ravdess", "urdu"]), default="auto",
              help="How --source names its labels (auto: tell from the names).")
@click.option("--jobs", "-j", type=options.JOBS, default=lambda: os.cpu_count() or 1,
              show_default="all cores", help="Feature workers (audio read for test-time views).")
@members_option
@tta_option
@stage
def evaluate(obj: Context, fold, bundle_path, source, corpus, jobs, members, tta):
    """Per-emotion and summary metrics on held-out folds, or a bundle on a folder."""
    from pipeline import evaluate as evaluation

    if bundle_path or source:
        if not (bundle_path and source):
            raise click.UsageError("--bundle and --source go together")
        if members:
            raise click.UsageError("--members is for --fold runs; a bundle already holds its members")
        from pipeline.bundle import resolve

        path = resolve(bundle_path, artifacts_dir=obj.artifacts_dir)
        model_threads(jobs)
        report = evaluation.evaluate_bundle(bundle_path=path, source=source, tta=tta,
                                            corpus=corpus, artifacts_dir=obj.artifacts_dir,
                                            jobs=jobs)
    else:
        from pipeline.recipe import TrainConfig
        from pipeline.views import CLEAN, TEST_VIEWS

        report = evaluation.evaluate_folds(data_dir=obj.data_dir, artifacts_dir=obj.artifacts_dir,
                                           folds=_folds(obj, fold or "all", final=False),
                                           members=members or TrainConfig().members,
                                           views=TEST_VIEWS if tta else CLEAN, jobs=jobs)
    click.echo(evaluation.format_report(report))
    name = "cv" if len(report.get("folds", [])) > 1 else None
    from pipeline.layout import reports_dir

    click.echo(f"report: {reports_dir(obj.artifacts_dir)} "
               f"({name or 'see the newest .json / .png'})")


@cli.command()
@click.option("--run", default="final", show_default=True,
              help="Which trained run to bundle: 'final' or 'fold-K'.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Bundle file (default artifacts/bundles/ser-RUN.safetensors).")
@click.option("--test-figures/--no-test-figures", default=True,
              help="Stamp the cross-validation figures of reports/cv.json into the bundle; "
                   "refused when that report was measured on other runs, members or views.")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "onnx"]),
              default="safetensors", help="onnx: the network as ONNX, for onnxruntime and other "
                                          "runtimes (needs 'pip install ser-pipeline[onnx]').")
@click.option("--bundle", "bundle_path", default=None,
              help="Convert this bundle ('shipped', 'latest' or a path) instead of a trained "
                   "run: no retraining (with --format onnx).")
@members_option
@tta_option
@stage
def export(obj: Context, run, out, test_figures, fmt, bundle_path, members, tta):
    """Write a self-contained model bundle (weights, configs, labels, test-time views,
    provenance), or its network as ONNX."""
    from pipeline import bundle as bundles
    from pipeline.recipe import TrainConfig
    from pipeline.views import CLEAN, TEST_VIEWS

    if bundle_path:
        if fmt != "onnx":
            raise click.UsageError("--bundle converts an exported bundle: use it with "
                                   "--format onnx")
        source = bundles.resolve(bundle_path, artifacts_dir=obj.artifacts_dir)
        path = bundles.convert(source, out, artifacts_dir=obj.artifacts_dir)
    else:
        path = bundles.export(artifacts_dir=obj.artifacts_dir, run=run,
                              members=members or TrainConfig().members,
                              views=TEST_VIEWS if tta else CLEAN, out=out,
                              test_figures=test_figures, format=fmt)
    click.echo(f"{'ONNX model' if fmt == 'onnx' else 'bundle'} written to {path} "
               f"({path.stat().st_size / 1e6:.2f} MB)")


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--bundle", "bundle_path", default=None, envvar="SER_BUNDLE",
              help="Bundle file, 'latest' export or 'shipped' (the default: the RAVDESS model) "
                   "[env SER_BUNDLE].")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write results to a .csv or .jsonl file instead of the terminal.")
@click.option("--windows", "--timeline", "windows", is_flag=True,
              help="Also report every speech segment (start_s, end_s, speech_s, emotion, "
                   "probabilities); with a .csv --output, one row per segment.")
@click.option("--jobs", "-j", type=options.JOBS, default=lambda: os.cpu_count() or 1,
              show_default="all cores", help="Feature workers.")
@click.option("--overwrite", is_flag=True,
              help="Score every file again into an existing --output instead of resuming it.")
@tta_option
@scheduler_option
@stage
def predict(obj: Context, inputs, bundle_path, output, windows, jobs, overwrite, tta, scheduler):
    """Predict the emotion of audio files or folders (WAV/FLAC/OGG/MP3, any rate). With
    --output, each file is written as it is scored, and a rerun resumes where it stopped."""
    from pipeline import bundle as bundles
    from pipeline.predict import predict_files
    from pipeline.results import format_single, format_table

    if output and output.suffix.lower() not in (".csv", ".jsonl"):
        raise click.BadParameter(f"{output}: use a .csv or .jsonl file name", param_hint="--output")
    if output:
        from pipeline.stages import check_writable

        check_writable(output)
    loaded = bundles.load(bundles.resolve(bundle_path, artifacts_dir=obj.artifacts_dir))
    model_threads(jobs)
    if output:
        from pipeline.sink import score_into

        counts = score_into(output, list(inputs), loaded, jobs=jobs, tta=tta,
                            scheduler=scheduler, windows=windows, resume=not overwrite)
        if counts.skipped:
            click.echo(f"resuming {output}: {counts.skipped} file(s) already in it are skipped "
                       "(--overwrite scores them again)", err=True)
        click.echo(f"{counts.scored - counts.failed} file(s) scored into {output}"
                   + (f" ({counts.failed} more with an error row)" if counts.failed else ""))
        failed, total = counts.failed, counts.scored
    else:
        results = predict_files(list(inputs), loaded, jobs=jobs, tta=tta, scheduler=scheduler)
        click.echo(format_single(results[0], loaded.labels, windows=windows)
                   if len(results) == 1 else format_table(results))
        failed, total = sum(1 for r in results if r.error), len(results)
    if failed:
        raise click.ClickException(f"{failed} of {total} file(s) could not be scored (see "
                                   f"the error {'rows' if output else 'column'})")


@cli.command()
@click.option("--bundle", "bundle_path", default=None, envvar="SER_BUNDLE",
              help="Bundle to serve: 'shipped' (default), 'latest', or a path (.safetensors "
                   "or .onnx) [env SER_BUNDLE].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Browsers allow the microphone only on localhost or "
                   "over HTTPS; 0.0.0.0 exposes the service to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=options.JOBS, default=1, show_default=True,
              help="Server processes, each loading the model once.")
@click.option("--max-upload-mb", type=options.FiniteFloatRange(0.01, 10_000), default=20.0,
              show_default=True, help="Largest upload accepted (413 above it).")
@click.option("--max-seconds", type=options.FiniteFloatRange(1, 86_400), default=600.0,
              show_default=True, help="Longest recording accepted (413 above it).")
@stage
def serve(obj: Context, bundle_path, host, port, workers, max_upload_mb, max_seconds):
    """Serve the model over HTTP: POST /predict, GET /health, GET /model, and a page at /
    to try files, recordings and live microphone scoring."""
    from pipeline import bundle as bundles
    from pipeline.serve import Limits, serve as run

    path = bundles.resolve(bundle_path, artifacts_dir=obj.artifacts_dir)
    click.echo(f"serving {path.name} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    run(path, host=host, port=port, workers=workers,
        limits=Limits(max_mb=max_upload_mb, max_seconds=max_seconds))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    cli()
