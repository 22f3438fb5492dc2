"""What one training run's epochs share: the model, the network the loop calls (the
model, or DistributedDataParallel over it under torchrun), the data as tensors on the
device, the optimiser and schedule, the class weights, the split and the recipe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.metrics import confusion, summarise
from pipeline.corpus.splits import Split
from pipeline.corpus.store import FeatureStore
from pipeline.network.model import logits_for
from pipeline.network.recipe import TrainConfig
from pipeline.training import distributed
from pipeline.training.batches import balanced_weights, cell_weights, normalisation_stats
from pipeline.training.optim import optimiser_and_schedule


@dataclass
class Session:
    model: "torch.nn.Module"  # the EmotionCNN: what is saved and validated
    network: "torch.nn.Module"  # what the loop calls: the model, or DDP over it
    optimiser: "torch.optim.Optimizer"
    schedule: "torch.optim.lr_scheduler.LRScheduler"
    features: "torch.Tensor"
    labels: "torch.Tensor"
    label_column: np.ndarray
    label_map: tuple[str, ...]
    corpus_column: np.ndarray
    class_weights: "torch.Tensor | None"
    # with config.balance_corpora: each store row's loss weight (0 off the training rows)
    # instead of class weights
    row_weights: "torch.Tensor | None"
    split: Split
    config: TrainConfig  # this rank's (distributed.rank_config)
    device: "torch.device"
    group: distributed.Group | None = None
    accelerated: bool = False  # the GPU path: data resident on the device
    # bf16 autocast in the loop: off unless asked for (it cost 2.3 points of validation UA
    # in docs/experiments.md's check, issue 32)
    bf16: bool = False
    # with config.adversary: the actor head (training.adversary) and each row's actor target
    adversary: "torch.nn.Module | None" = None
    actor_targets: "torch.Tensor | None" = None

    @classmethod
    def start(cls, store: FeatureStore, split: Split, config: TrainConfig, device,
              group: distributed.Group | None = None, *,
              accelerated: bool | None = None, features=None,
              bf16: bool = False) -> "Session":
        """A fresh model (from the current torch seed) normalised with the training rows'
        statistics, its optimiser and schedule, and the store's rows as tensors.
        ``accelerated`` (default: on CUDA) takes the GPU path: every row moved to the
        device once (~0.2 GB for RAVDESS x 3 copies); ``bf16``: bf16 autocast in the loop; it
        runs on any device, so tests exercise it on CPU. ``features``: the store's rows as
        that tensor already (where several runs share them: ``together``)."""
        import torch

        from pipeline.network.model import EmotionCNN

        model = EmotionCNN(config.model)
        mean, std = normalisation_stats(store.features, split.train)
        model.set_normalisation(torch.from_numpy(mean), torch.from_numpy(std))
        model.to(device)
        accelerated = device.type == "cuda" if accelerated is None else accelerated
        if features is None:
            features = torch.from_numpy(store.features)
            if accelerated:
                features = features.to(device)
        labels = torch.from_numpy(store.label.astype(np.int64)).to(features.device)
        weights = rows = None
        if config.balanced and config.balance_corpora:
            column = np.zeros(len(store.label), dtype=np.float32)
            column[split.train] = cell_weights(store.label[split.train], store.corpus[split.train])
            rows = torch.from_numpy(column).to(features.device)
        elif config.balanced:
            weights = torch.from_numpy(
                balanced_weights(store.label[split.train], config.model.n_classes)).to(device)
        config = distributed.rank_config(config, group)
        trainable, targets = model, None
        if config.adversary:
            from pipeline.training.adversary import Adversarial, actor_targets

            column, n_actors = actor_targets(store.actor, split.train)
            trainable = Adversarial(model, n_actors).to(device)
            targets = torch.from_numpy(column).to(features.device)
        optimiser, schedule = optimiser_and_schedule(
            trainable, config, rows=distributed.rank_rows(len(split.train), group))
        return cls(model, distributed.wrap(trainable, group, device), optimiser, schedule,
                   features, labels, store.label, store.label_map, store.corpus, weights, rows,
                   split, config, device, group, accelerated, bf16,
                   getattr(trainable, "actor_head", None), targets)

    def validate(self) -> dict:
        """Metrics of the model as it is now on the validation rows, pooled, and the UA
        of each corpus's validation rows under ``ua_by_corpus`` when there are several."""
        predicted = logits_for(self.model, self.features, self.split.val,
                               device=self.device).argmax(1)
        true = self.label_column[self.split.val]
        metrics = summarise(confusion(true, predicted, len(self.label_map)), self.label_map)
        corpus = self.corpus_column[self.split.val]
        if len(set(corpus.tolist())) > 1:
            metrics["ua_by_corpus"] = {
                str(name): summarise(confusion(true[corpus == name], predicted[corpus == name],
                                               len(self.label_map)), self.label_map)["ua"]
                for name in sorted(set(corpus.tolist()))}
        return metrics
