"""The bundle: a self-contained model file that loads anywhere, and refuses foreign,
tampered or incompatible files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline import bundle as bundles, ravdess
from pipeline.errors import BundleError, PipelineError
from pipeline.index import index_hash
from pipeline.predict import predict_files
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)

REPO = Path(__file__).resolve().parents[1]


def saved_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_bundle_carries_everything_prediction_needs(trained: Trained):
    from pipeline.extract import features_dir
    from pipeline.store import load_manifest
    from pipeline.train import load_model

    loaded = trained.bundle
    assert loaded.labels == ravdess.EMOTIONS
    assert loaded.feature_config.to_dict() == load_manifest(features_dir(trained.artifacts_dir))["config"]["features"]
    model, _ = load_model(trained.artifacts_dir / "runs" / "final" / "model.pt")
    trained_state, bundled_state = model.state_dict(), loaded.model.state_dict()
    assert set(trained_state) == set(bundled_state)
    for name, tensor in trained_state.items():  # weights and normalisation buffers
        assert torch.equal(tensor, bundled_state[name]), name
    assert not torch.equal(bundled_state["feature_mean"], torch.zeros_like(bundled_state["feature_mean"]))
    assert not loaded.model.training
    provenance = loaded.metadata["provenance"]
    assert provenance["run"] == "final"
    assert provenance["index_hash"] == index_hash(trained.data_dir)
    assert provenance["actors"]["train"] == [1, 2, 3, 4]
    assert provenance["epochs_run"] == 2 and provenance["seed"] == 0
    assert provenance["train_config"]["model"]["channels"] == [4, 8, 8]


def test_bundle_file_holds_only_tensors_and_text(trained: Trained):
    saved = saved_dict(trained.bundle_path)  # weights_only: no code could have run
    assert saved["format"] == bundles.FORMAT and saved["format_version"] == bundles.FORMAT_VERSION
    assert isinstance(saved["metadata"], str) and len(saved["checksum"]) == 64
    assert all(isinstance(t, torch.Tensor) for t in saved["state_dict"].values())


def test_fresh_process_in_an_empty_folder_gets_the_same_probabilities(tmp_path, trained: Trained):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundle_copy = shutil.copy(trained.bundle_path, elsewhere / "model.pt")
    clip = shutil.copy(corpus_clip(trained, emotion=7, actor=2), elsewhere / "clip.wav")
    [expected] = predict_files([clip], trained.bundle)

    workdir = tmp_path / "empty"
    workdir.mkdir()
    script = ("import json, sys\n"
              "from pipeline import bundle\n"
              "from pipeline.predict import predict_files\n"
              "loaded = bundle.load(sys.argv[1])\n"
              "[result] = predict_files([sys.argv[2]], loaded)\n"
              "print(json.dumps({'probabilities': result.probabilities, 'error': result.error}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", script, str(bundle_copy), str(clip)], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    assert fresh["error"] == ""
    assert fresh["probabilities"].keys() == expected.probabilities.keys()
    for label, value in expected.probabilities.items():
        assert fresh["probabilities"][label] == pytest.approx(value, abs=1e-6)
    assert list(workdir.iterdir()) == []  # it neither needed nor created data/ or artifacts/


# -- refusals ---------------------------------------------------------------------------


def test_edited_metadata_fails_the_checksum(tmp_path, trained: Trained):
    saved = saved_dict(trained.bundle_path)
    metadata = json.loads(saved["metadata"])
    metadata["label_map"] = list(reversed(metadata["label_map"]))
    saved["metadata"] = json.dumps(metadata, sort_keys=True)
    torch.save(saved, tmp_path / "edited.pt")
    with pytest.raises(BundleError, match="checksum"):
        bundles.load(tmp_path / "edited.pt")


def test_changed_tensor_fails_the_checksum(tmp_path, trained: Trained):
    saved = saved_dict(trained.bundle_path)
    name = next(k for k in saved["state_dict"] if k.endswith("weight"))
    saved["state_dict"][name] = saved["state_dict"][name].clone()
    saved["state_dict"][name].view(-1)[0] += 1e-3
    torch.save(saved, tmp_path / "edited.pt")
    with pytest.raises(BundleError, match="checksum"):
        bundles.load(tmp_path / "edited.pt")


def test_flipped_bytes_in_the_file_are_refused(tmp_path, trained: Trained):
    raw = bytearray(trained.bundle_path.read_bytes())
    at = raw.find(b'"label_map"')
    assert at > 0  # the metadata JSON sits in the file as plain text
    raw[at + 2] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="checksum|not a model bundle"):
        bundles.load(tmp_path / "flipped.pt")


def test_truncated_file_is_refused(tmp_path, trained: Trained):
    raw = trained.bundle_path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BundleError, match="not a model bundle"):
        bundles.load(tmp_path / "cut.pt")


class Payload:
    """Unpickling this would create a marker file: the loader must never run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["tensor-dict", "text", "pickled-object", "torch-object"])
