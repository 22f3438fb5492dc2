"""The ``ser`` command group and what its commands share: the context (data and
artifacts folders), one-line errors, the options several stages take, threads."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
from pathlib import Path

import click

from pipeline.cli import options
from pipeline.core.errors import PipelineError

# The folders each stage command writes in, checked before it starts (a dangling link, a
# file, a read-only place: one line, not a traceback or lost work). predict and serve
# write in neither; export only without --out.
WRITES = {"download": ("data_dir",), "index": ("data_dir",), "extract": ("artifacts_dir",),
          "train": ("artifacts_dir",), "evaluate": ("artifacts_dir",),
          "export": ("artifacts_dir",)}
# The packages a stage cannot start without, checked before it starts: they come with the
# [train] extra (pipeline.core.extras); scoring (predict, evaluate --bundle, serve) needs
# none of them. Anything else a command reaches for and lacks is named when it is met.
NEEDS = {"extract": ("h5py",), "train": ("torch", "h5py", "safetensors"),
         "export": ("torch", "h5py", "safetensors")}


@dataclasses.dataclass
class Context:
    data_dir: Path
    artifacts_dir: Path

    def check_writable(self, *names: str) -> None:
        """Raise ``PipelineError`` naming the option and the fix unless files can be
        written in each folder ``names`` (``"data_dir"``, ``"artifacts_dir"``) names
        (``layout.check_output_folder``; a missing folder is created)."""
        from pipeline.core.layout import check_output_folder

        for name in names:
            check_output_folder(getattr(self, name), option="--" + name.replace("_", "-"))


def model_threads(jobs: int, *, bundle: Path | None = None) -> int:
    """The threads the model gets: the cores the ``jobs`` feature workers leave, at least
    one (two model threads beside two workers on two cores ran a batch 1.3x slower).
    Returned for an ONNX ``bundle`` (``bundle.load(threads=)``); set here, in the CLI, for
    torch's, so the library never changes a caller's torch threads. Torch is imported only
    for a torch model, and only where it is installed."""
    import importlib.util

    threads = max(1, (os.cpu_count() or 1) - jobs)
    if bundle is not None and Path(bundle).suffix.lower() == ".onnx":
        return threads
    if importlib.util.find_spec("torch") is None:
        return threads  # loading the bundle says how to get torch, or to score its ONNX form
    import torch

    torch.set_num_threads(threads)
    return threads


def friendly_errors(command):
    """Turn the project's exceptions into one clean line and exit status 1; SIGTERM and
    SIGINT (Ctrl-C) into one line, ``interrupted: ...`` with what was kept when the stage
    says (an interruption's ``saved``), and exit status 128 + the signal (143, 130), the
    worker processes stopped first (``engines.stop_workers``)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from pipeline.core.engines import raise_on_sigterm, stop_workers

        try:
            with raise_on_sigterm():
                return command(*args, **kwargs)
        except PipelineError as exc:
            raise click.ClickException(str(exc)) from None
        except ImportError as exc:
            from pipeline.core.extras import missing_extra

            named = missing_extra(exc, f"ser {command.__name__}")
            if named is None:
                raise
            raise click.ClickException(str(named)) from None
        except KeyboardInterrupt as exc:
            stop_workers()
            signum = getattr(exc, "signum", signal.SIGINT)
            saved = getattr(exc, "saved", "")
            click.echo(f"interrupted: {saved}" if saved else
                       f"interrupted ({signal.Signals(signum).name})", err=True)
            raise click.exceptions.Exit(128 + signum) from None

    return wrapper


def stage(command):
    """A stage command: gets the ``Context``, has the folders it writes in checked before
    it starts (``WRITES``) and the packages it needs (``NEEDS``), and reports the
    project's errors in one line."""
    writes = WRITES.get(command.__name__, ())

    @functools.wraps(command)
    def checked(obj: Context, *args, **kwargs):
        if command.__name__ in NEEDS:
            from pipeline.core.extras import require

            require(f"ser {command.__name__}", *NEEDS[command.__name__])
        if not (command.__name__ == "export" and kwargs.get("out")):
            obj.check_writable(*writes)
        return command(obj, *args, **kwargs)

    return click.pass_obj(friendly_errors(checked))


def print_version(ctx, _param, value) -> None:
    """``--version``: the package's version and the shipped model's identity."""
    if not value or ctx.resilient_parsing:
        return
    from pipeline import __version__
    from pipeline.inference.bundle_header import header_identity
    from pipeline.inference.locate import SHIPPED, resolve

    path = resolve("shipped")
    if path == SHIPPED:
        identity = header_identity(SHIPPED)
    else:  # its ONNX form, the file 'shipped' scores here
        from pipeline.inference.onnx_bundle import load_onnx

        identity = load_onnx(path).identity
    click.echo(f"ser-pipeline {__version__}; shipped model {identity}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=print_version, help="Print the version and the shipped model's, and exit.")
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
    """Speech emotion recognition on labelled corpora (RAVDESS by default): download ->
    index -> extract -> train -> evaluate -> export -> predict. Each stage caches its
    output and can be rerun alone."""
    from pipeline.core import faults, progress

    # a file name that is not UTF-8 is printed escaped, never a UnicodeEncodeError
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    progress.configure(level=log_level, quiet=quiet, bars=False if os.environ.get("CI") else None)
    try:  # test-only fault points: the process's one reading of SER_FAULT
        if os.environ.get(faults.ENVIRONMENT):
            faults.install(faults.from_environment())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    # absolute from here on: every message names the folder it searched, wherever it runs
    ctx.obj = Context(data_dir.absolute(), artifacts_dir.absolute())


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
         "probabilities averaged (pipeline.signal.views); --no-tta scores the window alone.")



def run_targets(obj: Context, fold: str, final: bool) -> list:
    """The runs a --fold / --final choice names: [k], every fold, or [None] (final)."""
    from pipeline.corpus.index import load_index
    from pipeline.corpus.splits import runs_for

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
