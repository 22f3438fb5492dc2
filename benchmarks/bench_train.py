#!/usr/bin/env python3
"""Training speed of the default model: samples per second, seconds per epoch over a
fold's training set, the share of step time spent on the data path, and the model's
floating-point operations per sample (to hold the figures against the hardware's rate).

    python benchmarks/bench_train.py              # CPU, and CUDA/MPS when present
    python benchmarks/bench_train.py --device cuda

Uses the real feature store (``--artifacts-dir``'s, with ``--data-dir``'s index) when it
exists; otherwise random tensors of the default shape and the size of one fold's training
set (16 actors x 60 clips x (1 + K) copies). A run trains ``TrainConfig.members`` such
models (the seed ensemble). Times the loops that run: one model
(``pipeline.training.train.train_epoch``) and ``--models`` models at once, as ``ser train
--stack on`` trains a CV's folds and members (``pipeline.training.together``; samples/s
then counts every model's samples). Needs torch, numpy and h5py only.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core import layout  # noqa: E402
from pipeline.corpus.splits import Split  # noqa: E402
from pipeline.network.model import flops_per_sample  # noqa: E402
from pipeline.network.recipe import TrainConfig  # noqa: E402
from pipeline.signal.augment import AugmentConfig  # noqa: E402
from pipeline.signal.features import FeatureConfig  # noqa: E402
from pipeline.training.batches import spec_augment  # noqa: E402
from pipeline.training.devices import pick_device  # noqa: E402
from pipeline.training.optim import optimiser_and_schedule  # noqa: E402
from pipeline.training.train import train_epoch  # noqa: E402


def training_rows(data_dir: Path, artifacts_dir: Path):
    """Features and labels of fold 0's training rows (real store or random stand-in)."""
    if layout.features_manifest(artifacts_dir).exists():
        from pipeline.corpus.index import load_index
        from pipeline.corpus.splits import fold_split
        from pipeline.corpus.store import load_store

        store = load_store(artifacts_dir, clips=load_index(data_dir))
        split = fold_split(fold=store.fold, copy=store.copy, test_fold=0)
        return store.features, store.label.astype(np.int64), split.train, "real store, fold 0"
    shape = FeatureConfig().shape
    rows = 16 * 60 * (1 + AugmentConfig().copies)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((rows, *shape)).astype(np.float16)
    return features, rng.integers(0, 8, rows), np.arange(rows), "random stand-in"


def _on(device, features, labels):
    """The rows as tensors where training keeps them: on the GPU path, on the device."""
    import torch

    data = torch.from_numpy(features)
    if device.type == "cuda":
        data = data.to(device)
    return data, torch.from_numpy(labels).to(data.device)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _data_seconds(models, data, targets, rows, config: TrainConfig, device) -> float:
    """Seconds for one epoch's data path alone, for each of ``models``: gather a batch,
    move it, normalise, mask."""
    import torch

    generator = torch.Generator(device=data.device).manual_seed(0)
    order = torch.from_numpy(rows).to(data.device)
    _sync(device)
    started = time.perf_counter()
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        for model in models:
            x = model.normalise(data[index].to(device, non_blocking=True))
            spec_augment(x, config, generator)
            targets[index].to(device)
    _sync(device)
    return time.perf_counter() - started


def _report(device, count: int, samples: int, per_epoch: float, data_seconds: float,
            epochs: int, config: TrainConfig, how: str) -> None:
    print(f"{str(device):<6} {count:>6} {samples / per_epoch:>10.0f} {per_epoch:>9.2f} "
          f"{data_seconds / per_epoch:>11.1%}   ({how}; {epochs} timed epochs of {samples} "
          f"samples, batch {config.batch_size})")


