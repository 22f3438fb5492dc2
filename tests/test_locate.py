"""Tests of pipeline/inference/locate.py: 'shipped' scores the shipped model's ONNX form
where onnxruntime is installed, that form is the shipped bundle's conversion (the same
metadata and probabilities), and the torch path and the ONNX path agree on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_RAVDESS
from pipeline.inference import bundle as bundles, locate


def test_shipped_is_the_onnx_form_where_onnxruntime_is_installed(monkeypatch):
    assert locate.resolve("shipped") == locate.SHIPPED_ONNX
    assert locate.resolve(None) == locate.SHIPPED_ONNX
    assert locate.resolve("shipped", onnx=False) == locate.SHIPPED  # what export converts
    real = locate.importlib.util.find_spec
    monkeypatch.setattr(locate.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert locate.resolve("shipped") == locate.SHIPPED


def test_the_onnx_form_is_the_shipped_bundle_converted():
    pytest.importorskip("torch", reason="the torch path needs the train extra")
    torch_path, onnx_path = bundles.load(locate.SHIPPED), bundles.load(locate.SHIPPED_ONNX)
    assert onnx_path.metadata == torch_path.metadata
    assert onnx_path.labels == torch_path.labels and onnx_path.views == torch_path.views
    assert onnx_path.feature_config == torch_path.feature_config
    assert onnx_path.temperature == torch_path.temperature
    config = torch_path.feature_config
    windows = np.random.default_rng(0).normal(
        size=(6, len(torch_path.views), 2, config.n_mels, config.num_frames)).astype(np.float32)
    windows[:, :, 1] = windows[:, :, 1] * 20 - 40  # log-mel in dB
    assert np.abs(onnx_path.probabilities(windows)
                  - torch_path.probabilities(windows)).max() < 1e-5


@pytest.mark.realdata
@pytest.mark.slow
def test_both_paths_agree_on_real_speech():
    """48 RAVDESS clips (every 25th, all 20 actors), every
    test-time view: the torch path and the ONNX path within 1e-4, the same verdicts."""
    pytest.importorskip("torch", reason="the torch path needs the train extra")
    from pipeline.inference.predict import predict_files

    clips = sorted(SHARED_RAVDESS.glob("Actor_*/*.flac"))[::25]
    assert len(clips) >= 40
    by_path = [predict_files(clips, bundles.load(path), jobs=2)
               for path in (locate.SHIPPED, locate.SHIPPED_ONNX)]
    scored = 0
    for torch_result, onnx_result in zip(*by_path):
        assert torch_result.error == onnx_result.error
        if torch_result.error:
            continue
        assert torch_result.emotion == onnx_result.emotion
        gap = max(abs(torch_result.probabilities[k] - onnx_result.probabilities[k])
                  for k in torch_result.probabilities)
        assert gap < 1e-4, (torch_result.path, gap)
        scored += 1
    assert scored >= 40
