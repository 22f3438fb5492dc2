"""``ser run`` (pipeline/cli/workflow.py, pipeline/cli/profiles.py): the quick profile end to
end on a tiny synthetic corpus (5 actors, 40 clips, 2 epochs), every stage's manifest
and report, the bundle it exports, and a rerun after an interruption resuming."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_corpus
from pipeline.cli import cli
from pipeline.cli.profiles import FULL, PROFILES, QUICK
from pipeline.core import layout
from pipeline.inference import api
from pipeline.training import train as train_module

ACTORS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("workflow") / "corpus"
    write_corpus(root, actors=ACTORS, takes=1)
    return root


def _run(tmp_path: Path, corpus: Path, *extra: str):
    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "--artifacts-dir",
                                    str(tmp_path / "artifacts"), "run", "--source", str(corpus),
                                    "-j", "1", *extra])


def test_the_quick_profile_runs_every_stage_and_says_where_the_outputs_went(tmp_path, corpus):
    result = _run(tmp_path, corpus, "--epochs", "2")
    assert result.exit_code == 0, result.output
    data, artifacts = tmp_path / "data", tmp_path / "artifacts" / "quick"
    assert json.loads(layout.download_manifest(data).read_text())["root"] == str(corpus)
    index = json.loads(layout.index_manifest(data).read_text())
    assert index["config"]["folds"] == 5 and index["clips"] == 40
    features = json.loads(layout.features_manifest(artifacts).read_text())
    assert features["stage"] == "extract" and features["clips"] == 40
    trained = json.loads(layout.run_manifest(artifacts, "fold-0").read_text())
    assert trained["stage"] == "train" and trained["epochs_run"] == 2
    assert trained["config"]["epochs"] == 2 and len(trained["actors"]["test"]) == 1
    assert not layout.run_dir(artifacts, "fold-0.m1").exists()  # one member
    report = json.loads(layout.report_stem(artifacts, "fold-0").with_suffix(".json").read_text())
    assert report["folds"] == [0] and report["members"] == 1 and len(report["test_views"]) == 7
    assert report["pooled"]["n"] == 8  # the test actor's clips: one per emotion
    bundle = layout.bundle_file(artifacts, "fold-0")
    model = api.load_model(bundle)
    provenance = model.metadata["provenance"]
    assert provenance["run"] == "fold-0" and provenance["test"]["ua"] == report["fold_runs"][0][
        "metrics"]["ua"]  # the fold's own figures stamped in
    record = api.predict_file(next(corpus.rglob("*.wav")), model=model)
    assert record["emotion"] in model.labels
    text = result.output
    assert "the quick profile" in text and "Predicted emotion:" in text
    test_actor = trained["actors"]["test"][0].rpartition(":")[2]
    assert re.search(rf"that was 03-01-05-\S+-{int(test_actor):02d}\.wav, spoken by actor "
                     rf"{test_actor} of ravdess \(test fold 0: a voice the model never heard\); "
                     r"its true label: angry", text), text
    for path in (layout.index_csv(data), layout.features_dir(artifacts), bundle):
        assert str(path) in text  # absolute paths, in the closing summary
    assert "quick profile finished in" in text


def test_a_rerun_after_an_interruption_resumes_training(tmp_path, corpus, monkeypatch):
    real_epoch, trained_epochs = train_module.train_epoch, []

    def interrupted(*args, epoch, **kwargs):
        if epoch == 2 and not trained_epochs.count("stopped"):
            trained_epochs.append("stopped")
            raise KeyboardInterrupt
        trained_epochs.append(epoch)
        return real_epoch(*args, epoch=epoch, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", interrupted)
    first = _run(tmp_path, corpus, "--epochs", "3")
    assert first.exit_code == 1 and "rerunning the same 'ser run' does" in first.output
    second = _run(tmp_path, corpus, "--epochs", "3")
    assert second.exit_code == 0, second.output
    assert trained_epochs == [1, "stopped", 2, 3]  # epoch 1 was not trained again
    assert "resuming fold-0 after epoch 1" in second.output
    assert "features:" in second.output and "cache hit" in second.output


def test_the_profiles_say_what_they_do_and_how_long_they_take():
    assert set(PROFILES) == {"quick", "full"}
    assert QUICK.members == 1 and QUICK.fold == "0" and "minutes" in QUICK.says
    assert FULL.final and FULL.fold == "all" and "1 h 45 min" in FULL.says
    assert QUICK.artifacts_dir(Path("a")) == Path("a/quick") and FULL.artifacts_dir(Path("a")) == Path("a")


def test_options_the_profile_leaves_open_come_from_the_environment(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("SER_TRAIN_SEED", "7")
    monkeypatch.setenv("SER_SPLIT_SEED", "3")
    result = _run(tmp_path, corpus, "--epochs", "1")
    assert result.exit_code == 0, result.output
    artifacts = tmp_path / "artifacts" / "quick"
    assert json.loads(layout.run_manifest(artifacts, "fold-0").read_text())["seed"] == 7
    assert json.loads(layout.index_manifest(tmp_path / "data").read_text())["config"]["seed"] == 3


def test_run_checks_both_folders_before_the_first_step(tmp_path, corpus):
    (tmp_path / "art").symlink_to(tmp_path / "nowhere")
    done = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "--artifacts-dir",
                                    str(tmp_path / "art"), "run", "--source", str(corpus)])
    assert done.exit_code == 1
    assert "is a symbolic link to" in done.output and "which does not exist" in done.output
    assert not (tmp_path / "data" / "download.json").exists()  # download never ran
