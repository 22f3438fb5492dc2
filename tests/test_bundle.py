"""The bundle: a self-contained safetensors file that loads anywhere, and refuses
foreign, corrupt, old or incompatible files with a message of our own."""

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

from pipeline.core import labels
from pipeline.core.errors import BundleError, PipelineError
from pipeline.corpus.index import index_record
from pipeline.inference import bundle as bundles, locate
from pipeline.inference.bundle_header import header_identity
from pipeline.inference.predict import predict_files
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)

REPO = Path(__file__).resolve().parents[1]


def read_raw(path: Path) -> tuple[dict, dict]:
    """``(header strings, tensors)`` of a safetensors file, as any reader sees them."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata()), {k: handle.get_tensor(k) for k in handle.keys()}


def write_raw(path: Path, header: dict, tensors: dict) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=header)
    return path


def test_bundle_carries_everything_prediction_needs(trained: Trained):
    from pipeline.corpus.store import load_manifest
    from pipeline.network.model import load_model

    loaded = trained.bundle
    assert loaded.labels == labels.EMOTIONS
    assert loaded.feature_config.to_dict() == load_manifest(trained.artifacts_dir)["config"]["features"]
    model, _ = load_model(trained.artifacts_dir / "runs" / "final" / "model.pt")
    trained_state, bundled_state = model.state_dict(), loaded.model.state_dict()
    assert set(trained_state) == set(bundled_state)
    for name, tensor in trained_state.items():  # weights and normalisation buffers
        assert torch.equal(tensor, bundled_state[name]), name
    assert not torch.equal(bundled_state["feature_mean"], torch.zeros_like(bundled_state["feature_mean"]))
    assert not loaded.model.training
    provenance = loaded.metadata["provenance"]
    assert provenance["run"] == "final"
    assert provenance["index_hash"] == index_record(trained.data_dir)["index_hash"]
    assert provenance["actors"]["train"] == [f"ravdess:{a:02d}" for a in (1, 2, 3, 4)]
    assert provenance["epochs_run"] == 2 and provenance["seed"] == 0
    assert provenance["train_config"]["model"]["channels"] == [4, 8, 8]


def test_bundle_file_is_safetensors_with_text_metadata(trained: Trained):
    import zipfile

    assert trained.bundle_path.suffix == ".safetensors"
    assert not zipfile.is_zipfile(trained.bundle_path)  # no torch pickle archive
    header, tensors = read_raw(trained.bundle_path)
    assert header["format"] == bundles.FORMAT
    assert header["format_version"] == str(bundles.FORMAT_VERSION)
    metadata = json.loads(header["metadata"])
    assert metadata["label_map"] == list(labels.EMOTIONS)
    # the model card's data: the corpora trained on, with their terms
    [corpus] = metadata["corpora"]
    assert (corpus["name"], corpus["role"], corpus["language"]) == ("ravdess", "train", "English")
    assert corpus["licence"].startswith("CC BY-NC-SA 4.0") and corpus["clips"] > 0
    assert len(header["checksum"]) == 64
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_fresh_process_in_an_empty_folder_gets_the_same_probabilities(tmp_path, trained: Trained):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundle_copy = shutil.copy(trained.bundle_path, elsewhere / "model.safetensors")
    clip = shutil.copy(corpus_clip(trained, emotion=7, actor=2), elsewhere / "clip.wav")
    [expected] = predict_files([clip], trained.bundle)

    workdir = tmp_path / "empty"
    workdir.mkdir()
    script = ("import json, sys\n"
              "from pipeline.inference import bundle\n"
              "from pipeline.inference.predict import predict_files\n"
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
    header, tensors = read_raw(trained.bundle_path)
    metadata = json.loads(header["metadata"])
    metadata["label_map"] = list(reversed(metadata["label_map"]))
    header["metadata"] = json.dumps(metadata, sort_keys=True)
    with pytest.raises(BundleError, match="corrupt or incompatible.*checksum"):
        bundles.load(write_raw(tmp_path / "edited.safetensors", header, tensors))


def test_changed_tensor_fails_the_checksum(tmp_path, trained: Trained):
    header, tensors = read_raw(trained.bundle_path)
    name = next(k for k in tensors if k.endswith("weight"))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1e-3
    with pytest.raises(BundleError, match="corrupt or incompatible.*checksum"):
        bundles.load(write_raw(tmp_path / "edited.safetensors", header, tensors))


@pytest.mark.parametrize("where", ["header", "weights"])
def test_flipped_bytes_in_the_file_are_refused(tmp_path, trained: Trained, where):
    raw = bytearray(trained.bundle_path.read_bytes())
    at = raw.find(b"label_map") if where == "header" else len(raw) - 9
    assert at > 0  # the metadata JSON sits in the file's header as plain text
    raw[at + 2] ^= 0x01
    (tmp_path / "flipped.safetensors").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="corrupt"):
        bundles.load(tmp_path / "flipped.safetensors")


def test_truncated_file_is_refused(tmp_path, trained: Trained):
    raw = trained.bundle_path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BundleError, match="not a model bundle of this tool, or is damaged"):
        bundles.load(tmp_path / "cut.safetensors")


def test_a_trained_runs_model_file_is_named_with_the_export_that_makes_a_bundle(trained: Trained):
    model_file = next(trained.artifacts_dir.glob("runs/*/model.pt"))
    with pytest.raises(BundleError, match=f"trained run's model file.*'ser --artifacts-dir "
                                          f"{trained.artifacts_dir.resolve()} export --run "
                                          f"{model_file.parent.name} --members 1'"):
        bundles.load(model_file)


def test_every_bundle_has_an_identity_its_header_alone_gives(trained: Trained):
    scorer = bundles.load(trained.bundle_path)
    assert scorer.identity == header_identity(trained.bundle_path)
    name, rest = scorer.identity.split("@")
    assert name == trained.bundle_path.stem and len(rest.split("+")[1]) == 8
    assert header_identity(trained.bundle_path.with_name("nope")).startswith("missing")


class Payload:
    """Unpickling this would create a marker file: the loader must never run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["tensor-dict", "text", "pickled-object", "torch-object",
                                  "other-safetensors", "empty"])
