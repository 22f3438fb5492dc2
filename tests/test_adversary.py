"""The gradient-reversal layer and the actor targets of speaker-adversarial training."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.network.model import EmotionCNN, ModelConfig
from pipeline.training.adversary import Adversarial, actor_targets, reverse_gradient


def test_reverse_gradient_is_identity_forward_and_negated_scaled_backward():
    x = torch.randn(5, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((5,), -0.5))


def test_actor_targets_number_training_actors_and_ignore_the_rest():
    actors = np.array([3, 3, 7, 9, 7, 1])
    targets, n = actor_targets(actors, train_rows=np.array([0, 1, 2, 4, 5]))
    assert n == 3  # actors 1, 3, 7
    assert targets.tolist() == [1, 1, 2, -100, 2, 0]


def test_adversarial_network_returns_emotion_and_actor_logits():
    model = EmotionCNN(ModelConfig(n_mels=16, channels=(4, 8), hidden=8))
    net = Adversarial(model, n_actors=5)
    emotion, actor = net(torch.randn(3, 2, 16, 24))
    assert emotion.shape == (3, 8) and actor.shape == (3, 5)
    net.eval()
    x = torch.randn(3, 2, 16, 24)
    assert torch.allclose(net(x)[0], model(x))  # the emotion path is the model's own


def test_the_actor_loss_reaches_the_encoder_reversed_and_the_head_unchanged():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = EmotionCNN(ModelConfig(n_mels=16, channels=(4, 8), hidden=8))
    net = Adversarial(model, n_actors=3).train()
    x, actors = torch.randn(6, 2, 16, 24), torch.tensor([0, 1, 2, 0, 1, 2])
    encoder, head = model.conv[0].weight, net.actor_head[0].weight

    def grads(actor_logits):
        net.zero_grad()
        F.cross_entropy(actor_logits, actors).backward()
        return encoder.grad.clone(), head.grad.clone()

    torch.manual_seed(1)
    reversed_encoder, reversed_head = grads(net(x)[1])
    torch.manual_seed(1)  # the same dropout draws
    plain = net.actor_head(model.embed(model.normalise(x)).flatten(1))
    plain_encoder, plain_head = grads(plain)
    assert torch.allclose(reversed_head, plain_head)
    assert torch.allclose(reversed_encoder, -plain_encoder)
    assert plain_encoder.abs().sum() > 0
