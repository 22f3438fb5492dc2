"""Commands that prepare a model: download, index, extract, train."""

from __future__ import annotations

import dataclasses
import os

import click

from pipeline.cli import options
from pipeline.cli.base import (Context, cli, members_option, run_targets, scheduler_option,
                               seed_option, stage)


@cli.command()
@click.option("--source", envvar="SER_SOURCE",
              help="A local zip, a folder of Actor_XX/ clips, or a URL (default: the official "
                   "Zenodo archive) [env SER_SOURCE].")
@click.option("--force", is_flag=True, help="Fetch / unpack again even if done.")
@stage
def download(obj: Context, source, force):
    """Fetch the RAVDESS speech corpus (checksum, resume), or use a local copy."""
    from pipeline.corpus.download import download as run

    result = run(data_dir=obj.data_dir, source=source, force=force)
    click.echo(f"corpus {'already ' if result.skipped else ''}at {result.root}")


@cli.command()
@click.option("--corpus", "corpora", multiple=True, metavar="RECIPE=PATH",
              help="A corpus to index through its recipe, repeatable: ravdess, emovo, urdu, "
                   "cremad, tess, emodb, savee (their own names), folders (PATH/<emotion>/"
                   "<file>), csv (PATH = your CSV of path,emotion[,speaker]). Default: the "
                   "corpus 'ser download' fetched, as ravdess.")
@click.option("--manifest", "manifests", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="A manifest (JSONL or CSV: path, emotion, speaker, corpus[, label, "
                   "gender, clip_id]) to index, repeatable.")
@click.option("--speaker-pattern", default=None, metavar="REGEX",
              help="For folders: a regex searched in each file's path under the corpus "
                   "folder; its group 'speaker' (or group 1) names the speaker.")
@click.option("--folds", type=options.FOLDS, default=5,
              help="Number of speaker-disjoint cross-validation folds.")
@seed_option("SER_SPLIT_SEED", "Split seed: which actors go to which fold, and the random "
                               "clip-level split. Changing it re-extracts nothing.")
@click.option("--force", is_flag=True, help="Re-index even if the corpus is unchanged.")
@stage
def index(obj: Context, corpora, manifests, speaker_pattern, folds, seed, force):
    """Index labelled corpora (recipes or manifests) and assign speaker-disjoint folds."""
    from pathlib import Path

    from pipeline.corpus.index import IndexConfig, Source, build_index, summary

    if speaker_pattern and not any(text.partition("=")[0].strip() == "folders"
                                   for text in corpora):
        raise click.UsageError("--speaker-pattern reads speakers for a folders corpus "
                               "(--corpus folders=PATH); the other recipes read them from "
                               "their names, a manifest from its speaker column")
    sources = [Source.parse(text, speaker_pattern=speaker_pattern) for text in corpora]
    sources += [Source("manifest", str(Path(m).resolve())) for m in manifests]
    result = build_index(data_dir=obj.data_dir, sources=sources or None,
                         config=IndexConfig(folds=folds, seed=seed), force=force)
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
    from pipeline.corpus.extract import ExtractConfig, extract as run

    config = ExtractConfig(seed=seed, max_failure_share=max_failure_share)
    if copies is not None:
        config = dataclasses.replace(config, augment=dataclasses.replace(config.augment, copies=copies))
    feature_changes = {k: v for k, v in (("window_seconds", window_seconds), ("n_mels", n_mels))
                       if v is not None}
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
@click.option("--stack", type=click.Choice(["auto", "on", "off"]), default="auto",
              envvar="SER_STACK", show_default=True,
              help="Train every run and member at once as one stacked network, each still "
                   "with its own folder, checkpoint and seed (auto: on a CUDA GPU, where one "
                   "small model leaves the chip idle) [env SER_STACK].")
@click.option("--bf16", is_flag=True, envvar="SER_BF16",
              help="Train under bf16 autocast (faster on a GPU; it cost 2.3 points of "
                   "validation UA in docs/experiments.md's check, so off by default) "
                   "[env SER_BF16].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option("--force", is_flag=True, help="Retrain even if a finished run matches.")
@stage
def train(obj: Context, fold, final, epochs, val_folds, members, device, seed, stack, bf16,
          resume, force):
    """Train the CNN from the feature shards (one fold, all folds, or the final model)."""
    from pipeline.core import layout
    from pipeline.core.errors import TrainingError
    from pipeline.core.progress import JobBar
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.devices import pick_device
    from pipeline.training.train import train as run

    try:
        chosen = pick_device(device)  # a device this machine lacks is refused before any work
    except TrainingError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    changes = {k: v for k, v in (("epochs", epochs), ("val_folds", val_folds),
                                 ("members", members)) if v is not None}
    config = dataclasses.replace(TrainConfig(seed=seed), **changes)
    targets = run_targets(obj, fold, final)
    trained = dict(data_dir=obj.data_dir, artifacts_dir=obj.artifacts_dir, config=config,
                   resume=resume, force=force, device=device, bf16=bf16)
    with JobBar(runs=len(targets), members=config.members, epochs=config.epochs) as job:
        if stack == "on" or (stack == "auto" and chosen.type == "cuda"):
            from pipeline.training.together import train_together

            job.start_together()
            train_together(targets=[(target, member) for target in targets
                                    for member in range(config.members)],
                           on_epoch=job.epoch, on_finished=lambda r: _trained(job, r),
                           **trained)
            return
        for index, target in enumerate(targets):
            for member in range(config.members):
                job.start(run_index=index, run=layout.run_name(target), member=member)
                _trained(job, run(fold=target, member=member, on_epoch=job.epoch, **trained))


def _trained(job, result) -> None:
    """Book a finished (or cached) run in the bar and say which epoch it kept."""
    job.finished(cached=result.cached, epochs_run=result.epochs_run)
    kept = (f"best epoch {result.best_epoch} of {result.epochs_run}, validation "
            f"UA {result.val['ua']:.1%}, WA {result.val['wa']:.1%}" if result.val
            else f"last epoch {result.epochs_run} kept (no validation actors)")
    click.echo(f"{result.run_dir.name}: {kept}" + (" (cached)" if result.cached else ""))
