"""The CNN: output shapes, normalisation inside the model, the FLOP count."""

from __future__ import annotations

import dataclasses

import io
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.network.model import EmotionCNN, ModelConfig, flops_per_sample

SMALL = ModelConfig(n_mels=16, channels=(8, 16, 16), hidden=32)


@pytest.mark.parametrize("num_frames", [8, 13, 32, 100, 188])
def test_output_is_one_logit_per_emotion_for_any_frame_count(num_frames):
    torch.manual_seed(0)
    model = EmotionCNN(SMALL).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 2, SMALL.n_mels, num_frames))
    assert logits.shape == (3, 8)
    assert torch.isfinite(logits).all()


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 4), n_mels=st.sampled_from([8, 16, 20, 40]),
       num_frames=st.integers(8, 64), depth=st.integers(1, 3))
def test_output_shape_property(batch, n_mels, num_frames, depth):
    config = ModelConfig(n_mels=n_mels, channels=(4, 8, 8)[:depth], hidden=8, n_classes=5)
    model = EmotionCNN(config).eval()
    with torch.no_grad():
        logits = model(torch.randn(batch, 2, n_mels, num_frames))
    assert logits.shape == (batch, 5)


def test_float16_input_is_accepted():
    model = EmotionCNN(SMALL).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 2, 16, 32).half())
    assert logits.dtype == torch.float32 and logits.shape == (2, 8)


def test_normalisation_buffers_are_saved_with_the_weights():
    model = EmotionCNN(SMALL)
    mean = torch.randn(2, SMALL.n_mels, 1)
    std = torch.rand(2, SMALL.n_mels, 1) + 0.5
    model.set_normalisation(mean, std)
    state = model.state_dict()
    assert torch.equal(state["feature_mean"], mean)
    assert torch.equal(state["feature_std"], std)

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = EmotionCNN(SMALL)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.feature_mean, mean)
    assert torch.equal(restored.feature_std, std)
    model.eval()
    restored.eval()
    x = torch.randn(2, 2, SMALL.n_mels, 24)
    with torch.no_grad():
        assert torch.equal(model(x), restored(x))


def test_normalise_uses_the_statistics_and_floors_the_std():
    model = EmotionCNN(dataclasses.replace(SMALL, clip_norm=False))
    mean = torch.full((2, SMALL.n_mels, 1), 3.0)
    std = torch.full((2, SMALL.n_mels, 1), 2.0)
    std[0, 0, 0] = 0.0  # a constant mel row must not divide by zero
    model.set_normalisation(mean, std)
    x = torch.full((1, 2, SMALL.n_mels, 4), 5.0)
    out = model.normalise(x)
    assert torch.isfinite(out).all()
    assert out[0, 1, 5, 0].item() == pytest.approx(1.0)
    assert model.feature_std[0, 0, 0].item() == pytest.approx(1e-3)


def test_clip_norm_cancels_a_fixed_colouring_of_each_mel_row():
    """Cepstral mean normalisation: a channel that adds a constant (dB) to each mel row
    over the whole clip, as a microphone's response does to a log-mel, leaves the
    normalised input unchanged; every row then has zero mean over time."""
    torch.manual_seed(1)
    model = EmotionCNN(SMALL)
    assert SMALL.clip_norm  # the recipe's default
    model.set_normalisation(torch.randn(2, SMALL.n_mels, 1), torch.rand(2, SMALL.n_mels, 1) + 0.5)
    x = torch.randn(3, 2, SMALL.n_mels, 20) * 10
    colouring = torch.randn(1, 2, SMALL.n_mels, 1) * 6
    out = model.normalise(x)
    torch.testing.assert_close(model.normalise(x + colouring), out, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.mean(dim=3), torch.zeros(3, 2, SMALL.n_mels), atol=1e-5, rtol=0)


def test_raw_and_pre_normalised_inputs_agree():
    torch.manual_seed(0)
    model = EmotionCNN(SMALL).eval()
    model.set_normalisation(torch.randn(2, 16, 1), torch.rand(2, 16, 1) + 0.5)
    x = torch.randn(2, 2, 16, 32) * 10
    with torch.no_grad():
        assert torch.allclose(model(x), model(model.normalise(x), normalised=True))


def test_config_round_trips_through_a_dict():
    config = ModelConfig(n_mels=16, channels=(8, 16), hidden=12, dropout=0.1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_flops_are_positive_and_grow_with_channels_frames_and_mels():
    base = flops_per_sample(SMALL, num_frames=32)
    assert base > 0
    wider = ModelConfig(n_mels=16, channels=(16, 32, 32), hidden=32)
    assert flops_per_sample(wider, num_frames=32) > base
    assert flops_per_sample(SMALL, num_frames=64) > base
    assert flops_per_sample(ModelConfig(n_mels=32, channels=(8, 16, 16), hidden=32),
                            num_frames=32) > base


@pytest.mark.parametrize("pooling", ["meanmax", "attention"])
def test_flops_match_the_layers(pooling):
    """Count multiply-adds from the modules' real output sizes."""
    config = ModelConfig(n_mels=16, channels=(4, 8), hidden=10, n_classes=8, pooling=pooling)
    model = EmotionCNN(config).eval()
    counted = []

    def conv_hook(module, inputs, output):
        kernel = 9 if isinstance(module, torch.nn.Conv2d) else 1  # the 1x1 frame scorer
        counted.append(2 * output[0].numel() * module.in_channels * kernel)

    def linear_hook(module, inputs, output):
        counted.append(2 * module.in_features * module.out_features)

    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv1d)):
            module.register_forward_hook(conv_hook)
        elif isinstance(module, torch.nn.Linear):
            module.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(torch.randn(1, 2, 16, 40))
    assert flops_per_sample(config, num_frames=40) == sum(counted)


