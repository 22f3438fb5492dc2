"""The CNN: two input channels (MFCC, log-mel), three conv blocks (conv, batch norm,
ReLU, max pool), fully connected layers with dropout, one output per emotion.

Normalisation (per channel and mel row, computed from training data) lives inside the
model as buffers, so a saved model can never be used with the wrong statistics. A saved
model (``save_model``) keeps its config beside the weights and is rebuilt from it
(``load_model``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import TrainingError
from pipeline.core.labels import EMOTIONS


@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = 64
    n_classes: int = 8
    channels: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    dropout: float = 0.1  # 0.3 and 0.5 were tried (docs/experiments.md)
    # also subtract each clip's own mean per channel and mel row (cepstral mean
    # normalisation: a fixed channel's colouring cancels); docs/experiments.md, seventh round
    clip_norm: bool = True
    # over time after the conv blocks: "mean", "meanmax" (both, concatenated; the eighth
    # recipe's) or "attention" (attentive statistics pooling: Okabe et al., 2018,
    # Interspeech; the ninth recipe's, docs/experiments.md)
    pooling: str = "attention"
    # a squeeze-and-excitation gate after each conv block's ReLU (Hu, Shen & Sun, 2018)
    squeeze_excite: bool = False
    # channel 0 of the input: "mfcc" as stored, or "delta": the time derivative of the
    # normalised log-mel (channel 1), 9-frame regression as in HTK, each clip scaled to
    # unit RMS; an MFCC is a rotation of the log-mel, a delta adds what it lacks
    channel0: str = "mfcc"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return cls(**{k: tuple(v) if k == "channels" else v for k, v in data.items()})


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu, Shen & Sun, 2018, "Squeeze-and-Excitation Networks"):
    each channel of ``(batch, channels, rows, frames)`` scaled by a gate in (0, 1) computed
    from every channel's mean over the map; reduction 4."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(channels, max(channels // 4, 4)), nn.ReLU(inplace=True),
                                  nn.Linear(max(channels // 4, 4), channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=(2, 3)))[:, :, None, None].to(x.dtype)


def delta(x: torch.Tensor, width: int = 9) -> torch.Tensor:
    """Time derivative of ``x`` ``(batch, 1, rows, frames)`` by the regression formula of
    HTK (Young et al., "The HTK Book", sec. 5.6): d_t = sum_n n (c_{t+n} - c_{t-n}) /
    (2 sum_n n^2), n = 1..width // 2, edges repeated; each clip then scaled to unit RMS.
    Same shape as ``x``."""
    half = width // 2
    kernel = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    kernel = (kernel / (2 * kernel.square().sum())).view(1, 1, 1, width)
    padded = torch.nn.functional.pad(x, (half, half, 0, 0), mode="replicate")
    d = torch.nn.functional.conv2d(padded, kernel)
    return d / d.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-4)


class EmotionCNN(nn.Module):
    """Input ``(batch, 2, n_mels, num_frames)`` raw features; output logits ``(batch, n_classes)``.

    After the conv blocks the map is pooled over time (mean, or mean and max), keeping
    ``n_mels / 8`` frequency rows, so the model takes any number of frames (at least 8).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(2, config.n_mels, 1))
        self.register_buffer("feature_std", torch.ones(2, config.n_mels, 1))
        if config.channel0 not in ("mfcc", "delta"):
            raise ValueError(f"channel0 {config.channel0!r}: use 'mfcc' or 'delta'")
        blocks, in_channels = [], 2
        for out_channels in config.channels:
            blocks += [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
                       *([SqueezeExcite(out_channels)] if config.squeeze_excite else []),
                       nn.MaxPool2d(2)]
            in_channels = out_channels
        self.conv = nn.Sequential(*blocks).to(memory_format=torch.channels_last)
        if config.pooling not in ("mean", "meanmax", "attention"):
            raise ValueError(f"pooling {config.pooling!r}: use 'mean', 'meanmax' or 'attention'")
        rows = config.n_mels // 2 ** len(config.channels)
        pooled = in_channels * rows * (1 if config.pooling == "mean" else 2)
        if config.pooling == "attention":  # a score per frame from each frame's features
            self.attention = nn.Sequential(nn.Conv1d(in_channels * rows, 64, 1), nn.Tanh(),
                                           nn.Conv1d(64, 1, 1))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(config.dropout),
            nn.Linear(pooled, config.hidden), nn.ReLU(inplace=True),
            nn.Dropout(config.dropout), nn.Linear(config.hidden, config.n_classes))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """``mean``, ``std``: shape ``(2, n_mels, 1)``, from training rows only."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-3))

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        x = (features.float() - self.feature_mean) / self.feature_std
        if self.config.clip_norm:
            # removes what is constant over the clip (channel, speaker timbre, level)
            x = x - x.mean(dim=3, keepdim=True)
        if self.config.channel0 == "delta":
            x = torch.cat([delta(x[:, 1:2]), x[:, 1:2]], dim=1)
        return x

    def forward(self, features: torch.Tensor, *, normalised: bool = False) -> torch.Tensor:
        return self.head(self.embed(features if normalised else self.normalise(features)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding of normalised input: what the head classifies."""
        # channels-last runs the convolutions about twice as fast on CPU (oneDNN)
        x = self.conv(x.contiguous(memory_format=torch.channels_last))  # (batch, ch, rows, frames)
        if self.config.pooling == "meanmax":
            return torch.cat([x.mean(dim=3), x.amax(dim=3)], dim=1)
        if self.config.pooling == "attention":
            return self.attentive_statistics(x.flatten(1, 2))
        return x.mean(dim=3)

    def attentive_statistics(self, h: torch.Tensor) -> torch.Tensor:
        """Attentive statistics pooling (Okabe, Koshinaka & Shinoda, 2018, "Attentive
        Statistics Pooling for Deep Speaker Embedding"): ``h`` ``(batch, features,
        frames)`` -> the attention-weighted mean and standard deviation over frames,
        ``(batch, 2 * features)``."""
        weights = torch.softmax(self.attention(h).float(), dim=2).to(h.dtype)
        mean = (h * weights).sum(dim=2)
        variance = (h.square() * weights).sum(dim=2) - mean.square()
        return torch.cat([mean, variance.clamp_min(1e-6).sqrt()], dim=1)