def test_foreign_files_are_refused_and_never_run(tmp_path, kind):
    path, marker = tmp_path / "foreign.safetensors", tmp_path / "code-ran"
    if kind == "tensor-dict":
        torch.save({"weights": torch.ones(3), "note": "a checkpoint of some other tool"}, path)
    elif kind == "text":
        path.write_text("format: ser-pipeline-bundle\n")
    elif kind == "pickled-object":
        path.write_bytes(pickle.dumps({"format": bundles.FORMAT, "x": Payload(marker)},
                                     protocol=2))
    elif kind == "torch-object":
        torch.save({"format": bundles.FORMAT, "format_version": 1,
                    "metadata": "{}", "state_dict": {}, "payload": Payload(marker)}, path)
        marker.unlink(missing_ok=True)  # saving calls __reduce__, not the touch
    elif kind == "other-safetensors":
        write_raw(path, {"creator": "another tool"}, {"w": torch.ones(2)})
    else:
        path.write_bytes(b"")
    with pytest.raises(BundleError, match="not a model bundle of this tool"):
        bundles.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("header, tensors", [
    ({"metadata": "{}"}, {}),
    ({"checksum": "0" * 64}, {"a": torch.ones(1)}),
], ids=["no-weights", "no-metadata"])
def test_bundle_shaped_file_with_wrong_contents_is_refused(tmp_path, header, tensors):
    header = {"format": bundles.FORMAT, "format_version": str(bundles.FORMAT_VERSION), **header}
    path = write_raw(tmp_path / "odd.safetensors", header, tensors)
    with pytest.raises(BundleError, match="corrupt or incompatible"):
        bundles.load(path)


