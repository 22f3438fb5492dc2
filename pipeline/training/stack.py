"""Several ``EmotionCNN`` models of one architecture as one network, so that one training
step does the work of all of them: each convolution is grouped per model (``groups=M``),
each batch norm runs over the models' channels side by side, and the attention and
fully connected layers are batched matrix products over a leading model axis. Model m
sees only its own input, its own weights and its own dropout masks, so its outputs,
gradients and updates are those of training it alone, up to float rounding (the grouped
convolution and batched products sum in another order).

Parameters keep ``EmotionCNN``'s names and order, each with a leading axis of M: an
optimiser over the stack has the same state, entry for entry, as the M optimisers of the
models alone, and ``stack_from`` / ``unstack_into`` move weights, batch-norm statistics,
optimiser and schedule state between the two forms (what a run's checkpoint holds is
always the single model's form). Used by ``pipeline.training.together``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.network.model import EmotionCNN, ModelConfig


def unsupported(config: ModelConfig) -> str | None:
    """Why models of ``config`` cannot be stacked, or None when they can."""
    if config.squeeze_excite:
        return "squeeze-and-excitation blocks are not stacked"
    return None


class StackedCNN(nn.Module):
    """M models as one. Input ``(batch, M, 2, n_mels, num_frames)``: model m's normalised
    batch at ``[:, m]``; output logits ``(batch, M, n_classes)``. ``masks``: each dropout
    layer's mask for every model (``dropout_masks``), or None when dropout is off or in
    eval mode."""

    def __init__(self, models: list[EmotionCNN]):
        super().__init__()
        template = models[0]
        reason = unsupported(template.config)
        if reason:
            raise ValueError(reason)
        self.config, self.count = template.config, len(models)
        self.names = [name for name, _ in template.named_parameters()]
        self.weights = nn.ParameterList(
            nn.Parameter(_stacked(models, name).clone()) for name in self.names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.layers = [(f"conv.{i}", layer) for i, layer in enumerate(template.conv)]
        self.norms = [name for name, layer in self.layers if isinstance(layer, nn.BatchNorm2d)]
        for name in self.norms:
            for stat in ("running_mean", "running_var"):
                self.register_buffer(_buffer(name, stat),
                                     _stacked(models, f"{name}.{stat}").clone())
        # batch-norm steps taken, kept by the caller (one per training step) outside the
        # forward, so that a compiled forward has no Python state to guard on
        self.norm_steps = self._norm_steps(template)

    def _norm_steps(self, model: EmotionCNN) -> int:
        return int(model.get_buffer(f"{self.norms[0]}.num_batches_tracked")) if self.norms \
            else 0

    def weight(self, name: str) -> torch.Tensor:
        return self.weights[self.index[name]]

    def dropout_masks(self, batch: int, generators: list, *, dtype=None):
        """The scaled dropout masks of one step: ``[(batch, M, width)]`` per dropout layer
        of the head, model m's drawn from ``generators[m]`` as ``torch.nn.functional.dropout``
        draws from the global generator on the CPU (Bernoulli(1 - p) / (1 - p), first
        layer first), so a model's masks are those of training it alone with that seed.
        None when the dropout rate is 0 (dropout then draws nothing)."""
        p = self.config.dropout
        if p == 0:
            return None
        widths = (self.weight("head.2.weight").shape[2], self.weight("head.5.weight").shape[2])
        device, dtype = self.weights[0].device, dtype or torch.get_default_dtype()
        per_model = [[torch.empty(batch, width, device=device, dtype=dtype).bernoulli_(
            1 - p, generator=g).div_(1 - p) for width in widths] for g in generators]
        return [torch.stack([masks[layer] for masks in per_model], 1) for layer in range(2)]

    def forward(self, x: torch.Tensor, masks=None) -> torch.Tensor:
        batch, count = x.shape[:2]
        h = x.flatten(1, 2).contiguous(memory_format=torch.channels_last)
        for name, layer in self.layers:
            if isinstance(layer, nn.Conv2d):
                w = self.weight(f"{name}.weight")
                h = F.conv2d(h, w.flatten(0, 1), padding=layer.padding, groups=count)
            elif isinstance(layer, nn.BatchNorm2d):
                h = self._batch_norm(h, name, layer)
            elif isinstance(layer, nn.ReLU):
                h = F.relu(h)
            else:
                h = F.max_pool2d(h, layer.kernel_size)
        h = h.view(batch, count, -1, *h.shape[2:])  # (batch, M, channels, rows, frames)
        return self._head(self._pool(h), masks)

    def _batch_norm(self, h, name: str, layer: nn.BatchNorm2d):
        mean, var = (getattr(self, _buffer(name, stat)) for stat in ("running_mean",
                                                                       "running_var"))
        return F.batch_norm(h, mean.view(-1), var.view(-1),
                            self.weight(f"{name}.weight").flatten(),
                            self.weight(f"{name}.bias").flatten(), self.training,
                            layer.momentum, layer.eps)

    def _pool(self, h):
        """``EmotionCNN.embed``'s pooling per model: ``(batch, M, pooled)``."""
        if self.config.pooling == "meanmax":
            return torch.cat([h.mean(dim=4), h.amax(dim=4)], dim=2).flatten(2)
        if self.config.pooling == "mean":
            return h.mean(dim=4).flatten(2)
        h = h.flatten(2, 3)  # (batch, M, features, frames)
        scores = torch.tanh(_linear(h, self.weight("attention.0.weight"),
                                    self.weight("attention.0.bias"), dim=2))
        scores = _linear(scores, self.weight("attention.2.weight"),
                         self.weight("attention.2.bias"), dim=2)
        weights = torch.softmax(scores.float(), dim=3).to(h.dtype)
        mean = (h * weights).sum(dim=3)
        variance = (h.square() * weights).sum(dim=3) - mean.square()
        return torch.cat([mean, variance.clamp_min(1e-6).sqrt()], dim=2)

    def _head(self, h, masks):
        for layer, (linear, last) in enumerate((("head.2", False), ("head.5", True))):
            if masks is not None and self.training:
                h = h * masks[layer].to(h.dtype)
            h = _linear(h, self.weight(f"{linear}.weight"), self.weight(f"{linear}.bias"))
            if not last:
                h = F.relu(h)
        return h

    def clip_grad_norms_(self, max_norm: float) -> torch.Tensor:
        """Each model's gradients rescaled to an L2 norm of at most ``max_norm``, as
        ``torch.nn.utils.clip_grad_norm_`` does for one model; returns each model's norm
        before clipping, ``(M,)``, without reading it back to the host."""
        grads = [w.grad for w in self.weights if w.grad is not None]
        norms = torch.stack([g.float().reshape(self.count, -1).square().sum(1)
                             for g in grads]).sum(0).sqrt()
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
        return norms

    def load_from(self, models: list[EmotionCNN]) -> None:
        """Copy the weights and batch-norm statistics of ``models`` (as many, of this
        architecture) into the stack in place (a compiled stack stays valid)."""
        with torch.no_grad():
            for name, stacked in zip(self.names, self.weights):
                stacked.copy_(_stacked(models, name))
            for name in self.norms:
                for stat in ("running_mean", "running_var"):
                    getattr(self, _buffer(name, stat)).copy_(_stacked(models, f"{name}.{stat}"))
        self.norm_steps = self._norm_steps(models[0])

    def unstack_into(self, models: list[EmotionCNN]) -> None:
        """Copy each model's weights and batch-norm statistics back into ``models``."""
        with torch.no_grad():
            for m, model in enumerate(models):
                params = dict(model.named_parameters())
                for name, stacked in zip(self.names, self.weights):
                    params[name].copy_(stacked[m])
                buffers = dict(model.named_buffers())
                for name in self.norms:
                    for stat in ("running_mean", "running_var"):
                        buffers[f"{name}.{stat}"].copy_(getattr(self, _buffer(name, stat))[m])
                    buffers[f"{name}.num_batches_tracked"].fill_(self.norm_steps)