class Ensemble(nn.Module):
    """Members of one architecture trained from different seeds. The output is the log of
    their mean softmax: a softmax of it gives the averaged probabilities, its argmax the
    ensemble's choice, so it stands wherever an ``EmotionCNN`` does."""

    def __init__(self, members: list[EmotionCNN]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([m(features).float().softmax(dim=1) for m in self.members])
        return probabilities.mean(dim=0).clamp_min(1e-12).log()


def build(config: ModelConfig, members: int = 1) -> nn.Module:
    """An untrained ``EmotionCNN``, or an ``Ensemble`` of ``members`` of them."""
    if members == 1:
        return EmotionCNN(config)
    return Ensemble([EmotionCNN(config) for _ in range(members)])


def for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of an ``EmotionCNN`` or ``Ensemble`` with each batch norm folded
    into the convolution before it: the same outputs up to float rounding, one pass over
    memory fewer per block (about 1.3x faster on CPU)."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for cnn in fused.members if isinstance(fused, Ensemble) else [fused]:
        layers: list[nn.Module] = []
        for layer in cnn.conv:
            if isinstance(layer, nn.BatchNorm2d) and isinstance(layers[-1], nn.Conv2d):
                layers[-1] = fuse_conv_bn_eval(layers[-1], layer)
            else:
                layers.append(layer)
        cnn.conv = nn.Sequential(*layers).to(memory_format=torch.channels_last)
    return fused


def flops_per_sample(config: ModelConfig, *, num_frames: int) -> int:
    """Multiply-adds x 2 of one forward pass (convolutions and linear layers)."""
    total, rows, cols, in_channels = 0, config.n_mels, num_frames, 2
    for out_channels in config.channels:
        total += 2 * rows * cols * out_channels * in_channels * 9
        rows, cols, in_channels = rows // 2, cols // 2, out_channels
    pooled = in_channels * rows * (1 if config.pooling == "mean" else 2)
    if config.pooling == "attention":  # the frame scorer: two 1x1 convolutions per frame
        total += 2 * cols * (in_channels * rows * 64 + 64)
    total += 2 * (pooled * config.hidden + config.hidden * config.n_classes)
    return total


def logits_for(model: nn.Module, features: torch.Tensor, rows: np.ndarray, *, device,
               batch_size: int = 256) -> np.ndarray:
    """Eval-mode logits ``(len(rows), n_classes)`` for ``features[rows]`` (a tensor
    ``(n, 2, n_mels, num_frames)`` on any device), in batches of ``batch_size``."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            index = torch.as_tensor(rows[start:start + batch_size], device=features.device)
            out.append(model(features[index].to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.n_classes))


def save_model(path: Path, model: EmotionCNN, *, train_config: dict, feature_config: dict,
               info: dict, label_map: tuple[str, ...] = EMOTIONS) -> None:
    """A trained model's ``model.pt``, written atomically: the weights (normalisation
    buffers included) and, as JSON text, the model, training and feature configs, the
    label order (``label_map``, one per output) and the run's ``info``; plain tensors and
    strings, so it loads with ``weights_only=True`` (no code runs)."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "model_config": json.dumps(model.config.to_dict()),
                    "train_config": json.dumps(train_config),
                    "feature_config": json.dumps(feature_config),
                    "label_map": json.dumps(list(label_map)),
                    "info": json.dumps(info, default=str)}, tmp)


def load_model(path: Path) -> tuple[EmotionCNN, dict]:
    """``(model in eval mode on CPU, saved dict with its JSON fields decoded)`` from a
    ``save_model`` file. Raises ``TrainingError`` naming the file when it is missing."""
    if not Path(path).exists():
        raise TrainingError(f"no trained model at {path}: run 'ser train' for it first")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    meta = {k: json.loads(v) for k, v in saved.items() if k != "state_dict"}
    model = EmotionCNN(ModelConfig.from_dict(meta["model_config"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, meta
