"""Commands that use a model: evaluate, export, predict, serve."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pipeline.cli import options
from pipeline.cli.base import (Context, cli, members_option, model_threads, run_targets,
                               scheduler_option, stage, tta_option)


@cli.command()
@click.option("--fold", default=None, help="Fold to evaluate, or 'all' (cross-validation).")
@click.option("--bundle", "bundle_path", default=None,
              help="Evaluate this bundle ('latest', a path, or 'shipped') on --source.")
@click.option("--source", type=click.Path(exists=True, path_type=Path),
              default=None, help="Folder of labelled clips in a recipe's layout (a corpus's "
                                 "own names, or DIR/<emotion>/<file>), or your CSV of "
                                 "path,emotion[,speaker], with --bundle.")
@click.option("--manifest", "manifest_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A manifest (JSONL or CSV: path, emotion, ...) of labelled clips, with "
                   "--bundle, instead of --source.")
@click.option("--corpus", default="auto", show_default=True,
              help="The recipe that names --source's labels (ravdess, emovo, urdu, cremad, "
                   "tess, emodb, savee, folders, csv), or auto: the one naming the most "
                   "files (csv for a file).")
@click.option("--speaker-pattern", default=None, metavar="REGEX",
              help="For a folders --source: a regex on each file's path naming its speaker "
                   "(group 'speaker' or 1), to warn about speakers the bundle trained on.")
@click.option("--jobs", "-j", type=options.JOBS, default=lambda: os.cpu_count() or 1,
              show_default="all cores", help="Feature workers (audio read for test-time views).")
@members_option
@tta_option
@stage
def evaluate(obj: Context, fold, bundle_path, source, manifest_path, corpus, speaker_pattern,
             jobs, members, tta):
    """Per-emotion and summary metrics on held-out folds (per corpus and pooled), or a
    bundle on a labelled folder or manifest."""
    from pipeline.evaluation import evaluate as evaluation

    if bundle_path or source or manifest_path:
        if not bundle_path:
            raise click.UsageError("--source and --manifest need --bundle: the model to "
                                   "evaluate ('shipped', 'latest' or a path)")
        if (source is None) == (manifest_path is None):
            raise click.UsageError("--bundle goes with one of --source or --manifest")
        if members:
            raise click.UsageError("--members is for --fold runs; a bundle already holds its members")
        from pipeline.inference.locate import resolve

        path = resolve(bundle_path, artifacts_dir=obj.artifacts_dir)
        from pipeline.evaluation.bundle_eval import evaluate_bundle

        report = evaluate_bundle(bundle_path=path, threads=model_threads(jobs, bundle=path),
                                 source=source, manifest_path=manifest_path, tta=tta,
                                 corpus=corpus, artifacts_dir=obj.artifacts_dir, jobs=jobs,
                                 speaker_pattern=speaker_pattern)
    else:
        from pipeline.core.extras import require

        require("ser evaluate --fold (the trained runs)", "torch", "h5py")
        from pipeline.network.recipe import TrainConfig
        from pipeline.signal.views import CLEAN, TEST_VIEWS

        report = evaluation.evaluate_folds(data_dir=obj.data_dir, artifacts_dir=obj.artifacts_dir,
                                           folds=run_targets(obj, fold or "all", final=False),
                                           members=members or TrainConfig().members,
                                           views=TEST_VIEWS if tta else CLEAN, jobs=jobs)
    click.echo(evaluation.format_report(report))
    path = Path(report["report_path"]).resolve()
    plot = path.with_suffix(".png")
    click.echo(f"report: {path}" + (f" and {plot.name}" if plot.exists() else ""))


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
    from pipeline.inference import bundle as bundles, locate
    from pipeline.network.recipe import TrainConfig
    from pipeline.signal.views import CLEAN, TEST_VIEWS

    if bundle_path:
        if fmt != "onnx":
            raise click.UsageError("--bundle converts an exported bundle: use it with "
                                   "--format onnx")
        source = locate.resolve(bundle_path, artifacts_dir=obj.artifacts_dir, onnx=False)
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
    """Predict the emotion of audio files or folders (WAV/FLAC/OGG/MP3, any rate), or of
    one recording on standard input ('-'). With --output, each file is written as it is
    scored, and a rerun resumes where it stopped."""
    from pipeline.inference import bundle as bundles, locate
    from pipeline.inference.predict import is_stream, predict_files, score_bytes

    stream = any(map(is_stream, inputs))
    if stream and len(inputs) > 1:
        raise click.BadParameter("'-' (or a pipe such as /dev/stdin) reads one recording from "
                                 "standard input: pass it alone", param_hint="INPUTS")
    if output and output.suffix.lower() not in (".csv", ".jsonl"):
        raise click.BadParameter(f"{output}: use a .csv or .jsonl file name", param_hint="--output")
    if output:
        from pipeline.core.atomic import check_writable

        check_writable(output)
        if stream and output.exists() and not overwrite:
            raise click.BadParameter(f"{output} exists: pass --overwrite to replace it with "
                                     "this recording's result, or name another file",
                                     param_hint="--output")
    resolved = locate.resolve(bundle_path, artifacts_dir=obj.artifacts_dir)
    loaded = bundles.load(resolved, threads=model_threads(jobs, bundle=resolved))
    if output and not stream:
        from pipeline.inference.sink import score_into

        counts = score_into(output, list(inputs), loaded, jobs=jobs, tta=tta,
                            scheduler=scheduler, windows=windows, resume=not overwrite)
        if counts.skipped:
            click.echo(f"resuming {output}: {counts.skipped} file(s) already in it are skipped "
                       "(--overwrite scores them again)", err=True)
        click.echo(f"{counts.scored - counts.failed} file(s) scored into {output}"
                   + (f" ({counts.failed} more with an error row)" if counts.failed else ""))
        failed, total = counts.failed, counts.scored
    else:
        results = ([score_bytes(click.get_binary_stream("stdin").read() if inputs[0] == "-"
                                else Path(inputs[0]).read_bytes(), loaded, name=inputs[0],
                                tta=tta)] if stream else
                   predict_files(list(inputs), loaded, jobs=jobs, tta=tta, scheduler=scheduler))
        _show(results, loaded, output=output, windows=windows)
        failed, total = sum(1 for r in results if r.error), len(results)
    if failed:
        raise click.ClickException(f"{failed} of {total} file(s) could not be scored (see "
                                   f"the error {'rows' if output else 'column'})")


def _show(results, scorer, *, output, windows: bool) -> None:
    """Print ``results`` (one file in full, several as a table), or write them to
    ``output`` afresh."""
    from pipeline.inference.results import format_single, format_table
    from pipeline.inference.sink import write_results

    if output:
        write_results(results, output, scorer.labels, windows=windows, bundle=scorer.identity)
        click.echo(f"{len(results)} file(s) scored into {output}")
    elif len(results) == 1:
        click.echo(format_single(results[0], scorer.labels, windows=windows,
                                 bundle=scorer.identity))
    else:
        click.echo(format_table(results, windows=windows, bundle=scorer.identity))


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
@click.option("--max-seconds", type=options.FiniteFloatRange(1, 86_400), default=600.0,
              show_default=True, help="Longest recording accepted (413 above it).")
@click.option("--max-upload-mb", type=options.FiniteFloatRange(0.01, 10_000), default=None,
              show_default=False,
              help="Largest upload accepted (413 above it); default: what --max-seconds of "
                   "16-bit stereo 48 kHz WAV takes, plus 1 MB (116.2 MB for 600 s).")
@stage
def serve(obj: Context, bundle_path, host, port, workers, max_upload_mb, max_seconds):
    """Serve the model over HTTP: POST /predict, GET /health, GET /model, and a page at /
    to try files, recordings and live microphone scoring."""
    from pipeline.inference import locate
    from pipeline.inference.serve import Limits, serve as run

    path = locate.resolve(bundle_path, artifacts_dir=obj.artifacts_dir)
    click.echo(f"serving {path.name} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    run(path, host=host, port=port, workers=workers,
        limits=Limits(max_mb=max_upload_mb, max_seconds=max_seconds))