@pytest.mark.parametrize("pooling", ["mean", "meanmax"])
def test_every_pooling_gives_logits(pooling):
    model = EmotionCNN(ModelConfig(n_mels=16, channels=(4, 8, 8), hidden=8, pooling=pooling))
    assert model(torch.randn(3, 2, 16, 40)).shape == (3, 8)
    assert flops_per_sample(model.config, num_frames=40) > 0


def test_ensemble_returns_the_log_of_the_members_mean_probabilities():
    from pipeline.network.model import Ensemble, build

    torch.manual_seed(0)
    members = [EmotionCNN(SMALL).eval() for _ in range(3)]
    ensemble = Ensemble(members).eval()
    x = torch.randn(5, 2, SMALL.n_mels, 20)
    with torch.no_grad():
        mean = torch.stack([m(x).softmax(dim=1) for m in members]).mean(dim=0)
        out = ensemble(x)
    assert torch.allclose(out.softmax(dim=1), mean, atol=1e-6)
    assert torch.equal(out.argmax(dim=1), mean.argmax(dim=1))
    assert ensemble.config == SMALL
    assert type(build(SMALL)) is EmotionCNN
    restored = build(SMALL, 3)
    restored.load_state_dict(ensemble.state_dict())  # members.<i>.<name> keys
    with torch.no_grad():
        assert torch.allclose(restored.eval()(x), out)


@pytest.mark.parametrize("members", [1, 2])
def test_inference_copy_folds_batch_norm_and_gives_the_same_outputs(members):
    from pipeline.network.model import build, for_inference

    torch.manual_seed(1)
    model = build(SMALL, members)
    with torch.no_grad():  # trained-looking batch-norm statistics, not the identity
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.uniform_(-1, 1)
                layer.running_var.uniform_(0.5, 2)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.5, 0.5)
    model.eval()
    fused = for_inference(model)
    x = torch.randn(6, 2, SMALL.n_mels, 24)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # untouched


def test_attentive_statistics_pooling_weights_frames_and_takes_any_length():
    config = ModelConfig(n_mels=16, channels=(4, 8), hidden=8, pooling="attention")
    torch.manual_seed(0)
    model = EmotionCNN(config).eval()
    for frames in (8, 30, 97):
        assert model(torch.randn(2, 2, 16, frames)).shape == (2, config.n_classes)
    h = torch.randn(3, 32, 10)
    pooled = model.attentive_statistics(h)
    assert pooled.shape == (3, 64)
    with torch.no_grad():
        model.attention[-1].weight.zero_()  # equal scores: the plain mean and std
        model.attention[-1].bias.zero_()
        pooled = model.attentive_statistics(h)
    torch.testing.assert_close(pooled[:, :32], h.mean(dim=2))
    torch.testing.assert_close(pooled[:, 32:], h.std(dim=2, unbiased=False), atol=1e-4, rtol=1e-4)
    assert flops_per_sample(config, num_frames=40) > flops_per_sample(
        ModelConfig(n_mels=16, channels=(4, 8), hidden=8, pooling="meanmax"), num_frames=40)


def test_delta_matches_the_htk_regression_and_is_scaled_per_clip():
    from pipeline.network.model import delta

    ramp = torch.arange(20.0).view(1, 1, 1, 20).repeat(2, 1, 3, 1)
    ramp[1] *= 5  # a steeper clip: the same delta after scaling
    d = delta(ramp)
    torch.testing.assert_close(d[0], d[1])
    inside = d[0, 0, 0, 4:16]
    torch.testing.assert_close(inside, inside[:1].expand(12))  # constant slope inside
    assert d[0, 0, 0, 0] < inside[0]  # edges repeated: the slope fades there
    torch.testing.assert_close(d.square().mean(dim=(1, 2, 3)), torch.ones(2))


def test_delta_input_replaces_channel_0_by_the_log_mel_derivative():
    model = EmotionCNN(ModelConfig(n_mels=16, channels=(4, 8), hidden=8, channel0="delta"))
    x = torch.randn(2, 2, 16, 30)
    other = x.clone()
    other[:, 0] = torch.randn(2, 16, 30)  # the stored MFCC channel is not used
    torch.testing.assert_close(model.normalise(x), model.normalise(other))
    with pytest.raises(ValueError, match="'mfcc' or 'delta'"):
        EmotionCNN(ModelConfig(n_mels=16, channel0="pitch"))


@pytest.mark.parametrize("members", [1, 2])
def test_squeeze_excite_gates_channels_and_survives_batch_norm_folding(members):
    from pipeline.network.model import SqueezeExcite, build, for_inference

    config = dataclasses.replace(SMALL, squeeze_excite=True)
    model = build(config, members).eval()
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 3 * members
    x = torch.randn(4, 2, SMALL.n_mels, 24)
    with torch.no_grad():
        torch.testing.assert_close(for_inference(model)(x), model(x), atol=1e-5, rtol=1e-4)
    gate = SqueezeExcite(8)
    h = torch.randn(2, 8, 4, 6)
    scale = gate(h) / h
    assert ((scale > 0) & (scale < 1)).all()
