"""``StackedCNN``: M models as one network give each model's own outputs, gradients
and state (issue 32). On the CPU, in float32, each tensor within 1e-4 of the largest
magnitude among the model's values of that kind (outputs, gradients, weights): the grouped
convolution and batched products sum in another order than the models alone, and a
bias the softmax cannot see gets a gradient of pure rounding (~1e-7)."""

from __future__ import annotations

import pytest
import torch

from pipeline.network.model import EmotionCNN, ModelConfig
from pipeline.training.stack import (
    StackedCNN,
    stack_optimiser_state,
    unstack_optimiser_state,
    unsupported,
)

TOLERANCE = 1e-4


def _close(actual, expected, scale, what=""):
    """``actual`` equals ``expected`` within ``TOLERANCE * scale``."""
    error = float((actual - expected).detach().abs().max())
    scale = float(scale.detach()) if torch.is_tensor(scale) else float(scale)
    assert error <= TOLERANCE * scale, f"{what}: off by {error:.3g} at scale {scale:.3g}"


def _grad_scale(model) -> float:
    return max(float(p.grad.abs().max()) for p in model.parameters())


def _models(pooling: str, count: int = 3, dropout: float = 0.1) -> list[EmotionCNN]:
    config = ModelConfig(n_mels=16, channels=(4, 8, 8), hidden=12, pooling=pooling,
                         dropout=dropout)
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(EmotionCNN(config))
    return models


def _inputs(count: int, batch: int = 5) -> torch.Tensor:
    return torch.randn(batch, count, 2, 16, 24, generator=torch.Generator().manual_seed(9))


@pytest.mark.parametrize("pooling", ["mean", "meanmax", "attention"])
def test_stacked_forward_and_gradients_equal_each_model_alone(pooling):
    models = _models(pooling)
    stack = StackedCNN(models)
    x = _inputs(len(models))
    for model in models:
        model.eval()
    stack.eval()
    logits = stack(x)
    assert logits.shape == (5, 3, 8)
    for m, model in enumerate(models):
        alone = model(x[:, m], normalised=True)
        _close(logits[:, m], alone, alone.abs().max(), "eval logits")
    # training mode: batch statistics, the running ones updated, dropout masks applied
    stack.train()
    generators = [torch.Generator().manual_seed(100 + m) for m in range(3)]
    masks = stack.dropout_masks(5, generators)
    stacked = stack(x, masks)
    stacked.sum().backward()
    for m, model in enumerate(models):
        model.train()
        torch.manual_seed(100 + m)  # dropout draws from the global generator alone
        alone = model(x[:, m], normalised=True)
        alone.sum().backward()
        _close(stacked[:, m], alone, alone.abs().max(), "training logits")
        for name, param in model.named_parameters():
            _close(stack.weight(name).grad[m], param.grad, _grad_scale(model), name)
    copies = _models(pooling)
    stack.norm_steps += 1
    stack.unstack_into(copies)
    for copy, model in zip(copies, models):
        for (name, mine), theirs in zip(copy.named_buffers(), model.buffers()):
            _close(mine.float(), theirs.float(), theirs.abs().max().clamp_min(1), name)


def test_without_dropout_no_masks_are_drawn():
    stack = StackedCNN(_models("attention", dropout=0.0))
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    assert stack.dropout_masks(4, [generator] * 3) is None
    assert torch.equal(generator.get_state(), before)


def test_clipping_each_model_alone():
    models = _models("mean")
    stack = StackedCNN(models).eval()
    x = _inputs(3)
    (stack(x) * torch.tensor([1.0, 100.0, 0.001])[None, :, None]).sum().backward()
    norms = stack.clip_grad_norms_(1.0)
    for m, model in enumerate(models):
        model.eval()
        (model(x[:, m], normalised=True) * [1.0, 100.0, 0.001][m]).sum().backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        _close(norms[m], norm, norm, "norm")
        for name, param in model.named_parameters():
            _close(stack.weight(name).grad[m], param.grad, _grad_scale(model), name)


def test_one_optimiser_over_the_stack_steps_like_each_models_own():
    models = _models("meanmax")
    optimisers = [torch.optim.AdamW(m.parameters(), lr=0.01) for m in models]
    x = _inputs(3)
    for model, optimiser in zip(models, optimisers):  # a step, so there is state
        model.eval()
        model(x[:, 0], normalised=True).square().sum().backward()
        optimiser.step()
    stack = StackedCNN(models)
    stack.eval()
    together = torch.optim.AdamW(stack.parameters(), lr=0.01)
    together.load_state_dict(stack_optimiser_state(optimisers))
    stack(x).square().sum().backward()
    together.step()
    # each model alone steps on the stack's own gradients: Adam divides by the root of the
    # gradient's second moment, which magnifies the forward's rounding where a gradient
    # is near zero, so the forward's rounding is kept out of this comparison
    for m, (model, optimiser) in enumerate(zip(models, optimisers)):
        for name, param in model.named_parameters():
            param.grad = stack.weight(name).grad[m].clone()
        optimiser.step()
    copies = _models("meanmax")
    copy_optimisers = [torch.optim.AdamW(m.parameters(), lr=0.01) for m in copies]
    stack.unstack_into(copies)
    unstack_optimiser_state(together.state_dict(), copy_optimisers)
    for copy, model, mine, theirs in zip(copies, models, copy_optimisers, optimisers):
        for (name, a), b in zip(copy.named_parameters(), model.parameters()):
            _close(a, b, b.abs().max(), name)
        for key, entry in theirs.state_dict()["state"].items():
            for name, value in entry.items():
                value = torch.as_tensor(value, dtype=torch.float32)
                _close(torch.as_tensor(mine.state_dict()["state"][key][name]), value,
                       value.abs().max(), f"state {key} {name}")


def test_squeeze_excite_is_refused_with_the_reason():
    torch.manual_seed(0)
    model = EmotionCNN(ModelConfig(n_mels=16, channels=(4, 8, 8), squeeze_excite=True))
    assert "squeeze" in unsupported(model.config)
    with pytest.raises(ValueError, match="squeeze"):
        StackedCNN([model])


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_under_bf16_autocast_the_stack_computes_in_the_lone_models_dtype(pooling):
    models = _models(pooling)
    stack = StackedCNN(models).eval()
    x = _inputs(3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        stacked = stack(x)
        alone = models[0].eval()(x[:, 0], normalised=True)
    assert stacked.dtype == alone.dtype == torch.bfloat16
