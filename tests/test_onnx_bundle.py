"""Tests of pipeline/onnx_bundle.py: the network as ONNX scores as torch does, carries
what other runtimes need in its metadata, and foreign files are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import bundle as bundles
from pipeline import ravdess
from pipeline.errors import BundleError
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):  # noqa: F811
    from pipeline.model import ModelConfig
    from pipeline.recipe import TrainConfig
    from pipeline.train import train

    train(data_dir=trained.data_dir, artifacts_dir=trained.artifacts_dir, fold=None, member=1,
          device="cpu", config=TrainConfig(epochs=2, model=ModelConfig(channels=(4, 8, 8),
                                                                       hidden=16)))
    out = tmp_path_factory.mktemp("onnx")
    paths = {}
    for members in (1, 2):
        paths[members] = (bundles.export(artifacts_dir=trained.artifacts_dir, members=members,
                                         out=out / f"m{members}.safetensors"),
                          bundles.export(artifacts_dir=trained.artifacts_dir, members=members,
                                         out=out / f"m{members}.onnx", format="onnx"))
    return paths


@pytest.mark.parametrize("members", [1, 2])
def test_onnxruntime_gives_torchs_probabilities(exported, members):
    torch_bundle, onnx_bundle = (bundles.load(path) for path in exported[members])
    assert onnx_bundle.labels == torch_bundle.labels == ravdess.EMOTIONS
    assert onnx_bundle.views == torch_bundle.views
    assert onnx_bundle.feature_config == torch_bundle.feature_config
    shape = torch_bundle.feature_config.shape
    rng = np.random.default_rng(0)
    for frames in (shape[2], 40):  # the window's frames, and another count (dynamic axis)
        windows = (20 * rng.standard_normal((5, 3, shape[0], shape[1], frames))).astype(np.float32)
        np.testing.assert_allclose(onnx_bundle.probabilities(windows),
                                   torch_bundle.probabilities(windows), atol=2e-4)


def test_predict_through_onnx_matches_the_torch_bundle(exported, trained):  # noqa: F811
    from pipeline.predict import predict_files

    files = [corpus_clip(trained, emotion=e, actor=a) for e, a in ((2, 1), (5, 3), (8, 4))]
    torch_rows = predict_files(files, bundles.load(exported[2][0]))
    onnx_rows = predict_files(files, bundles.load(exported[2][1]))
    for a, b in zip(torch_rows, onnx_rows):
        assert a.emotion == b.emotion
        assert b.probabilities == pytest.approx(a.probabilities, abs=2e-3)


def test_the_metadata_documents_the_front_end_for_other_runtimes(exported):
    import onnx

    props = {p.key: p.value for p in onnx.load(str(exported[1][1])).metadata_props}
    assert props["ser_pipeline_format"] == "ser-pipeline-onnx"
    assert json.loads(props["labels"]) == list(ravdess.EMOTIONS)
    config = json.loads(props["feature_config"])
    assert config["sample_rate"] == 16000 and "front_end" in config and "vad" in config["front_end"]
    assert json.loads(props["metadata"])["provenance"]["run"] == "final"
    assert json.loads(props["test_views"])[0] == {}


def test_a_bundle_converts_without_retraining(exported, tmp_path):
    converted = bundles.convert(exported[2][0], tmp_path / "c.onnx")
    loaded = bundles.load(converted)
    assert loaded.metadata["provenance"] == bundles.load(exported[2][0]).metadata["provenance"]


def test_foreign_onnx_and_a_missing_runtime_are_one_line(tmp_path, exported, hide_module):
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "other",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    with pytest.raises(BundleError, match="not one of this tool's.*--format onnx"):
        bundles.load(tmp_path / "other.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="junk.onnx is not a readable ONNX model"):
        bundles.load(tmp_path / "junk.onnx")
    hide_module("onnxruntime")
    with pytest.raises(BundleError, match=r"needs onnxruntime: pip install 'ser-pipeline\[onnx\]'"):
        bundles.load(exported[1][1])
