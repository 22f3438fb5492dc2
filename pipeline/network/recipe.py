"""The training recipe: every setting a training run depends on (``TrainConfig``). A
run's cache key hashes it, minus ``members`` (see there)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.network.model import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 120
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    # gradients rescaled to at most this L2 norm before each step (0: off). Without it the
    # 20-actor final run of the seventh recipe stalled near the 3e-3 peak (docs/experiments.md)
    grad_clip: float = 1.0
    mixup_alpha: float = 0.0
    # weight of an actor classifier's loss behind a gradient-reversal layer (0: off);
    # pipeline.training.adversary, Ganin & Lempitsky, 2015
    adversary: float = 0.0
    balanced: bool = True  # loss weighted by inverse class frequency (neutral: half the clips)
    # with balanced: every (corpus, emotion) cell of the training rows weighs the same in
    # the loss, instead of every emotion (batches.cell_weights). Left out of to_dict when
    # off, so runs from before it keep their keys
    balance_corpora: bool = False
    time_masks: int = 2
    time_mask_frames: int = 20
    freq_masks: int = 2
    freq_mask_bins: int = 8
    patience: int = 0  # epochs without a better validation UA before stopping; 0: never
    val_folds: int = 0  # folds held out to pick the best epoch; 0: train on them, keep the last
    # the training seed (initialisation, batch order, SpecAugment, dropout, mixup); member m
    # of an ensemble trains from seed + m. The split's seed is the index's (ser index --seed)
    seed: int = 0
    # ensemble members per run, probabilities averaged. Not part of a member's cache key
    # (``member_key``): a member trains the same whatever the count, so it stays cached
    members: int = 2
    # train on these corpora's rows only (empty: every corpus in the index); the other
    # corpora's speakers still validate and test. Left out of to_dict when empty, so
    # runs from before it keep their keys
    train_corpora: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = {**asdict(self), "model": self.model.to_dict()}
        if not self.train_corpora:
            del data["train_corpora"]
        if not self.balance_corpora:
            del data["balance_corpora"]
        return data

    def member_key(self) -> dict:
        """What one member's training depends on: everything but ``members``."""
        return {k: v for k, v in self.to_dict().items() if k != "members"}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        # runs from before grad_clip existed trained without clipping
        return cls(**{"grad_clip": 0.0, **data, "model": ModelConfig.from_dict(data["model"]),
                      "train_corpora": tuple(data.get("train_corpora", ()))})


def recipe_of(train_config: dict) -> dict:
    """A run's recipe, from its saved training config (``TrainConfig.to_dict``): every
    setting but the seed and the member count, which differ between runs of one recipe."""
    return {k: v for k, v in train_config.items() if k not in ("seed", "members")}