def test_a_tensor_type_numpy_cannot_hold_is_refused_not_a_traceback(tmp_path, trained: Trained):
    header, tensors = read_raw(trained.bundle_path)
    name = next(iter(tensors))
    tensors[name] = tensors[name].to(torch.bfloat16)
    with pytest.raises(BundleError, match="corrupt or incompatible"):
        bundles.load(write_raw(tmp_path / "bf16.safetensors", header, tensors))


@pytest.mark.parametrize("key", bundles.REQUIRED_METADATA)
def test_metadata_missing_a_required_field_is_refused(tmp_path, trained: Trained, key):
    header, tensors = read_raw(trained.bundle_path)
    metadata = json.loads(header["metadata"])
    del metadata[key]
    bundles.write_bundle(tmp_path / "thin.safetensors", tensors, metadata)  # a valid checksum
    with pytest.raises(BundleError, match=f"does not fit this version.*{key}"):
        bundles.load(tmp_path / "thin.safetensors")


def test_intact_bundle_this_version_cannot_build_is_refused(tmp_path, trained: Trained):
    """Same format number, but a model config this code does not know (a newer writer)."""
    header, tensors = read_raw(trained.bundle_path)
    metadata = json.loads(header["metadata"])
    metadata["model_config"]["attention_heads"] = 4
    bundles.write_bundle(tmp_path / "newer.safetensors", tensors, metadata)
    with pytest.raises(BundleError, match="does not fit this version.*attention_heads.*re-export"):
        bundles.load(tmp_path / "newer.safetensors")
    metadata = json.loads(header["metadata"])
    partial = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    bundles.write_bundle(tmp_path / "partial.safetensors", partial, metadata)
    with pytest.raises(BundleError, match="does not fit this version"):
        bundles.load(tmp_path / "partial.safetensors")


def test_a_bundle_carries_its_own_label_set(tmp_path, trained: Trained):
    """Any names, one per output (not RAVDESS's in particular); a set that does not fit
    the network is refused."""
    header, tensors = read_raw(trained.bundle_path)
    metadata = json.loads(header["metadata"])
    metadata["label_map"] = [f"mood{i}" for i in range(len(metadata["label_map"]))]
    bundles.write_bundle(tmp_path / "moods.safetensors", tensors, metadata)
    loaded = bundles.load(tmp_path / "moods.safetensors")
    assert loaded.labels == tuple(metadata["label_map"])
    for bad in (metadata["label_map"][:-1], ["same"] * len(metadata["label_map"])):
        bundles.write_bundle(tmp_path / "bad.safetensors", tensors, {**metadata, "label_map": bad})
        with pytest.raises(BundleError, match="label set .* is not 8 distinct names"):
            bundles.load(tmp_path / "bad.safetensors")


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(BundleError, match="no bundle at .*ser export"):
        bundles.load(tmp_path / "nothing.safetensors")


def test_other_format_version_is_refused_with_a_clear_message(tmp_path, trained: Trained):
    header, tensors = read_raw(trained.bundle_path)
    header["format_version"] = str(bundles.FORMAT_VERSION + 1)
    with pytest.raises(BundleError) as caught:
        bundles.load(write_raw(tmp_path / "future.safetensors", header, tensors))
    message = str(caught.value)
    assert f"format {bundles.FORMAT_VERSION + 1}" in message
    assert f"reads format {bundles.FORMAT_VERSION}" in message
    assert "re-export" in message


def _format_1_bundle(path: Path, trained: Trained) -> Path:
    """A bundle as versions up to 0.1 wrote it: a torch.save dict (pickle-free)."""
    header, tensors = read_raw(trained.bundle_path)
    metadata = json.loads(header["metadata"])
    metadata["provenance"]["code_version"] = "0.1.0"
    torch.save({"format": bundles.FORMAT, "format_version": 1, "metadata": json.dumps(metadata),
                "state_dict": tensors, "checksum": "0" * 64}, path)
    return path


