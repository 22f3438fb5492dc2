"""Tests of pipeline/inference/onnx_bundle.py: the network as ONNX scores as torch does, carries
what other runtimes need in its metadata, and foreign files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import labels
from pipeline.core.errors import BundleError
from pipeline.inference import bundle as bundles
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):  # noqa: F811
    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.train import train

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
    assert onnx_bundle.labels == torch_bundle.labels == labels.EMOTIONS
    assert onnx_bundle.views == torch_bundle.views
    assert onnx_bundle.feature_config == torch_bundle.feature_config
    shape = torch_bundle.feature_config.shape
    rng = np.random.default_rng(0)
    for frames in (shape[2], 40):  # the window's frames, and another count (dynamic axis)
        windows = (20 * rng.standard_normal((5, 3, shape[0], shape[1], frames))).astype(np.float32)
        np.testing.assert_allclose(onnx_bundle.probabilities(windows),
                                   torch_bundle.probabilities(windows), atol=2e-4)


def test_predict_through_onnx_matches_the_torch_bundle(exported, trained):  # noqa: F811
    from pipeline.inference.predict import predict_files

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
    assert json.loads(props["labels"]) == list(labels.EMOTIONS)
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
    with pytest.raises(BundleError, match=r"needs onnxruntime: pip install onnxruntime"):
        bundles.load(exported[1][1])


# --- the checksum: a damaged or edited file is refused, an intact one scores ---------------


def _props(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _refused(path) -> str:
    with pytest.raises(BundleError) as refusal:
        bundles.load(path)
    message = str(refusal.value)
    assert "\n" not in message and str(path) in message
    return message


def _windows(scorer, frames: int = 40) -> np.ndarray:
    shape = scorer.feature_config.shape
    rng = np.random.default_rng(1)
    return (20 * rng.standard_normal((4, 2, shape[0], shape[1], frames))).astype(np.float32)


def test_a_weight_overwritten_inside_the_file_is_refused(exported, tmp_path):
    import shutil

    import onnx
    from onnx import numpy_helper

    intact = shutil.copyfile(exported[1][1], tmp_path / "intact.onnx")
    data = intact.read_bytes()
    weight = max(onnx.load(str(intact)).graph.initializer, key=lambda t: len(t.raw_data))
    assert len(weight.raw_data) >= 256 and data.count(weight.raw_data) == 1
    offset = data.find(weight.raw_data) + len(weight.raw_data) // 2  # inside the tensor
    values = numpy_helper.to_array(weight).ravel()
    middle = values.size // 2 - 4
    stomped = (values[middle:middle + 8] + 3.0).astype(values.dtype).tobytes()
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(data[:offset] + stomped + data[offset + len(stomped):])
    assert damaged.stat().st_size == intact.stat().st_size

    def raw_scores(path):  # onnxruntime alone: the damage changes the outputs
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        windows = _windows(bundles.load(intact))[:, 0]
        return session.run(None, {session.get_inputs()[0].name: windows})[0]
    assert not np.allclose(raw_scores(damaged), raw_scores(intact), atol=1e-4)

    message = _refused(damaged)
    assert "is corrupt: its weights, graph or metadata do not match the checksum" in message
    assert "re-export it with 'ser export --format onnx'" in message

    scorer, original = bundles.load(intact), bundles.load(exported[1][1])
    np.testing.assert_array_equal(scorer.probabilities(_windows(scorer)),
                                  original.probabilities(_windows(scorer)))
    assert scorer.fingerprint == original.fingerprint


def test_the_checksum_covers_the_metadata_and_sits_where_the_loader_finds_it(exported, tmp_path):
    import hashlib

    from onnx import StringStringEntryProto
    from pipeline.inference import onnx_bundle

    data = exported[1][1].read_bytes()
    stored = _props(exported[1][1])["checksum"]
    assert len(stored) == 64 and int(stored, 16) >= 0
    entry = StringStringEntryProto(key="checksum", value=stored).SerializeToString()
    assert data.count(entry) == 1 and entry.startswith(onnx_bundle._CHECKSUM_PREFIX)
    zeroed = data.replace(entry, StringStringEntryProto(key="checksum",
                                                        value="0" * 64).SerializeToString())
    assert hashlib.sha256(zeroed).hexdigest() == stored
    names = json.dumps(list(labels.EMOTIONS)).encode()  # "labels", and in "metadata"
    assert names in data
    relabelled = tmp_path / "relabelled.onnx"  # two classes swapped in place, same size
    relabelled.write_bytes(data.replace(names, names.replace(b"neutral", b"NEUTRAL")))
    assert _props(relabelled)["labels"] != _props(exported[1][1])["labels"]
    assert "is corrupt" in _refused(relabelled)


def test_an_onnx_model_without_a_checksum_is_refused_with_the_re_export_fix(exported, tmp_path):
    import onnx

    for version, name in (("1", "format1.onnx"), ("2", "stripped.onnx")):
        proto = onnx.load(str(exported[1][1]))
        kept = [p for p in proto.metadata_props if p.key != "checksum"]
        del proto.metadata_props[:]
        for prop in kept:
            proto.metadata_props.add(key=prop.key,
                                     value=version if prop.key == "format_version" else prop.value)
        onnx.save(proto, str(tmp_path / name))
    message = _refused(tmp_path / "format1.onnx")
    assert "is a format-1 ONNX model (written by version" in message
    assert "without a checksum" in message and "reads format 2" in message
    assert "re-export it with 'ser export --format onnx'" in message
    assert "is corrupt" in _refused(tmp_path / "stripped.onnx")  # version 2 lacks no checksum


def test_an_onnx_bundle_is_scored_without_importing_torch(exported, trained):  # noqa: F811
    """``ser predict --bundle X.onnx``: the detector, the features and the network all run
    without torch (issue 31), and the probabilities are the torch bundle's."""
    import os
    import subprocess
    import sys

    clip = corpus_clip(trained, emotion=5, actor=3)
    program = ("import json, sys\n"
               "from pipeline.cli import cli\n"
               "try:\n"
               "    cli.main(['predict', '--bundle', sys.argv[1], '-o', sys.argv[3], sys.argv[2]],"
               " prog_name='ser', standalone_mode=False)\n"
               "finally:\n"
               "    print(json.dumps(sorted(m for m in ('torch', 'h5py') if m in sys.modules)))\n")
    out = Path(exported[1][1]).parent / "scored.jsonl"
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", program, str(exported[1][1]), str(clip),
                           str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    [expected] = predict_files_of(exported[1][0], clip)
    assert record["probabilities"] == pytest.approx(expected.probabilities, abs=1e-4)
    assert record["emotion"] == expected.emotion


def predict_files_of(bundle_path, clip):
    from pipeline.inference.predict import predict_files

    return predict_files([clip], bundles.load(bundle_path))