def test_foreign_files_are_refused(tmp_path, kind):
    path, marker = tmp_path / "foreign.pt", tmp_path / "code-ran"
    if kind == "tensor-dict":
        torch.save({"weights": torch.ones(3), "note": "a checkpoint of some other tool"}, path)
    elif kind == "text":
        path.write_text("format: ser-pipeline-bundle\n")
    elif kind == "pickled-object":
        path.write_bytes(pickle.dumps({"format": bundles.FORMAT, "x": Payload(marker)},
                                     protocol=2))
    else:
        torch.save({"format": bundles.FORMAT, "format_version": bundles.FORMAT_VERSION,
                    "metadata": "{}", "state_dict": {}, "payload": Payload(marker)}, path)
        marker.unlink(missing_ok=True)  # saving calls __reduce__, not the touch
    with pytest.raises(BundleError, match="not a model bundle"):
        bundles.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("metadata, state_dict", [(5, {}), ("{}", [1]), ("{}", {"a": 1})])
def test_bundle_shaped_file_with_wrong_contents_is_refused(tmp_path, metadata, state_dict):
    torch.save({"format": bundles.FORMAT, "format_version": bundles.FORMAT_VERSION,
                "metadata": metadata, "state_dict": state_dict, "checksum": "0" * 64},
               tmp_path / "odd.pt")
    with pytest.raises(BundleError, match="damaged"):
        bundles.load(tmp_path / "odd.pt")


def test_intact_bundle_this_version_cannot_build_is_refused(tmp_path, trained: Trained):
    """Same format number, but a model config this code does not know (a newer writer)."""
    saved = saved_dict(trained.bundle_path)
    metadata = json.loads(saved["metadata"])
    metadata["model_config"]["attention_heads"] = 4
    bundles.write_bundle(tmp_path / "newer.pt", saved["state_dict"], metadata)
    with pytest.raises(BundleError, match="does not fit this version.*attention_heads.*re-export"):
        bundles.load(tmp_path / "newer.pt")
    metadata = json.loads(saved["metadata"])
    state_dict = {k: v for k, v in saved["state_dict"].items() if not k.startswith("head.")}
    bundles.write_bundle(tmp_path / "partial.pt", state_dict, metadata)
    with pytest.raises(BundleError, match="does not fit this version"):
        bundles.load(tmp_path / "partial.pt")


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(BundleError, match="no bundle at .*cli.py export"):
        bundles.load(tmp_path / "nothing.pt")


def test_other_format_version_is_refused_with_a_clear_message(tmp_path, trained: Trained):
    saved = saved_dict(trained.bundle_path)
    saved["format_version"] = bundles.FORMAT_VERSION + 1
    torch.save(saved, tmp_path / "future.pt")
    with pytest.raises(BundleError) as caught:
        bundles.load(tmp_path / "future.pt")
    message = str(caught.value)
    assert f"format {bundles.FORMAT_VERSION + 1}" in message
    assert f"reads format {bundles.FORMAT_VERSION}" in message
    assert "re-export" in message


def test_other_features_version_is_refused(tmp_path, trained: Trained):
    saved = saved_dict(trained.bundle_path)
    metadata = json.loads(saved["metadata"])
    metadata["features_version"] += 1
    bundles.write_bundle(tmp_path / "old.pt", saved["state_dict"], metadata)  # a valid checksum
    with pytest.raises(BundleError, match="features version"):
        bundles.load(tmp_path / "old.pt")


# -- export and resolve -----------------------------------------------------------------


