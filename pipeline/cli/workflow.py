"""``ser run``: every stage end to end in one of two profiles (``pipeline.cli.profiles``),
printing where each output went. Reruns resume: the stages are cached and training
continues from its checkpoints."""

from __future__ import annotations

import os
import time

import click

from pipeline.cli import options
from pipeline.cli import prepare, score
from pipeline.cli.base import NEEDS, Context, cli
from pipeline.core.errors import PipelineError


@cli.command("run")
@click.option("--profile", type=click.Choice(["quick", "full"]), default="quick",
              help="quick: one fold, one model, 60 epochs (minutes); full: the README's "
                   "figures (cross-validation, ensembles, the final model; hours on a CPU).")
@click.option("--source", envvar="SER_SOURCE",
              help="The corpus: a local zip, a folder of Actor_XX/, or a URL (default: the "
                   "official archive) [env SER_SOURCE].")
@click.option("--epochs", type=options.EPOCHS, default=None,
              help="Train this many epochs instead of the profile's (a smoke test).")
@click.option("--jobs", "-j", type=options.JOBS, default=lambda: os.cpu_count() or 1,
              show_default="all cores", help="Worker processes for extract, evaluate, predict.")
@click.pass_context
def run(ctx, profile, source, epochs, jobs):
    """Run the whole pipeline (download, index, extract, train, evaluate, export, predict)
    in a profile, resuming whatever an earlier run left unfinished."""
    from pipeline.cli.profiles import PROFILES
    from pipeline.core.extras import require

    try:
        require("ser run", *NEEDS["train"])
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from None
    chosen, root = PROFILES[profile], ctx.obj
    started = time.perf_counter()
    click.echo(f"ser run: {chosen.says}.", err=True)
    ctx.obj = Context(root.data_dir, chosen.artifacts_dir(root.artifacts_dir))
    try:  # both folders before the first step, so no step's work is lost to the last
        ctx.obj.check_writable("data_dir", "artifacts_dir")
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from None
    step = _stepper(ctx)
    step(prepare.download, source=source)
    step(prepare.index)
    step(prepare.extract, jobs=jobs)
    trained = dict(members=chosen.members, epochs=epochs or chosen.epochs, resume=True)
    step(prepare.train, fold=chosen.fold, **trained)
    step(score.evaluate, fold=chosen.fold, members=chosen.members, jobs=jobs)
    if chosen.contrast:
        step(prepare.train, fold="random", **trained)
        step(score.evaluate, fold="random", members=chosen.members, jobs=jobs)
    if chosen.final:
        step(prepare.train, final=True, **trained)
    bundle = _bundle_path(ctx.obj, chosen)
    step(score.export, run=chosen.export_run, members=chosen.members, out=bundle)
    clip = _example(ctx.obj, chosen)
    if clip is not None:
        step(score.predict, inputs=(clip.path,), bundle_path=str(bundle), jobs=jobs)
        from pipeline.cli.profiles import about_clip

        click.echo(about_clip(clip, chosen.fold))
    _where(ctx.obj, chosen, bundle, time.perf_counter() - started)


def _stepper(ctx):
    """Invoke one stage command with the profile's context, saying which and how long.
    Options the profile does not set come from their environment variables (``SER_*``),
    else their defaults, as on the command line (``ctx.invoke`` alone skips the
    environment)."""
    def step(command, **params):
        click.echo(f"\n== ser {command.name} ==", err=True)
        began = time.perf_counter()
        for param in command.params:
            if param.name not in params and param.expose_value:
                value, _ = param.consume_value(ctx, {})
                params[param.name] = param.process_value(ctx, value)
        try:
            ctx.invoke(command, **params)
        except click.ClickException as exc:
            if "--resume" in exc.message:  # an interrupted training: say how ser run resumes
                exc.message += "; rerunning the same 'ser run' does"
            raise
        click.echo(f"[ser {command.name}: {time.perf_counter() - began:.0f} s]", err=True)
    return step


def _bundle_path(obj: Context, chosen):
    from pipeline.core import layout

    return layout.bundle_file(obj.artifacts_dir, chosen.export_run)


def _example(obj: Context, chosen):
    from pipeline.cli.profiles import example_clip
    from pipeline.corpus.index import load_index

    return example_clip(load_index(obj.data_dir), chosen.fold)


def _where(obj: Context, chosen, bundle, seconds: float) -> None:
    """The closing summary: every output's absolute path, and what to run next."""
    from pipeline.core import layout

    run = "cv" if chosen.fold == "all" else f"fold-{chosen.fold}"
    report = layout.report_stem(obj.artifacts_dir, run).with_suffix(".json")
    lines = [f"\n{chosen.name} profile finished in {seconds / 60:.1f} min. Outputs:",
             f"  corpus index   {layout.index_csv(obj.data_dir)}",
             f"  features       {layout.features_dir(obj.artifacts_dir)}",
             f"  trained run    {layout.run_dir(obj.artifacts_dir, chosen.export_run)}",
             f"  report         {report} (+ .png with the plot extra)",
             f"  bundle         {bundle}",
             f"next: ser predict --bundle {bundle} YOUR.wav   (or --bundle shipped: the "
             "released model)"]
    click.echo("\n".join(lines))