def test_a_bundle_of_an_older_version_names_it_and_how_to_re_export(tmp_path, trained: Trained,
                                                                    runner):
    from cli import cli

    old = _format_1_bundle(tmp_path / "ser-final.pt", trained)
    expected = (f"{old} is a format-1 bundle (a torch file) written by version 0.1.0; this "
                f"version ({bundles.__version__}) reads format 2 (.safetensors): re-export it "
                "from its trained run with 'ser export --run final', or install version "
                "0.1.0 to use it")
    with pytest.raises(BundleError) as caught:
        bundles.load(old)
    assert str(caught.value) == expected
    clip = corpus_clip(trained, emotion=3, actor=2)
    result = runner.invoke(cli, ["predict", str(clip), "--bundle", str(old)])
    assert result.exit_code == 1 and result.output.strip() == f"Error: {expected}"


def test_other_features_version_is_refused(tmp_path, trained: Trained):
    header, tensors = read_raw(trained.bundle_path)
    metadata = json.loads(header["metadata"])
    metadata["features_version"] += 1
    bundles.write_bundle(tmp_path / "old.safetensors", tensors, metadata)  # a valid checksum
    with pytest.raises(BundleError, match="features version"):
        bundles.load(tmp_path / "old.safetensors")


# -- export and resolve -----------------------------------------------------------------


def test_export_to_a_chosen_path_leaves_no_temporary_files(tmp_path, trained: Trained):
    out = tmp_path / "shipping" / "ser.safetensors"
    assert bundles.export(artifacts_dir=trained.artifacts_dir, run="final", out=out) == out
    assert [p.name for p in out.parent.iterdir()] == ["ser.safetensors"]
    again = bundles.load(out)
    assert again.metadata["model_config"] == trained.bundle.metadata["model_config"]


def test_export_of_an_untrained_run_names_the_fix(trained: Trained):
    with pytest.raises(PipelineError, match="fold-7.*ser train"):
        bundles.export(artifacts_dir=trained.artifacts_dir, run="fold-7")


def test_resolve_latest_and_paths(tmp_path):
    with pytest.raises(BundleError, match="no exported bundle"):
        locate.resolve("latest", artifacts_dir=tmp_path)
    folder = tmp_path / "bundles"
    folder.mkdir()
    older, newer = folder / "ser-fold-0.safetensors", folder / "ser-final.safetensors"
    older.write_bytes(b"1")
    newer.write_bytes(b"2")
    os.utime(older, (1_000_000, 1_000_000))
    assert locate.resolve("latest", artifacts_dir=tmp_path) == newer
    assert locate.resolve(str(older), artifacts_dir=tmp_path) == older


def test_an_ensemble_bundle_predicts_the_members_mean(trained: Trained, tmp_path):
    from pipeline.inference.scorer import Scorer
    from pipeline.network.model import Ensemble, ModelConfig, load_model
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.train import train

    config = TrainConfig(epochs=2, model=ModelConfig(channels=(4, 8, 8), hidden=16))
    train(data_dir=trained.data_dir, artifacts_dir=trained.artifacts_dir, fold=None, member=1,
          config=config, device="cpu")
    path = bundles.export(artifacts_dir=trained.artifacts_dir, run="final", members=2,
                          out=tmp_path / "ensemble.safetensors")
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
        singles.append(predict_files([clip], Scorer(model, loaded.feature_config,
                                                    loaded.labels, loaded.views))[0])
    for label in labels.EMOTIONS:
        mean = (singles[0].probabilities[label] + singles[1].probabilities[label]) / 2
        assert result.probabilities[label] == pytest.approx(mean, abs=1e-6)
    # the single-model bundle of the same run still loads as one model
    assert not isinstance(trained.bundle.model, Ensemble)