def _stacked(models: list[EmotionCNN], name: str) -> torch.Tensor:
    """Parameter or buffer ``name`` of every model, stacked along a new first axis."""
    def member(model):
        try:
            return model.get_parameter(name)
        except AttributeError:
            return model.get_buffer(name)

    return torch.stack([member(model) for model in models]).detach()


def _buffer(name: str, stat: str) -> str:
    return f"{name.replace('.', '_')}_{stat}"


def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, dim: int = -1):
    """Model m's ``Linear`` (or 1x1 ``Conv1d``, weight ``(M, out, in[, 1])``) applied to
    ``h[:, m]`` along ``dim`` (2: features before frames; -1: the last axis)."""
    weight = weight.flatten(2) if weight.dim() == 4 else weight
    if dim == 2:  # (batch, M, in, frames) -> (batch, M, out, frames)
        out = torch.einsum("bmif,moi->bmof", h, weight)  # bf16 under autocast, as Linear's
        return out + bias[None, :, :, None].to(out.dtype)
    out = torch.einsum("bmi,moi->bmo", h, weight)
    return out + bias[None].to(out.dtype)


def stack_optimiser_state(optimisers: list) -> dict:
    """One optimiser state dict for a stack, from the state dicts of M optimisers of the
    same kind over the M models (each tensor entry stacked along a new first axis; the
    step count and the parameter groups, the same for all, taken from the first)."""
    states = [o.state_dict() for o in optimisers]
    first = states[0]
    stacked = {}
    for key, entry in first["state"].items():
        stacked[key] = {name: (torch.stack([s["state"][key][name] for s in states])
                               if name != "step" and torch.is_tensor(value) else _copy(value))
                        for name, value in entry.items()}
    return {"state": stacked, "param_groups": first["param_groups"]}


def unstack_optimiser_state(state: dict, optimisers: list) -> None:
    """Load model m's share of a stack's optimiser ``state`` into ``optimisers[m]``."""
    for m, optimiser in enumerate(optimisers):
        optimiser.load_state_dict({
            "state": {key: {name: (value[m].clone() if name != "step" and torch.is_tensor(value)
                                   else _copy(value)) for name, value in entry.items()}
                      for key, entry in state["state"].items()},
            "param_groups": state["param_groups"]})


def _copy(value):
    """A step count's own copy, on the CPU: torch's optimisers load a tensor step count
    as it is and count it up in place, so two optimisers must never share one; and a
    non-capturable AdamW reads a step count on a GPU back to the host at every step."""
    return value.detach().to("cpu", copy=True) if torch.is_tensor(value) else value
