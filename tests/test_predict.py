"""The predict stage: the same features as extract, the CSV / JSONL contract, and a folder
of good and broken files where every file gets exactly one row."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from conftest import clip_name, prepare_store, synth_speech
from pipeline.core import labels
from pipeline.core.errors import PipelineError
from pipeline.inference.predict import expand_inputs, file_windows, predict_files
from pipeline.inference.results import TIMELINE_FIELDS, format_single
from pipeline.inference.sink import write_results

CSV_COLUMNS = ["path", "emotion", "confidence", "weak", "neutral", "calm", "happy", "sad", "angry",
               "fearful", "disgust", "surprised", "notes", "error", "bundle"]


@dataclass
class Trained:
    corpus: Path
    data_dir: Path
    artifacts_dir: Path
    bundle_path: Path
    bundle: object


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """A tiny final model on the 64-clip synthetic corpus, exported and loaded."""
    from pipeline.inference import bundle
    from pipeline.network.model import ModelConfig
    from pipeline.network.recipe import TrainConfig
    from pipeline.training.train import train

    corpus, data_dir, artifacts_dir = prepare_store(tmp_path_factory.mktemp("predict"), folds=2)
    train(data_dir=data_dir, artifacts_dir=artifacts_dir, fold=None, device="cpu",
          config=TrainConfig(epochs=2, model=ModelConfig(channels=(4, 8, 8), hidden=16)))
    path = bundle.export(artifacts_dir=artifacts_dir, run="final")
    return Trained(corpus, data_dir, artifacts_dir, path, bundle.load(path))


def corpus_clip(trained: Trained, *, emotion: int, actor: int) -> Path:
    return trained.corpus / f"Actor_{actor:02d}" / f"{clip_name(emotion=emotion, actor=actor)}.wav"


# -- features: predict computes exactly what extract stored ------------------------------


def test_prediction_features_equal_stored_clean_copy(trained):
    from pipeline.corpus.index import load_index
    from pipeline.corpus.store import load_store

    store = load_store(trained.artifacts_dir, clips=load_index(trained.data_dir))
    config = trained.bundle.feature_config
    assert config.to_dict() == store.manifest["config"]["features"]
    for emotion, actor in ((1, 1), (4, 2), (8, 3), (5, 4)):
        path = corpus_clip(trained, emotion=emotion, actor=actor)
        computed = file_windows(path, config)
        assert computed.error == ""
        assert computed.windows.shape == (1, 1, *config.shape)  # one window, one view
        row = np.flatnonzero((store.clip_id == path.stem) & (store.copy == 0))
        assert row.size == 1
        stored = store.features[row[0]]
        as_stored = computed.windows[0, 0].astype(np.float16)
        # identical computation: equal after the float16 cast, at worst one float16 step
        # apart where a float32 value sits on a rounding boundary
        step = np.spacing(np.abs(stored)).astype(np.float32)
        assert np.all(np.abs(as_stored.astype(np.float32) - stored.astype(np.float32)) <= step)
        assert np.mean(as_stored == stored) > 0.99
        # and not merely close to any augmented copy: the augmented row differs
        augmented = store.features[np.flatnonzero((store.clip_id == path.stem) & (store.copy == 1))[0]]
        assert not np.array_equal(as_stored, augmented)


def test_a_bundle_scores_every_test_time_view_and_averages_them(trained):
    import dataclasses

    from pipeline.signal.views import CLEAN, TEST_VIEWS, to_list

    bundle = trained.bundle
    assert bundle.views == TEST_VIEWS  # export records the recipe's views by default
    assert bundle.metadata["test_views"] == to_list(TEST_VIEWS)
    path = corpus_clip(trained, emotion=6, actor=3)
    assert file_windows(path, bundle.feature_config, TEST_VIEWS).windows.shape == (
        1, len(TEST_VIEWS), *bundle.feature_config.shape)
    [result] = predict_files([path], bundle)
    one_view = [predict_files([path], dataclasses.replace(bundle, views=(view,)))[0]
                for view in TEST_VIEWS]
    for label in labels.EMOTIONS:
        mean = np.mean([r.probabilities[label] for r in one_view])
        assert result.probabilities[label] == pytest.approx(mean, abs=1e-6)
    [clean] = predict_files([path], dataclasses.replace(bundle, views=CLEAN))
    assert clean.probabilities == one_view[0].probabilities != result.probabilities


def test_long_recording_is_scored_segment_by_segment_at_its_pauses(tmp_path, trained):
    config = trained.bundle.feature_config
    rate = config.sample_rate
    speech = synth_speech(emotion=5, seconds=10.0, seed=1)  # utterances 0.4 s apart
    hum = 0.3 * np.sin(2 * np.pi * 50 * np.arange(10 * rate) / rate)  # not speech
    path = tmp_path / "talk.wav"
    soundfile.write(path, np.concatenate([speech, hum.astype(np.float32), speech]), rate)

    computed = file_windows(path, config)
    assert computed.error == ""
    assert computed.windows.shape[1:] == (1, *config.shape)
    assert computed.windows.shape[0] == len(computed.segments) >= 4
    starts = np.array([start for start, _, _ in computed.segments])
    ends = np.array([end for _, end, _ in computed.segments])
    assert np.all(np.diff(starts) > 0) and np.all(ends[:-1] <= starts[1:])
    assert np.all(ends - starts <= 1.5 * config.window_seconds + 1e-9)
    # nothing is scored inside the 10 s of hum
    hum_start, hum_end = speech.size / rate, speech.size / rate + 10.0
    assert not np.any((starts > hum_start + 0.5) & (ends < hum_end - 0.5))
    assert all(0.5 <= speech_s <= end - start + 1e-9 for start, end, speech_s in computed.segments)
    assert "s of speech in" in computed.notes[0]


# -- the CSV / JSONL contract ------------------------------------------------------------


def test_csv_contract(tmp_path, trained):
    files = [corpus_clip(trained, emotion=e, actor=a) for e, a in ((2, 1), (3, 2), (7, 4))]
    results = predict_files(files, trained.bundle)
    out = tmp_path / "out" / "results.csv"
    write_results(results, out, trained.bundle.labels)
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert reader.fieldnames == CSV_COLUMNS
    assert [row["path"] for row in rows] == [str(f) for f in files]
    for row, result in zip(rows, results):
        assert row["error"] == ""
        probabilities = np.array([float(row[label]) for label in labels.EMOTIONS])
        assert np.all((probabilities >= 0) & (probabilities <= 1))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert row["emotion"] == labels.EMOTIONS[int(probabilities.argmax())] == result.emotion
        assert float(row["confidence"]) == pytest.approx(probabilities.max(), abs=1e-6)
    assert not list(out.parent.glob("*.tmp"))


def test_jsonl_output_with_the_timeline(tmp_path, trained):
    files = [corpus_clip(trained, emotion=6, actor=3), tmp_path / "missing.wav"]
    results = predict_files(files, trained.bundle)
    out = tmp_path / "results.jsonl"
    write_results(results, out, trained.bundle.labels, windows=True)
    # the timeline records of a file come first, a line each, then the file's own line
    segment, good, missing = [json.loads(line) for line in out.read_text().splitlines()]
    assert good["path"] == str(files[0]) and good["error"] == "" and good["speech"]["segments"] == 1
    assert set(good["probabilities"]) == set(labels.EMOTIONS)
    assert sum(good["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert good["confidence"] == pytest.approx(max(good["probabilities"].values()))
    assert set(segment) == {*TIMELINE_FIELDS, "probabilities", "bundle"}
    assert set(segment["probabilities"]) == set(labels.EMOTIONS)
    assert segment["path"] == good["path"] and segment["emotion"] == good["emotion"]
    assert missing["path"] == str(files[1])
    assert missing["error"] and missing["emotion"] is None and missing["confidence"] is None


def test_unsupported_output_suffix_is_a_clear_error(tmp_path, trained):
    results = predict_files([corpus_clip(trained, emotion=1, actor=1)], trained.bundle)
    with pytest.raises(PipelineError, match=r"\.csv or \.jsonl"):
        write_results(results, tmp_path / "results.txt", trained.bundle.labels)
    assert not (tmp_path / "results.txt").exists()


def test_format_single_prints_verdict_then_every_emotion(trained):
    [result] = predict_files([corpus_clip(trained, emotion=4, actor=2)], trained.bundle)
    lines = format_single(result, trained.bundle.labels).splitlines()
    assert lines[0] == (f"Predicted emotion: {result.emotion} with {result.confidence:.2%} "
                        "confidence" + (" (weak: more likely wrong than right)"
                                        if result.confidence < trained.bundle.weak_below else ""))
    assert [line.split()[0] for line in lines[1:9]] == list(labels.EMOTIONS)
    assert float(lines[1 + labels.EMOTIONS.index(result.emotion)].split()[1].rstrip("%")) == \
        pytest.approx(100 * result.confidence, abs=0.01)


def test_no_audio_files_is_an_error(tmp_path, trained):
    (tmp_path / "notes.txt").write_text("nothing to hear")
    with pytest.raises(PipelineError, match="no audio files"):
        predict_files([tmp_path], trained.bundle)


# -- a folder of good and broken files ---------------------------------------------------


GOOD = ("good-a.wav", "good-b.wav", "short.wav", "long.wav", "stereo-8k.mp3", "hires-96k.flac")
BAD = ("corrupt.wav", "empty.wav", "text.wav", "silent.wav", "hum.wav", "tone.flac", "noise.wav")
NOT_SPEECH = ("hum.wav", "tone.flac", "noise.wav")


def write_not_speech(folder: Path, rng: np.random.Generator) -> None:
    """50 Hz hum, a 440 Hz tone and white noise, 3 s each at 16 kHz."""
    t = np.arange(3 * 16000) / 16000
    soundfile.write(folder / "hum.wav", 0.3 * np.sin(2 * np.pi * 50 * t), 16000)
    soundfile.write(folder / "tone.flac", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    soundfile.write(folder / "noise.wav", 0.3 * rng.standard_normal(t.size), 16000)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, trained) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(7)
    for name, (emotion, actor) in zip(GOOD[:2], ((3, 1), (5, 2))):
        (folder / name).write_bytes(corpus_clip(trained, emotion=emotion, actor=actor).read_bytes())
    soundfile.write(folder / "short.wav", synth_speech(emotion=8, seconds=0.5, seed=4)[2400:-2400], 16000)
    soundfile.write(folder / "long.wav", synth_speech(emotion=2, seconds=59.4, seed=3), 16000)
    soundfile.write(folder / "stereo-8k.mp3", synth_speech(emotion=6, sample_rate=8000, channels=2),
                    8000, format="MP3")
    soundfile.write(folder / "hires-96k.flac", synth_speech(emotion=8, sample_rate=96000), 96000)
    (folder / "corrupt.wav").write_bytes(rng.bytes(5000))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n" * 20)
    soundfile.write(folder / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    write_not_speech(folder, rng)
    (folder / "readme.txt").write_text("not audio; not a candidate")
    return folder


@pytest.fixture(scope="module")
def mixed_results(mixed_folder, trained):
    return {Path(r.path).name: r for r in predict_files([mixed_folder], trained.bundle)}


def test_every_file_gets_exactly_one_result(mixed_results):
    assert sorted(mixed_results) == sorted(GOOD + BAD)


@pytest.mark.parametrize("name", BAD)
def test_broken_files_get_an_error_not_a_score(mixed_results, name):
    result = mixed_results[name]
    assert result.error
    assert result.emotion == "" and result.probabilities == {}
    assert "Traceback" not in result.error
    assert not result.error.startswith(str(result.path))  # the path column says which file


def test_broken_files_say_why(mixed_results):
    assert "empty" in mixed_results["empty.wav"].error
    assert "silent" in mixed_results["silent.wav"].error
    assert "not readable" in mixed_results["corrupt.wav"].error
    assert "not readable" in mixed_results["text.wav"].error
    for name in NOT_SPEECH:
        assert re.fullmatch(r"no speech detected \(0\.00 s of speech found; a segment needs "
                            r"at least 0\.5 s\)", mixed_results[name].error), name


@pytest.mark.parametrize("name", GOOD)
def test_good_files_are_scored(mixed_results, name):
    result = mixed_results[name]
    assert result.error == ""
    assert result.emotion in labels.EMOTIONS
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.confidence == pytest.approx(max(result.probabilities.values()))


def test_a_short_utterance_is_one_segment_with_a_note(mixed_results):
    result = mixed_results["short.wav"]
    [segment] = result.segments
    [note] = result.notes
    speech_seconds = float(re.fullmatch(r"([0-9.]+) s of speech", note)[1])
    assert 0.5 <= speech_seconds <= 1.5
    assert segment["speech_s"] == pytest.approx(speech_seconds, abs=0.01)


def test_long_clip_reports_its_segments_and_weights_them_by_speech(mixed_results):
    result = mixed_results["long.wav"]
    starts = [s["start_s"] for s in result.segments]
    assert len(starts) >= 5
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for segment in result.segments:
        assert segment["end_s"] > segment["start_s"]
        assert sum(segment["probabilities"][e] for e in labels.EMOTIONS) == pytest.approx(1.0, abs=1e-5)
        assert segment["emotion"] == max(labels.EMOTIONS, key=segment["probabilities"].get)
    # the file's probabilities are the mean of its segments', weighted by seconds of speech
    weights = np.array([s["speech_s"] for s in result.segments])
    per_segment = np.array([[s["probabilities"][e] for e in labels.EMOTIONS]
                            for s in result.segments])
    expected = weights @ per_segment / weights.sum()
    assert np.allclose(expected, [result.probabilities[e] for e in labels.EMOTIONS], atol=1e-5)
    assert re.fullmatch(r"[0-9.]+ s of speech in [0-9]+ segments", result.notes[0])


def test_parallel_workers_give_the_same_results_in_order(mixed_folder, mixed_results, trained):
    parallel = predict_files([mixed_folder], trained.bundle, jobs=2, batch_windows=8)
    assert [r.path for r in parallel] == [str(p) for p in expand_inputs([mixed_folder])]
    for result in parallel:
        serial = mixed_results[Path(result.path).name]
        assert result.error == serial.error
        assert result.emotion == serial.emotion
        for label, value in serial.probabilities.items():
            assert result.probabilities[label] == pytest.approx(value, abs=1e-5)


def test_cli_exit_status_and_one_row_per_file(tmp_path, mixed_folder, trained):
    from cli import cli

    runner = CliRunner()
    common = ["--artifacts-dir", str(tmp_path / "artifacts"), "-q", "predict",
              "--bundle", str(trained.bundle_path), "-j", "1"]
    out = tmp_path / "mixed.csv"
    failed = runner.invoke(cli, [*common, str(mixed_folder), "--output", str(out)])
    assert failed.exit_code == 1, failed.output
    assert "7 of 13 file(s) could not be scored" in failed.output
    with open(out, newline="") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert sorted(rows) == sorted(GOOD + BAD)
    assert all(rows[name]["error"] for name in BAD)
    assert all(rows[name]["error"] == "" and rows[name]["emotion"] for name in GOOD)

    good = [str(mixed_folder / name) for name in GOOD]
    out_good = tmp_path / "good.csv"
    passed = runner.invoke(cli, [*common, *good, "--output", str(out_good)])
    assert passed.exit_code == 0, passed.output
    with open(out_good, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(GOOD)


def test_cli_on_a_folder_of_hum_tone_and_noise_writes_an_error_row_each(tmp_path, trained):
    from cli import cli

    folder = tmp_path / "not-speech"
    folder.mkdir()
    write_not_speech(folder, np.random.default_rng(3))
    out = tmp_path / "not-speech.csv"
    result = CliRunner().invoke(cli, ["-q", "predict", "--bundle", str(trained.bundle_path),
                                      str(folder), "--output", str(out)])
    assert result.exit_code == 1, result.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(Path(row["path"]).name for row in rows) == sorted(NOT_SPEECH)
    for row in rows:
        assert row["error"].startswith("no speech detected")
        assert row["emotion"] == "" and all(row[label] == "" for label in labels.EMOTIONS)


def test_timeline_csv_has_one_row_per_segment_and_a_row_per_failed_file(tmp_path, mixed_folder,
                                                                       mixed_results, trained):
    results = [mixed_results[name] for name in ("long.wav", "good-a.wav", "hum.wav")]
    out = tmp_path / "timeline.csv"
    write_results(results, out, trained.bundle.labels, windows=True)
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert reader.fieldnames == [*TIMELINE_FIELDS, *labels.EMOTIONS, "error", "bundle"]
    long_rows = [row for row in rows if row["path"].endswith("long.wav")]
    assert len(long_rows) == len(mixed_results["long.wav"].segments)
    assert [float(row["start_s"]) for row in long_rows] == [
        s["start_s"] for s in mixed_results["long.wav"].segments]
    [hum] = [row for row in rows if row["path"].endswith("hum.wav")]
    assert hum["error"].startswith("no speech detected") and hum["emotion"] == ""


def test_an_unwritable_output_fails_before_any_scoring(tmp_path, trained, monkeypatch):
    from cli import cli
    from pipeline.inference import predict as predict_module

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(predict_module, "predict_files",
                        lambda *a, **k: pytest.fail("scored before checking --output"))
    result = CliRunner().invoke(cli, ["-q", "predict", "--bundle", str(trained.bundle_path),
                                      str(corpus_clip(trained, emotion=1, actor=1)),
                                      "--output", str(blocker / "out.csv")])
    assert result.exit_code == 1
    assert f"--output {blocker / 'out.csv'}: {blocker} is a file, not a folder: move it away " \
           "or point --output elsewhere" in result.output
    assert "Traceback" not in result.output


def test_a_broken_link_in_a_folder_gets_an_error_row(tmp_path, trained):
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (folder / "good.wav").write_bytes(corpus_clip(trained, emotion=2, actor=1).read_bytes())
    results = {Path(r.path).name: r for r in predict_files([folder], trained.bundle)}
    assert sorted(results) == ["gone.wav", "good.wav"]
    assert "cannot open" in results["gone.wav"].error and results["good.wav"].error == ""


@pytest.mark.parametrize("rate", [1, 200, 4000])
def test_a_sample_rate_below_8_khz_is_refused_not_scored(tmp_path, trained, rate):
    path = tmp_path / f"rate-{rate}.wav"
    soundfile.write(path, synth_speech(emotion=3, sample_rate=16000)[:16000], rate)
    [result] = predict_files([path], trained.bundle)
    assert result.emotion == ""
    assert result.error.startswith(f"sample rate {rate} Hz is below 8000 Hz")