def test_the_shipped_bundle_loads_predicts_and_matches_the_readme(tmp_path, caplog):
    """The committed model: the recipe's ensemble, trained on RAVDESS actors 01-20, usable
    with no corpus, made with the detector this installation runs (no warning), and quoted
    in the README with its own cross-validation figure."""
    import logging
    import re

    import soundfile

    from conftest import synth_speech
    from pipeline.network.recipe import TrainConfig

    with caplog.at_level(logging.WARNING, logger="pipeline"):
        loaded = bundles.load(locate.SHIPPED)
    assert loaded.metadata["speech_detector"] == "silero-vad 6.2.3"
    assert not [r for r in caplog.records if "made with" in r.getMessage()]
    assert loaded.metadata["members"] == TrainConfig().members
    provenance = loaded.metadata["provenance"]
    assert provenance["run"] == "final"
    assert provenance["actors"]["train"] == list(range(1, 21))
    clip = tmp_path / "mine.wav"
    soundfile.write(clip, synth_speech(emotion=5, seconds=2.0, sample_rate=22050), 22050)
    # predict scores with the test-time views its cross-validation figure was measured with
    assert loaded.metadata["test_views"] == provenance["test_views"]
    [result] = predict_files([clip], loaded)
    assert result.error == "" and result.emotion in labels.EMOTIONS
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    quoted = re.search(r"\| \*\*mean ± std\*\* \| \| \*\*(\d+\.\d)% ± (\d+\.\d)%\*\*", readme)
    assert quoted, "README lacks the cross-validation mean row"
    ua = provenance["test"]["ua"]
    assert (float(quoted[1]), float(quoted[2])) == (round(100 * ua["mean"], 1),
                                                    round(100 * ua["std"], 1))


# --- export stamps a cross-validation report only when it belongs to the run ---------------

def _tiny(**changes):
    from dataclasses import replace

    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig

    return replace(TrainConfig(epochs=2, members=1,
                               model=ModelConfig(channels=(4, 8, 8), hidden=16)), **changes)


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory):
    """Two fold runs, their CV report (1 member, clean views) and the final run."""
    from conftest import prepare_store
    from pipeline.evaluation.evaluate import evaluate_folds
    from pipeline.signal.views import CLEAN
    from pipeline.training.train import train

    _, data_dir, artifacts_dir = prepare_store(tmp_path_factory.mktemp("cv"), folds=2)
    for fold in (0, 1, None):
        train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=fold, config=_tiny(),
              device="cpu")
    evaluate_folds(data_dir=data_dir, artifacts_dir=artifacts_dir, folds=[0, 1], members=1,
                   views=CLEAN)
    return data_dir, artifacts_dir


@pytest.fixture
def workspace(cross_validated, tmp_path):
    """A private copy of the cross-validated artifacts, free to retrain in."""
    import shutil

    data_dir, artifacts_dir = cross_validated
    shutil.copytree(artifacts_dir, tmp_path / "artifacts", symlinks=True)
    return data_dir, tmp_path / "artifacts"


def _export(artifacts_dir, run="final", **kwargs):
    from pipeline.signal.views import CLEAN

    return bundles.export(artifacts_dir=artifacts_dir, run=run, members=1, views=CLEAN,
                          out=artifacts_dir / "out.safetensors", **kwargs)


def test_a_report_of_the_same_recipe_code_and_features_is_stamped(workspace):
    from pipeline.core.atomic import read_json

    _, artifacts_dir = workspace
    provenance = bundles.load(_export(artifacts_dir)).metadata["provenance"]
    report = read_json(artifacts_dir / "reports" / "cv.json")
    assert provenance["test"] == report["summary"]
    fold = bundles.load(_export(artifacts_dir, "fold-1")).metadata["provenance"]
    assert fold["test"]["ua"] == report["fold_runs"][1]["metrics"]["ua"]


def test_a_final_model_of_another_recipe_is_refused(workspace):
    from pipeline.training.train import train

    data_dir, artifacts_dir = workspace
    train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=None, config=_tiny(epochs=3),
          device="cpu")
    with pytest.raises(BundleError, match=r"cv.json does not belong to runs/final \(differs "
                                          r"in recipe\).*--no-test-figures"):
        _export(artifacts_dir)
    assert not (artifacts_dir / "out.safetensors").exists()
    assert bundles.load(_export(artifacts_dir, test_figures=False)).metadata[
        "provenance"]["test"] is None