def measure_stacked(device_name: str, features, labels, rows, config: TrainConfig,
                    epochs: int, count: int, bf16: bool = False) -> None:
    """``count`` models trained at once (``pipeline.training.together.StackedStep``, as
    ``ser train --stack on`` does; compiled on CUDA): samples/s of all of them together."""
    from types import SimpleNamespace

    import torch

    from pipeline.network.model import EmotionCNN
    from pipeline.training.session import Session
    from pipeline.training.together import StackedStep

    device = pick_device(device_name)
    data, targets = _on(device, features, labels)
    split = Split(rows, np.zeros(0, int), np.zeros(0, int), (), ())
    runs = []
    for seed in range(count):
        torch.manual_seed(seed)
        model = EmotionCNN(replace(config.model, n_mels=features.shape[2])).to(device)
        optimiser, schedule = optimiser_and_schedule(model, replace(config, epochs=epochs + 1),
                                                     rows=len(rows))
        runs.append(SimpleNamespace(session=Session(
            model, model, optimiser, schedule, data, targets, labels, (), np.zeros(0), None,
            None, split, replace(config, seed=seed, epochs=epochs + 1), device,
            accelerated=device.type == "cuda", bf16=bf16)))
    step = StackedStep(runs, compiled=device.type == "cuda")
    step.epoch(1)
    _sync(device)  # warm-up epoch (allocator, kernels, compiling) not counted
    seconds = []
    for epoch in range(2, epochs + 2):
        started = time.perf_counter()
        step.epoch(epoch)
        _sync(device)
        seconds.append(time.perf_counter() - started)
    data_seconds = _data_seconds([r.session.model for r in runs], data, targets, rows,
                                 config, device)
    _report(device, count, count * len(rows), float(np.median(seconds)), data_seconds, epochs,
            config, "stacked" + (", compiled" if device.type == "cuda" else "")
            + (", bf16" if bf16 else ""))


def measure(device_name: str, features, labels, rows, config: TrainConfig, epochs: int,
            bf16: bool = False) -> None:
    import torch

    device = pick_device(device_name)
    torch.manual_seed(0)
    from pipeline.network.model import EmotionCNN

    model = EmotionCNN(replace(config.model, n_mels=features.shape[2])).to(device)
    data, targets = _on(device, features, labels)
    # the run's own optimiser and schedule (one warm-up epoch + the timed ones)
    optimiser, schedule = optimiser_and_schedule(model, replace(config, epochs=epochs + 1),
                                                 rows=len(rows))
    split = Split(rows, np.zeros(0, int), np.zeros(0, int), (), ())

    train_epoch(model, optimiser, schedule, data, targets, split, config, epoch=1, device=device,
                autocast=bf16)
    _sync(device)  # warm-up epoch (allocator, kernels) not counted
    seconds = []
    for epoch in range(2, epochs + 2):
        started = time.perf_counter()
        train_epoch(model, optimiser, schedule, data, targets, split, config, epoch=epoch,
                    device=device, autocast=bf16)
        _sync(device)
        seconds.append(time.perf_counter() - started)
    _report(device, 1, len(rows), float(np.median(seconds)),
            _data_seconds([model], data, targets, rows, config, device), epochs, config,
            "one model" + (", bf16" if bf16 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", action="append", help="cpu, cuda, mps (default: cpu + any GPU)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--bf16", action="store_true",
                        help="under bf16 autocast (off in training by default)")
    parser.add_argument("--models", type=int, default=10,
                        help="models trained at once in the stacked measurement (default 10: "
                             "the full profile's 5 folds x 2 members; 0 skips it)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--artifacts-dir", type=Path, default=ROOT / "artifacts")
    args = parser.parse_args()
    import torch

    config = TrainConfig()
    features, labels, rows, origin = training_rows(args.data_dir, args.artifacts_dir)
    model_config = replace(config.model, n_mels=features.shape[2])
    flops = flops_per_sample(model_config, num_frames=features.shape[3])
    print(f"input {tuple(features.shape[1:])} ({origin}); model channels {model_config.channels}, "
          f"{flops / 1e6:.1f} MFLOP forward per sample, ~{3 * flops / 1e6:.0f} MFLOP per "
          f"training sample (forward + backward); torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
        ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])
    print(f"{'device':<6} {'models':>6} {'samples/s':>10} {'s/epoch':>9} {'data share':>11}")
    for device in devices:
        measure(device, features, labels, rows, config, args.epochs, args.bf16)
        if args.models:
            measure_stacked(device, features, labels, rows, config, args.epochs, args.models,
                            args.bf16)


if __name__ == "__main__":
    main()
