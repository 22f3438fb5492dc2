"""Tests of pipeline/inference/scorer.py: the one object evaluate and predict score with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core import labels
from pipeline.inference.scorer import Scorer
from pipeline.network.model import EmotionCNN, Ensemble, ModelConfig
from pipeline.signal.features import FeatureConfig
from pipeline.signal.views import CLEAN, TEST_VIEWS

CONFIG = ModelConfig(n_mels=64, channels=(4, 8), hidden=8)


def _model(seed: int) -> EmotionCNN:
    torch.manual_seed(seed)
    model = EmotionCNN(CONFIG)
    for module in model.modules():  # non-trivial batch-norm statistics to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return model.eval()


def _windows(n: int, views: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, views, 2, 64, 24)).astype(np.float32)


def test_probabilities_are_the_mean_softmax_over_views():
    scorer = Scorer(_model(0), FeatureConfig(), labels.EMOTIONS, TEST_VIEWS)
    windows = _windows(3, len(TEST_VIEWS))
    probabilities = scorer.probabilities(windows)
    assert probabilities.shape == (3, len(labels.EMOTIONS))
    with torch.no_grad():
        per_view = scorer.model(torch.from_numpy(windows.reshape(-1, 2, 64, 24))).softmax(1)
    expected = per_view.numpy().reshape(3, len(TEST_VIEWS), -1).mean(axis=1)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)  # folded batch norm
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_an_ensemble_scorer_averages_its_members():
    members = [_model(0), _model(1)]
    windows = _windows(4, 1)
    ensemble = Scorer(Ensemble(members).eval(), FeatureConfig(), labels.EMOTIONS)
    singles = [Scorer(m, FeatureConfig(), labels.EMOTIONS).probabilities(windows)
               for m in members]
    np.testing.assert_allclose(ensemble.probabilities(windows), np.mean(singles, axis=0),
                               atol=1e-5)


def test_a_batch_larger_than_one_forward_pass_scores_as_the_parts_do():
    scorer = Scorer(_model(0), FeatureConfig(), labels.EMOTIONS)
    windows = _windows(150, 1)  # more than FORWARD_BATCH windows
    whole = scorer.probabilities(windows)
    parts = np.concatenate([scorer.probabilities(windows[:70]), scorer.probabilities(windows[70:])])
    np.testing.assert_allclose(whole, parts, atol=1e-6)


@pytest.mark.parametrize("members", [1, 2])
def test_a_scorer_from_runs_is_the_runs_members(tmp_path, members):
    from pipeline.core import layout
    from pipeline.inference.scorer import from_run
    from pipeline.network.model import save_model
    from pipeline.network.recipe import TrainConfig

    for member, run in enumerate(layout.member_runs("fold-0", members)):
        save_model(layout.model_file(tmp_path, run), _model(member),
                   train_config=TrainConfig(model=CONFIG, seed=member).to_dict(),
                   feature_config=FeatureConfig().to_dict(),
                   info={"features_key": "f", "seed": member})
    scorer = from_run(tmp_path, "fold-0", members, CLEAN)
    assert scorer.views == CLEAN and scorer.labels == labels.EMOTIONS
    assert scorer.feature_config == FeatureConfig()
    assert [s["info"]["seed"] for s in scorer.saved] == list(range(members))
    assert isinstance(scorer.model, Ensemble) == (members > 1)


def test_the_numpy_softmax_is_torchs():
    import torch

    from pipeline.inference.scorer import softmax

    logits = (30 * np.random.default_rng(0).standard_normal((64, 8))).astype(np.float32)
    logits[0] = [1e4, -1e4, 0, 0, 0, 0, 0, 0]  # far beyond exp's range: no overflow
    np.testing.assert_allclose(softmax(logits), torch.softmax(torch.from_numpy(logits), 1).numpy(),
                               atol=1e-7)
    assert np.isfinite(softmax(logits)).all()
