"""The evaluate stage: cross-validation reports from the fold models, and a bundle on a
folder of RAVDESS-named clips through the predict path."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import clip_name, prepare_store, synth_speech, write_corpus
from pipeline.core import layout
from pipeline.core.errors import PipelineError, StaleInputError
from pipeline.core.labels import EMOTIONS
from pipeline.core.metrics import confusion, summarise
from pipeline.evaluation.bundle_eval import evaluate_bundle
from pipeline.evaluation.evaluate import evaluate_folds, format_report
from pipeline.signal.views import CLEAN, TEST_VIEWS, to_list

FOLDS = [0, 1, 2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class FoldRuns:
    corpus: Path
    data_dir: Path
    artifacts_dir: Path


@pytest.fixture(scope="module")
def fold_runs(tmp_path_factory) -> FoldRuns:
    """Tiny models for each of 3 actor folds."""
    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.train import train

    corpus, data_dir, artifacts_dir = prepare_store(tmp_path_factory.mktemp("evaluate"),
                                                    folds=len(FOLDS))
    config = TrainConfig(epochs=2, model=ModelConfig(channels=(4, 8, 8), hidden=16))
    for fold in FOLDS:
        train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=fold, config=config, device="cpu")
    return FoldRuns(corpus, data_dir, artifacts_dir)


def test_cross_validation_report(fold_runs):
    from pipeline.corpus.index import load_index

    report = evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir,
                            folds=FOLDS)
    assert report["kind"] == "cross-validation" and report["folds"] == FOLDS
    clips = load_index(fold_runs.data_dir)
    runs = report["fold_runs"]
    assert [run["fold"] for run in runs] == FOLDS
    assert [run["run"] for run in runs] == [f"fold-{f}" for f in FOLDS]
    for run in runs:
        test_actors = run["actors"]["test"]
        assert test_actors == sorted({c.speaker for c in clips if c.fold == run["fold"]})
        assert not set(test_actors) & (set(run["actors"]["train"]) | set(run["actors"]["val"]))
        metrics = run["metrics"]
        # clean copies of the held-out actors only: one row per clip
        assert metrics["n"] == sum(c.fold == run["fold"] for c in clips)
        for key in ("ua", "wa", "macro_f1"):
            assert 0.0 <= metrics[key] <= 1.0
        # the default recipe: every other actor trains, the last epoch is kept
        assert run["validation"] is None and run["actors"]["val"] == []
        assert sorted(run["actors"]["train"] + test_actors) == sorted({c.speaker for c in clips})

    summary = report["summary"]
    for key in ("ua", "wa", "macro_f1"):
        values = [run["metrics"][key] for run in runs]
        assert summary[key]["mean"] == pytest.approx(np.mean(values))
        assert summary[key]["std"] == pytest.approx(np.std(values, ddof=1))
    pooled = np.sum([run["metrics"]["confusion"] for run in runs], axis=0)
    assert report["pooled"]["confusion"] == pooled.tolist()
    assert report["pooled"]["n"] == len(clips) == 64
    assert report["pooled"]["wa"] == pytest.approx(np.trace(pooled) / pooled.sum())
    assert report["features_key"] and report["index_hash"]

    reports = fold_runs.artifacts_dir / "reports"
    assert json.loads((reports / "cv.json").read_text()) == json.loads(json.dumps(
        {k: v for k, v in report.items() if k != "report_path"}))
    assert (reports / "cv.png").read_bytes()[:8] == PNG_MAGIC
    assert not list(reports.glob("*.tmp"))

    text = format_report(report)
    assert "mean  ± std" in text
    for label in EMOTIONS:
        assert any(line.startswith(label) for line in text.splitlines())


def _expected_confusion(fold_runs, fold: int, runs: list[str], views) -> list:
    """The confusion matrix of fold ``fold``'s test clips, each read from the corpus,
    put through the front end, scored in every view by every member of ``runs``, the
    probabilities averaged: computed here without the evaluate or predict code."""
    import torch

    from pipeline.corpus.index import load_index
    from pipeline.network.model import load_model
    from pipeline.signal import frontend
    from pipeline.signal.features import FeatureConfig
    from pipeline.signal.views import window_views

    loaded = [load_model(fold_runs.artifacts_dir / "runs" / run / "model.pt") for run in runs]
    config = FeatureConfig.from_dict(loaded[0][1]["feature_config"])
    clips = [c for c in load_index(fold_runs.data_dir) if c.fold == fold]
    predicted = []
    for clip in clips:
        speech = frontend.load(Path(clip.path), config)
        x = torch.from_numpy(window_views(speech.main_segment_audio(), config, views))
        with torch.no_grad():
            probabilities = torch.stack([model(x).softmax(1) for model, _ in loaded]).mean(0)
        predicted.append(int(probabilities.mean(0).argmax()))
    return confusion(np.array([EMOTIONS.index(c.emotion) for c in clips]), np.array(predicted),
                     len(EMOTIONS)).tolist()


@pytest.mark.parametrize("views", [CLEAN, TEST_VIEWS], ids=["no-tta", "tta"])
def test_each_test_clip_is_scored_from_its_audio_in_the_views(fold_runs, views):
    """One scoring input either way: every test clip read from the corpus and scored in
    the views (the clean window alone with --no-tta), the probabilities averaged; the
    report says which views."""
    report = evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir,
                            folds=[1], views=views)
    assert (fold_runs.artifacts_dir / "reports" / "fold-1.json").is_file()
    assert report["test_views"] == to_list(views)
    if len(views) > 1:
        assert f"{len(views)} test-time views" in format_report(report)
    assert report["fold_runs"][0]["metrics"]["confusion"] == _expected_confusion(
        fold_runs, 1, ["fold-1"], views)


def test_test_time_views_without_the_audio_name_the_file_and_the_fix(tmp_path, fold_runs,
                                                                     monkeypatch):
    import dataclasses

    from pipeline.corpus.index import load_index

    moved = [dataclasses.replace(c, path=str(tmp_path / Path(c.path).name))
             for c in load_index(fold_runs.data_dir)]  # the corpus is gone from where it was
    monkeypatch.setattr("pipeline.evaluation.evaluate.load_index", lambda data_dir: moved)
    with pytest.raises(PipelineError, match=r"\.wav: .*restore the file"):
        evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir,
                       folds=[1])


def test_models_trained_on_other_features_are_refused(tmp_path, fold_runs):
    from pipeline.corpus.extract import ExtractConfig, extract
    from pipeline.signal.augment import AugmentConfig

    artifacts_dir = tmp_path / "artifacts"
    shutil.copytree(fold_runs.artifacts_dir, artifacts_dir)
    extract(data_dir=fold_runs.data_dir, artifacts_dir=artifacts_dir,
            config=ExtractConfig(augment=AugmentConfig(copies=0), shard_clips=64))
    with pytest.raises(StaleInputError, match="train --fold 0"):
        evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=artifacts_dir, folds=[0])


def test_missing_fold_model_names_the_fix(tmp_path, fold_runs):
    artifacts_dir = tmp_path / "artifacts"
    shutil.copytree(fold_runs.artifacts_dir / "features", artifacts_dir / "features")
    with pytest.raises(PipelineError, match="fold-0.*ser train"):
        evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=artifacts_dir, folds=[0])


# -- a bundle on a folder ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fold_bundle(fold_runs) -> Path:
    from pipeline.inference.bundle import export

    return export(artifacts_dir=fold_runs.artifacts_dir, run="fold-0")


def test_bundle_on_a_ravdess_named_folder_goes_through_predict(tmp_path, fold_runs, fold_bundle):
    from pipeline.inference import bundle as bundles
    from pipeline.inference.predict import predict_files

    source = tmp_path / "clips"
    good = write_corpus(source, actors=(5, 6), takes=1)
    (source / "extra").mkdir()
    soundfile.write(source / "extra" / "interview.wav", synth_speech(emotion=3), 16000)  # no label
    song = clip_name(emotion=3, actor=5, channel=2)
    soundfile.write(source / "extra" / f"{song}.wav", synth_speech(emotion=3), 16000)  # song
    broken = source / "extra" / f"{clip_name(emotion=4, actor=6, statement=2)}.wav"
    broken.write_bytes(b"RIFF....not really")
    artifacts_dir = tmp_path / "artifacts"

    report = evaluate_bundle(bundle_path=fold_bundle, source=source, artifacts_dir=artifacts_dir)
    assert report["kind"] == "bundle"
    assert report["files"] == len(good) + 1 and report["failed"] == 1
    assert report["corpus"] == "ravdess" and "restricted" not in report
    assert report["actors"] == ["ravdess:05", "ravdess:06"]
    assert report["pooled"]["n"] == len(good)
    assert report["provenance"]["run"] == "fold-0"

    # the same numbers as scoring the files with predict and reading labels from the names
    loaded = bundles.load(fold_bundle)
    results = predict_files(good, loaded)
    true = [int(p.stem.split("-")[2]) - 1 for p in good]  # RAVDESS's emotion field
    predicted = [loaded.labels.index(r.emotion) for r in results]
    expected = summarise(confusion(np.array(true), np.array(predicted), len(EMOTIONS)),
                         EMOTIONS)
    assert report["pooled"]["confusion"] == expected["confusion"]
    assert report["pooled"]["ua"] == pytest.approx(expected["ua"])

    stem = layout.bundle_report_stem(artifacts_dir, fold_bundle, source)
    assert report["report_path"] == str(stem.with_suffix(".json"))
    assert json.loads(stem.with_suffix(".json").read_text())["files"] == len(good) + 1
    assert report["skipped"] == {
        "name does not follow ravdess's layout (Actor_01/03-01-05-01-02-01-01.wav)": 1,
        "song, not speech": 1, "not scored (no speech, unreadable)": 1,
        "duplicates (counted once)": 0}
    assert report["trained_actors"] == []  # actors 5 and 6 never trained it
    assert stem.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    assert "pooled" in format_report(report)


def test_the_same_clips_as_emotion_folders_or_a_manifest_give_the_same_recalls(tmp_path,
                                                                           fold_bundle):
    named = tmp_path / "named"
    good = write_corpus(named, actors=(5, 6), emotions=(1, 4, 5), takes=1)
    folders, lines = tmp_path / "mylabels", []
    for number, path in enumerate(good):
        emotion = EMOTIONS[int(path.stem.split("-")[2]) - 1]
        target = folders / emotion / f"take{number}.wav"  # names that say nothing
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        lines.append(json.dumps({"path": str(path.relative_to(named)), "emotion": emotion}))
    (named / "labels.jsonl").write_text("\n".join(lines) + "\n")
    reports = [evaluate_bundle(bundle_path=fold_bundle, artifacts_dir=tmp_path / name, **how)
               for name, how in (("a", {"source": named}), ("b", {"source": folders}),
                                 ("c", {"source": None,
                                        "manifest_path": named / "labels.jsonl"}))]
    assert [r["corpus"] for r in reports] == ["ravdess", "mylabels", "labels"]
    recalls = [{e: m["recall"] for e, m in r["pooled"]["per_class"].items()
                if m["support"]} for r in reports]
    assert recalls[0] == recalls[1] == recalls[2] and set(recalls[0]) == {"neutral", "sad",
                                                                          "angry"}
    assert [r["pooled"]["n"] for r in reports] == [len(good)] * 3
    assert reports[1]["actors"] == [] and reports[1]["trained_actors"] == []


def test_manifests_named_alike_get_their_own_reports_and_a_csv_is_a_source(tmp_path,
                                                                         fold_bundle):
    clips = write_corpus(tmp_path / "named", actors=(5,), emotions=(1, 5), takes=1)
    paths = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "my.csv").write_text("path,emotion\n" + "".join(
            f"{c},{EMOTIONS[int(c.stem.split('-')[2]) - 1]}\n" for c in clips))
        report = evaluate_bundle(bundle_path=fold_bundle, source=None, artifacts_dir=tmp_path,
                                 manifest_path=tmp_path / folder / "my.csv")
        paths.append(Path(report["report_path"]))
    assert paths[0] != paths[1] and all(p.exists() and "-my_csv-" in p.name for p in paths)
    as_source = evaluate_bundle(bundle_path=fold_bundle, source=tmp_path / "a" / "my.csv",
                                artifacts_dir=tmp_path / "c")  # the csv recipe, told by a file
    assert as_source["corpus"] == "my" and as_source["pooled"]["n"] == len(clips)


def test_a_clip_in_three_formats_or_copied_under_another_name_counts_once(tmp_path, fold_bundle):
    single, tripled = tmp_path / "single", tmp_path / "tripled"
    good = write_corpus(single, actors=(5,), emotions=(1, 5), takes=1)
    for path in good:
        y, rate = soundfile.read(path)
        target = tripled / path.relative_to(single)
        target.parent.mkdir(parents=True, exist_ok=True)
        for fmt, suffix in (("WAV", ".wav"), ("FLAC", ".flac"), ("MP3", ".mp3")):
            soundfile.write(target.with_suffix(suffix), y, rate, format=fmt)
    copy = tripled / "copies" / f"{clip_name(emotion=1, actor=5, statement=2)}.wav"
    copy.parent.mkdir()
    copy.write_bytes(tripled.joinpath(good[0].relative_to(single)).read_bytes())  # same audio

    alone = evaluate_bundle(bundle_path=fold_bundle, source=single, artifacts_dir=tmp_path / "a")
    report = evaluate_bundle(bundle_path=fold_bundle, source=tripled, artifacts_dir=tmp_path / "b")
    assert report["files"] == alone["files"] == len(good)
    assert report["pooled"]["confusion"] == alone["pooled"]["confusion"]
    assert len(report["duplicates"]) == 2 * len(good) + 1
    assert report["duplicates"][str(copy)].endswith(".flac")  # the lossless copy was kept
    assert all(not kept.endswith(".mp3") for kept in report["duplicates"].values())
    assert (f"skipped: {2 * len(good) + 1} file(s), duplicates (counted once)"
            in format_report(report))


def test_the_bundles_own_training_actors_are_warned_about(tmp_path, fold_runs, fold_bundle,
                                                         caplog):
    from pipeline.inference import bundle as bundles

    trained = bundles.load(fold_bundle).metadata["provenance"]["actors"]["train"]
    with caplog.at_level("WARNING", logger="pipeline"):
        report = evaluate_bundle(bundle_path=fold_bundle, source=fold_runs.corpus,
                                 artifacts_dir=tmp_path / "art")
    assert report["actors"] == [f"ravdess:{a:02d}" for a in (1, 2, 3, 4)]
    assert report["trained_actors"] == sorted(trained)
    assert any(f"{len(trained)} of the 4 speakers in" in m and "trained this bundle" in m
               for m in caplog.messages)
    assert "these figures are not of unseen voices" in format_report(report)


def test_reports_are_named_after_the_bundle_and_the_source(tmp_path, fold_bundle):
    first, second = tmp_path / "a" / "clips", tmp_path / "b" / "clips"  # the same folder name
    write_corpus(first, actors=(5,), emotions=(1, 5), takes=1)
    write_corpus(second, actors=(6,), emotions=(2, 6), takes=1)
    artifacts_dir = tmp_path / "art"
    reports = [evaluate_bundle(bundle_path=fold_bundle, source=source,
                               artifacts_dir=artifacts_dir) for source in (first, second)]
    paths = [Path(r["report_path"]) for r in reports]
    assert paths[0] != paths[1] and all(p.exists() for p in paths)  # the first is kept
    assert all(p.name.startswith(f"bundle-{fold_bundle.stem}-clips-") for p in paths)
    assert [json.loads(p.read_text())["actors"] for p in paths] == [["ravdess:05"], ["ravdess:06"]]


def test_a_folder_where_every_clip_fails_is_an_error_and_writes_no_report(tmp_path, fold_bundle):
    source = tmp_path / "broken"
    source.mkdir()
    for emotion in (1, 5):
        (source / f"{clip_name(emotion=emotion, actor=5)}.wav").write_bytes(b"RIFF....garbage")
    artifacts_dir = tmp_path / "artifacts"
    with pytest.raises(PipelineError, match="none of the 2 clips of .* could be scored"):
        evaluate_bundle(bundle_path=fold_bundle, source=source, artifacts_dir=artifacts_dir)
    assert not list(artifacts_dir.rglob("*.json"))


def test_a_report_with_undefined_figures_is_strict_json(tmp_path, fold_bundle):
    source = tmp_path / "one"
    write_corpus(source, actors=(5,), emotions=(5,), takes=1)  # one emotion: most recalls undefined
    evaluate_bundle(bundle_path=fold_bundle, source=source, artifacts_dir=tmp_path / "art")
    text = next((tmp_path / "art").rglob("bundle-*.json")).read_text()
    assert "NaN" not in text and "Infinity" not in text
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert report["pooled"]["per_class"]["neutral"]["recall"] is None


def test_bundle_on_a_folder_without_labels_is_an_error_naming_the_layouts(tmp_path, fold_bundle):
    (tmp_path / "clips").mkdir()
    soundfile.write(tmp_path / "clips" / "hello.wav", synth_speech(emotion=1), 16000)
    with pytest.raises(PipelineError, match=r"Actor_01/03-01-05-01-02-01-01.*angry/"):
        evaluate_bundle(bundle_path=fold_bundle, source=tmp_path / "clips",
                        artifacts_dir=tmp_path / "artifacts")


def test_fold_bundle_carries_its_cross_validation_result(fold_runs):
    from pipeline.inference import bundle as bundles

    report = evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir,
                            folds=FOLDS)
    path = bundles.export(artifacts_dir=fold_runs.artifacts_dir, run="fold-2",
                          out=fold_runs.artifacts_dir / "bundles" / "fold-2-with-test.safetensors")
    test = bundles.load(path).metadata["provenance"]["test"]
    assert test["ua"] == pytest.approx(report["fold_runs"][2]["metrics"]["ua"])
    assert test["n"] == report["fold_runs"][2]["metrics"]["n"]


def test_a_fold_evaluated_alone_stamps_its_own_figures_and_a_stale_one_gives_way(fold_runs,
                                                                                  tmp_path):
    from pipeline.inference import bundle as bundles

    artifacts = fold_runs.artifacts_dir
    alone = evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=artifacts, folds=[1],
                           views=CLEAN)  # reports/fold-1.json, the window alone
    cv = evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=artifacts, folds=FOLDS)
    clean = bundles.load(bundles.export(artifacts_dir=artifacts, run="fold-1", views=CLEAN,
                                        out=tmp_path / "clean.safetensors"))
    assert clean.metadata["provenance"]["test_views"] == [{}]
    assert clean.metadata["provenance"]["test"]["ua"] == alone["fold_runs"][0]["metrics"]["ua"]
    # fold-1.json was measured without the views: for a bundle with them, cv.json's figures
    viewed = bundles.load(bundles.export(artifacts_dir=artifacts, run="fold-1",
                                         out=tmp_path / "views.safetensors"))
    assert viewed.metadata["provenance"]["test_views"] == cv["test_views"]
    assert viewed.metadata["provenance"]["test"]["ua"] == cv["fold_runs"][1]["metrics"]["ua"]


def test_ensemble_evaluation_averages_the_members_probabilities(fold_runs):
    from pipeline.core.errors import TrainingError
    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.train import train

    config = TrainConfig(epochs=2, model=ModelConfig(channels=(4, 8, 8), hidden=16))
    train(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir, fold=2, member=1,
          config=config, device="cpu")
    report = evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir,
                            folds=[2], members=2, views=CLEAN)
    assert report["members"] == 2 and report["fold_runs"][0]["member_runs"] == ["fold-2", "fold-2.m1"]
    assert "an ensemble of 2 members" in format_report(report)
    assert report["fold_runs"][0]["metrics"]["confusion"] == _expected_confusion(
        fold_runs, 2, ["fold-2", "fold-2.m1"], CLEAN)
    # a fold without its second member: the error says how to train it
    with pytest.raises(TrainingError, match="--fold 0 --members 2"):
        evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=fold_runs.artifacts_dir,
                       folds=[0, 2], members=2)


def test_without_matplotlib_the_json_report_is_written_and_the_png_skipped(tmp_path, hide_module):
    from pipeline.evaluation.evaluate import write_report

    hide_module("matplotlib")
    report = {"kind": "bundle", "pooled": {"confusion": [[1, 0], [0, 1]], "ua": 1.0}}
    write_report(report, tmp_path / "r")
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert not (tmp_path / "r.png").exists()


def test_folds_of_different_recipes_are_not_summarised_together(fold_runs, tmp_path):
    """A CV mean over folds trained with other settings would describe no recipe."""
    import shutil

    from pipeline.core.errors import StaleInputError
    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.train import train

    artifacts = tmp_path / "artifacts"
    shutil.copytree(fold_runs.artifacts_dir, artifacts)
    train(data_dir=fold_runs.data_dir, artifacts_dir=artifacts, fold=1, device="cpu",
          config=TrainConfig(epochs=3, model=ModelConfig(channels=(4, 8, 8), hidden=16)))
    with pytest.raises(StaleInputError, match="runs/fold-1 was trained with another recipe "
                                              "or code than runs/fold-0"):
        evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=artifacts, folds=[0, 1],
                       views=CLEAN)


# -- output folders checked before any work --------------------------------------------


def _never(*_args, **_kwargs):
    pytest.fail("clips were scored although the report could not be written")


def test_a_report_folder_that_is_a_file_is_refused_before_any_clip_is_scored(
        tmp_path, fold_runs, fold_bundle, monkeypatch):
    import pipeline.evaluation.evaluate
    import pipeline.inference.predict

    source = tmp_path / "clips"
    write_corpus(source, actors=(5,), emotions=(1, 5), takes=1)
    artifacts_dir = tmp_path / "artifacts"
    artifacts_dir.mkdir()
    (artifacts_dir / "reports").write_text("not a folder")  # refused by root too
    monkeypatch.setattr(pipeline.inference.predict, "predict_files", _never)
    with pytest.raises(PipelineError, match=rf"^--artifacts-dir {artifacts_dir}: "
                                            rf"{artifacts_dir / 'reports'} is a file, not a "
                                            "folder: move it away or point --artifacts-dir "
                                            "elsewhere$"):
        evaluate_bundle(bundle_path=fold_bundle, source=source, artifacts_dir=artifacts_dir)

    copied = tmp_path / "copied"
    shutil.copytree(fold_runs.artifacts_dir, copied, ignore=shutil.ignore_patterns("reports"))
    (copied / "reports").write_text("not a folder")
    monkeypatch.setattr(pipeline.evaluation.evaluate, "held_out_probabilities", _never)
    with pytest.raises(PipelineError, match="reports is a file, not a folder"):
        evaluate_folds(data_dir=fold_runs.data_dir, artifacts_dir=copied, folds=FOLDS)


def test_ser_evaluate_refuses_an_unwritable_artifacts_folder_in_one_line(tmp_path, runner,
                                                                          monkeypatch):
    import pipeline.inference.predict
    from cli import cli

    source = tmp_path / "clips"
    write_corpus(source, actors=(5,), emotions=(1,), takes=1)
    monkeypatch.setattr(pipeline.inference.predict, "predict_files", _never)
    unwritable = Path("/proc/ser-test/artifacts")  # not even root can create folders in /proc
    result = runner.invoke(cli, ["--artifacts-dir", str(unwritable), "evaluate", "--bundle",
                                 "shipped", "--source", str(source), "-j", "1"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: --artifacts-dir {unwritable}: cannot write in "
                                    f"{unwritable} (")
    assert result.output.endswith("make it writable or point --artifacts-dir elsewhere\n")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("option, command", [
    ("--artifacts-dir", ["extract", "-j", "1"]), ("--artifacts-dir", ["train"]),
    ("--data-dir", ["download", "--source", "."]), ("--data-dir", ["index"])])
def test_a_dangling_link_as_an_output_folder_is_one_line_naming_it(tmp_path, runner, option,
                                                                    command):
    from cli import cli

    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere")
    result = runner.invoke(cli, [option, str(link), *command])
    assert result.exit_code == 1, result.output
    assert result.output == (f"Error: {option} {link} is a symbolic link to "
                             f"{tmp_path / 'nowhere'}, which does not exist: create the target "
                             f"or point {option} elsewhere\n")
    assert not (tmp_path / "nowhere").exists()


def test_commands_that_write_no_folder_ignore_a_dangling_one(tmp_path, runner):
    from cli import cli

    link = tmp_path / "art"
    link.symlink_to(tmp_path / "nowhere")
    clip = tmp_path / "speech.wav"
    soundfile.write(clip, synth_speech(emotion=3), 16000)
    folders = ["--artifacts-dir", str(link), "--data-dir", str(link)]
    assert runner.invoke(cli, [*folders, "extract", "--help"]).exit_code == 0
    predicted = runner.invoke(cli, [*folders, "-q", "predict", str(clip), "-j", "1"],
                              env={"SER_BUNDLE": None})
    assert predicted.exit_code == 0, predicted.output
    assert "symbolic link" not in predicted.output


def test_two_corpora_train_together_and_are_reported_per_corpus_and_pooled(tmp_path):
    """A RAVDESS-named corpus and an emotion-folders corpus without calm: one index, one
    store, one fold model, and the cross-validation report per corpus and pooled."""
    from pipeline.corpus.extract import ExtractConfig, extract
    from pipeline.corpus.index import IndexConfig, Source, build_index
    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig
    from pipeline.signal.augment import AugmentConfig
    from pipeline.training.train import train

    write_corpus(tmp_path / "rav", actors=(1, 2, 3, 4), emotions=range(1, 9), takes=1)
    mine = tmp_path / "mylabels"
    for speaker in ("spk1", "spk2", "spk3"):
        for emotion in ("neutral", "angry", "sad"):  # no calm, as in EMOVO
            target = mine / emotion / f"{speaker}_{emotion}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(target, synth_speech(emotion=EMOTIONS.index(emotion) + 1,
                                                 seed=100 * int(speaker[-1]) + len(emotion)), 16000)
    data_dir, artifacts_dir = tmp_path / "data", tmp_path / "artifacts"
    build_index(data_dir=data_dir, config=IndexConfig(folds=2), sources=[
        Source("ravdess", str(tmp_path / "rav")),
        Source.parse(f"folders={mine}", speaker_pattern=r"(spk[0-9])_")])
    extract(data_dir=data_dir, artifacts_dir=artifacts_dir,
            config=ExtractConfig(augment=AugmentConfig(copies=0), shard_clips=16))
    config = TrainConfig(epochs=1, members=1, model=ModelConfig(channels=(4, 8, 8), hidden=16))
    for fold in (0, 1):
        result = train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=fold,
                       config=config, device="cpu")
        info = json.loads((result.run_dir / "result.json").read_text())
        assert info["corpora"] == ["mylabels", "ravdess"]
    report = evaluate_folds(data_dir=data_dir, artifacts_dir=artifacts_dir, folds=[0, 1],
                            views=CLEAN)
    corpora = report["by_corpus"]
    assert list(corpora) == ["mylabels", "ravdess"]
    assert corpora["mylabels"]["clips"] == 9 and corpora["ravdess"]["clips"] == 32
    assert corpora["mylabels"]["emotions"] == ["neutral", "sad", "angry"]
    assert "restricted" in corpora["mylabels"] and "restricted" not in corpora["ravdess"]
    assert report["pooled"]["n"] == 41
    assert sum(np.array(c["pooled"]["confusion"]) for c in corpora.values()).tolist() == \
        report["pooled"]["confusion"]
    # per fold and per corpus, and their mean over folds (what compares with a one-corpus
    # cross-validation's mean of fold UAs)
    for run in report["fold_runs"]:
        assert sum(f["clips"] for f in run["by_corpus"].values()) == run["metrics"]["n"]
        assert run["by_corpus"]["ravdess"]["restricted_ua"] is None
    summary = report["corpus_summary"]
    assert summary["ravdess"]["folds"] == 2 and summary["ravdess"]["clips"] == 32
    assert summary["ravdess"]["ua"]["mean"] == pytest.approx(np.mean(
        [run["by_corpus"]["ravdess"]["ua"] for run in report["fold_runs"]]))
    assert "restricted_ua" not in summary["ravdess"] and "restricted_ua" in summary["mylabels"]
    text = format_report(report)
    assert "mylabels" in text and "restricted to its emotions" in text
    assert f"{summary['ravdess']['ua']['mean']:.1%}±" in text