def test_export_to_a_chosen_path_leaves_no_temporary_files(tmp_path, trained: Trained):
    out = tmp_path / "shipping" / "ser.pt"
    assert bundles.export(artifacts_dir=trained.artifacts_dir, run="final", out=out) == out
    assert [p.name for p in out.parent.iterdir()] == ["ser.pt"]
    again = bundles.load(out)
    assert again.metadata["model_config"] == trained.bundle.metadata["model_config"]


def test_export_of_an_untrained_run_names_the_fix(trained: Trained):
    with pytest.raises(PipelineError, match="fold-7.*cli.py train"):
        bundles.export(artifacts_dir=trained.artifacts_dir, run="fold-7")


def test_resolve_latest_and_paths(tmp_path):
    with pytest.raises(BundleError, match="no exported bundle"):
        bundles.resolve("latest", artifacts_dir=tmp_path)
    folder = tmp_path / "bundles"
    folder.mkdir()
    older, newer = folder / "ser-fold-0.pt", folder / "ser-final.pt"
    older.write_bytes(b"1")
    newer.write_bytes(b"2")
    os.utime(older, (1_000_000, 1_000_000))
    assert bundles.resolve("latest", artifacts_dir=tmp_path) == newer
    assert bundles.resolve(str(older), artifacts_dir=tmp_path) == older


def test_an_ensemble_bundle_predicts_the_members_mean(trained: Trained, tmp_path):
    from pipeline.model import Ensemble, ModelConfig
    from pipeline.train import TrainConfig, load_model, train

    config = TrainConfig(epochs=2, model=ModelConfig(channels=(4, 8, 8), hidden=16))
    train(data_dir=trained.data_dir, artifacts_dir=trained.artifacts_dir, fold=None, member=1,
          config=config, device="cpu")
    path = bundles.export(artifacts_dir=trained.artifacts_dir, run="final", members=2,
                          out=tmp_path / "ensemble.pt")
    loaded = bundles.load(path)
    assert isinstance(loaded.model, Ensemble) and not loaded.model.training
    assert loaded.metadata["members"] == 2
    provenance = loaded.metadata["provenance"]
    assert provenance["member_runs"] == ["final", "final.m1"] and provenance["seed"] == 0
    clip = corpus_clip(trained, emotion=3, actor=2)
    [result] = predict_files([clip], loaded)
    singles = []
    for run in ("final", "final.m1"):
        model, _ = load_model(trained.artifacts_dir / "runs" / run / "model.pt")
        singles.append(predict_files([clip], bundles.Bundle(model, loaded.feature_config,
                                                            loaded.labels, {}, path,
                                                            loaded.views))[0])
    for label in ravdess.EMOTIONS:
        mean = (singles[0].probabilities[label] + singles[1].probabilities[label]) / 2
        assert result.probabilities[label] == pytest.approx(mean, abs=1e-6)
    # the single-model bundle of the same run still loads as one model
    assert not isinstance(trained.bundle.model, Ensemble)


def test_the_shipped_bundle_loads_predicts_and_matches_the_readme(tmp_path):
    """The committed model: the recipe's ensemble, trained on RAVDESS actors 01-20, usable
    with no corpus, and quoted in the README with its own cross-validation figure."""
    import re

    import soundfile

    from conftest import synth_speech
    from pipeline.train import MEMBERS

    loaded = bundles.load(bundles.SHIPPED)
    assert loaded.metadata["members"] == MEMBERS
    provenance = loaded.metadata["provenance"]
    assert provenance["run"] == "final"
    assert provenance["actors"]["train"] == list(range(1, 21))
    clip = tmp_path / "mine.wav"
    soundfile.write(clip, synth_speech(emotion=5, seconds=2.0, sample_rate=22050), 22050)
    # predict scores with the test-time views its cross-validation figure was measured with
    assert loaded.metadata["test_views"] == provenance["test_views"]
    [result] = predict_files([clip], loaded)
    assert result.error == "" and result.emotion in ravdess.EMOTIONS
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    quoted = re.search(r"\| \*\*mean ± std\*\* \| \| \*\*(\d+\.\d)% ± (\d+\.\d)%\*\*", readme)
    assert quoted, "README lacks the cross-validation mean row"
    ua = provenance["test"]["ua"]
    assert (float(quoted[1]), float(quoted[2])) == (round(100 * ua["mean"], 1),
                                                    round(100 * ua["std"], 1))
