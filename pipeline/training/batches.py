"""What goes into a training batch, apart from the loop: the normalisation statistics
and class weights fixed before training, the seeded draws of each epoch, and
SpecAugment. The loop itself is ``pipeline.training.train.train_epoch``.
"""

from __future__ import annotations

import numpy as np

from pipeline.core.errors import TrainingError
from pipeline.network.recipe import TrainConfig


def derived_seed(*parts: int) -> int:
    """A 32-bit seed from integers (``numpy.random.SeedSequence``): independent streams
    for (seed, epoch, purpose) without correlations between neighbouring values."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def normalisation_stats(features: np.ndarray, rows: np.ndarray, *, chunk: int = 512):
    """Mean and std per channel and mel row over ``rows`` of ``features`` ``(n, 2, n_mels,
    num_frames)`` (and all frames): float32 ``(2, n_mels, 1)`` each, accumulated in
    float64. Raises ``TrainingError`` when the features hold NaN or inf."""
    total = np.zeros(features.shape[1:3])
    squares = np.zeros(features.shape[1:3])
    count = 0
    for start in range(0, len(rows), chunk):
        block = features[rows[start:start + chunk]].astype(np.float64)
        total += block.sum(axis=(0, 3))
        squares += np.square(block).sum(axis=(0, 3))
        count += block.shape[0] * block.shape[3]
    mean = total / count
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(squares)):
        raise TrainingError("the training features contain NaN or inf values: recompute them "
                            "with 'ser extract --force'")
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0))
    return mean[..., None].astype(np.float32), std[..., None].astype(np.float32)


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class loss weights ``n / (n_classes * count)``, float32 ``(n_classes,)``, so
    every class weighs the same in total; a class absent from ``labels`` gets weight 0."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def cell_weights(labels: np.ndarray, corpora: np.ndarray) -> np.ndarray:
    """Per-row loss weights ``n / (cells * count)``, float32 ``(n,)``, where a cell is one
    (corpus, emotion) pair present in the rows and ``count`` its rows: every cell weighs
    the same in total, so a small corpus weighs as much per emotion as a large one, and an
    emotion only one corpus has (RAVDESS's calm) weighs as one cell, not as a whole class.
    ``labels`` ``(n,)`` class indices, ``corpora`` ``(n,)`` corpus names."""
    cells = np.array([f"{corpus}/{label}" for corpus, label in zip(corpora, labels)])
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    return (len(labels) / (len(counts) * counts[inverse])).astype(np.float32)


def spec_augment(x, config: TrainConfig, generator):
    """SpecAugment (Park et al., 2019, "SpecAugment: A Simple Data Augmentation Method for
    Automatic Speech Recognition"), time and frequency masks only: per sample,
    ``config.time_masks`` bands of up to ``config.time_mask_frames`` frames and
    ``config.freq_masks`` bands of up to ``config.freq_mask_bins`` mel rows set to zero
    (after normalisation: the mean). ``x``: ``(batch, 2, n_mels, num_frames)`` tensor;
    ``generator``: the ``torch.Generator`` every draw comes from, on the device the masks
    are drawn on (the data's: no host-to-device copy on the GPU path)."""
    import torch

    batch, _, n_mels, num_frames = x.shape
    on = generator.device
    keep = torch.ones(batch, 1, n_mels, num_frames, dtype=torch.bool, device=on)
    for count, width, axis, size in ((config.time_masks, config.time_mask_frames, 3, num_frames),
                                     (config.freq_masks, config.freq_mask_bins, 2, n_mels)):
        for _ in range(count):
            widths = torch.randint(0, width + 1, (batch,), generator=generator, device=on)
            starts = (torch.rand(batch, generator=generator, device=on) * (size - widths)).long()
            positions = torch.arange(size, device=on)
            band = ((positions[None] >= starts[:, None])
                    & (positions[None] < (starts + widths)[:, None]))
            shape = (batch, 1, size, 1) if axis == 2 else (batch, 1, 1, size)
            keep &= ~band.view(shape)
    return x * keep.to(x.device)


def mixup_weight(config: TrainConfig, *, epoch: int, start: int) -> float:
    """Mixup's weight λ ~ Beta(α, α) (Zhang et al., 2018, "mixup: Beyond Empirical Risk
    Minimization") for the batch starting at row ``start`` of ``epoch``; 1.0 when off."""
    if config.mixup_alpha <= 0:
        return 1.0
    rng = np.random.default_rng(derived_seed(config.seed, epoch, start))
    return float(rng.beta(config.mixup_alpha, config.mixup_alpha))


def augmented_batch(model, features, labels, index, config: TrainConfig, generator, *,
                    epoch: int, start: int, device):
    """One model's training batch: rows ``index`` of ``features`` ``(n, 2, n_mels,
    num_frames)`` gathered, moved to ``device``, normalised by ``model``, SpecAugmented
    and, with mixup, mixed with a permutation of themselves. Returns ``(x, y, lam,
    partner)``: the batch, its labels ``(batch,)``, mixup's weight (1.0 when off) and the
    permutation (None when off). Every draw comes from ``generator``, masks first."""
    import torch

    x = spec_augment(model.normalise(features[index].to(device, non_blocking=True)), config,
                     generator)
    y = labels[index].to(device)
    lam = mixup_weight(config, epoch=epoch, start=start)
    partner = (torch.randperm(len(y), generator=generator, device=generator.device).to(device)
               if config.mixup_alpha > 0 else None)
    if partner is not None:
        x = lam * x + (1 - lam) * x[partner]
    return x, y, lam, partner