def test_a_final_model_of_other_training_code_is_refused(workspace, monkeypatch):
    from pipeline.training import run as run_module
    from pipeline.training import train as train_module

    data_dir, artifacts_dir = workspace
    monkeypatch.setattr(run_module, "code_hash", lambda module: "edited-code")
    train_module.train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=None,
                       config=_tiny(), device="cpu")
    with pytest.raises(BundleError, match=r"differs in train_code"):
        _export(artifacts_dir)


def test_a_final_model_on_other_features_is_refused(workspace):
    from pipeline.corpus.extract import ExtractConfig, extract
    from pipeline.signal.augment import AugmentConfig
    from pipeline.training.train import train

    data_dir, artifacts_dir = workspace
    extract(data_dir=data_dir, artifacts_dir=artifacts_dir,
            config=ExtractConfig(augment=AugmentConfig(copies=1), shard_clips=16, seed=3))
    train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=None, config=_tiny(),
          device="cpu")
    with pytest.raises(BundleError, match=r"differs in features_key"):
        _export(artifacts_dir)


def test_a_fold_run_retrained_after_the_report_is_refused(workspace):
    from pipeline.training.train import train

    data_dir, artifacts_dir = workspace
    train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=1, config=_tiny(seed=5),
          device="cpu")
    with pytest.raises(BundleError, match=r"runs/fold-1 \(measured on other trainings of it\)"):
        _export(artifacts_dir, "fold-1")
    with pytest.raises(BundleError, match=r"measured with other test-time views"):
        bundles.export(artifacts_dir=artifacts_dir, run="fold-0", members=1,
                       out=artifacts_dir / "out.safetensors")  # the default views


def test_a_temperature_fitted_for_the_recipe_goes_into_the_bundle_and_softens_it(tmp_path,
                                                                                 trained: Trained):
    import shutil

    from pipeline.core import layout
    from pipeline.core.atomic import write_json_atomic
    from pipeline.network.recipe import recipe_of

    artifacts = tmp_path / "artifacts"
    shutil.copytree(trained.artifacts_dir / "runs", artifacts / "runs")
    recipe = recipe_of(trained.bundle.metadata["provenance"]["train_config"])
    write_json_atomic(layout.calibration_file(artifacts),
                      {"temperature": 2.5, "recipe": {**recipe, "val_folds": 1},
                       "fitted_on": {"runs": ["fold-0"]}})
    calibrated = bundles.load(bundles.export(artifacts_dir=artifacts, run="final",
                                             test_figures=False))
    assert calibrated.temperature == 2.5 and trained.bundle.temperature == 1.0
    assert calibrated.metadata["calibration"]["fitted_on"] == {"runs": ["fold-0"]}
    clip = corpus_clip(trained, emotion=5, actor=1)
    [plain], [soft] = predict_files([clip], trained.bundle), predict_files([clip], calibrated)
    assert soft.emotion == plain.emotion and soft.confidence < plain.confidence
    write_json_atomic(layout.calibration_file(artifacts),
                      {"temperature": 2.5, "recipe": {**recipe, "epochs": 999}})
    other = bundles.load(bundles.export(artifacts_dir=artifacts, run="final", test_figures=False))
    assert other.temperature == 1.0  # fitted for another recipe: not used


def test_exporting_the_same_run_again_keeps_the_bundle_and_its_identity(tmp_path, trained: Trained):
    import shutil

    artifacts = tmp_path / "artifacts"
    shutil.copytree(trained.artifacts_dir / "runs", artifacts / "runs")
    first = bundles.export(artifacts_dir=artifacts, run="final", test_figures=False)
    identity, written = header_identity(first), first.stat().st_mtime_ns
    again = bundles.export(artifacts_dir=artifacts, run="final", test_figures=False)
    assert again == first and first.stat().st_mtime_ns == written
    assert header_identity(again) == identity
    from pipeline.signal.views import CLEAN

    other = bundles.export(artifacts_dir=artifacts, run="final", test_figures=False, views=CLEAN)
    assert header_identity(other) != identity  # another export: rewritten
