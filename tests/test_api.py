"""pipeline/inference/api.py: an array in memory gets the record a file gets, and the record the
command line writes; bad arrays are refused naming the input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import synth_speech
from pipeline.core.errors import AudioError, NoSpeechError
from pipeline.inference import api

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return api.load_model()  # the shipped model


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    y = synth_speech(emotion=5, seconds=2.0, sample_rate=22050, seed=4)
    path = tmp_path_factory.mktemp("api") / "clip.wav"
    soundfile.write(path, y, 22050, subtype="FLOAT")
    return path, y


def test_an_array_gets_the_record_of_its_file(model, speech):
    path, y = speech
    from_file = api.predict_file(path, model=model)
    from_array = api.predict_array(y, 22050, model=model, name=str(path))
    assert from_array == from_file
    assert set(from_array) - {"summary"} == {  # a summary when it has several segments
        "path", "error", "emotion", "confidence", "probabilities", "speech", "weak", "timeline",
        "notes", "test_time_views", "bundle"}
    assert from_array["weak"] == (from_array["confidence"] < model.weak_below)
    assert from_array["emotion"] == max(from_array["probabilities"],
                                        key=from_array["probabilities"].get)
    assert abs(sum(from_array["probabilities"].values()) - 1) < 1e-5
    assert from_array["speech"]["segments"] == len(from_array["timeline"]) >= 1
    assert from_array["bundle"].startswith("ravdess-cnn@")


def test_integer_pcm_is_scaled_to_full_scale_and_stereo_gives_the_mono_record(model, speech):
    _, y = speech
    ints = np.round(y * 32767).astype(np.int16)
    assert np.abs(api.as_pcm(ints, 22050, name="x")[:, 0] - y).max() < 1e-4
    unsigned = (np.round(y * 127) + 128).astype(np.uint8)
    assert np.abs(api.as_pcm(unsigned, 22050, name="x")[:, 0] - y).max() < 1e-2
    stereo = np.stack([y, y], axis=1)
    assert (api.predict_array(stereo, 22050, model=model, tta=False)
            == api.predict_array(y, 22050, model=model, tta=False))


def test_the_cli_writes_the_same_probabilities(model, speech, tmp_path):
    path, y = speech
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "-q", "predict", str(path),
                           "-o", str(out), "-j", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    line = json.loads(out.read_text())
    record = api.predict_array(y, 22050, model=model)
    assert line["emotion"] == record["emotion"] and line["bundle"] == record["bundle"]
    for label, p in record["probabilities"].items():
        assert abs(line["probabilities"][label] - p) < 1e-5


@pytest.mark.parametrize("samples, rate, match", [
    (np.zeros(0, dtype=np.float32), 16000, "no samples"),
    (np.full(16000, np.nan, dtype=np.float32), 16000, "NaN"),
    (np.zeros((4, 4, 4)), 16000, "1-D or"),
    (np.array(["a", "b"]), 16000, "1-D or"),
    (np.zeros(16000, dtype=np.float32), 100, "below"),
])
def test_bad_arrays_are_refused_naming_the_input(model, samples, rate, match):
    with pytest.raises(AudioError, match=f"mine: .*{match}"):
        api.predict_array(samples, rate, model=model, name="mine")


def test_silence_and_a_tone_are_refused_as_silent_or_without_speech(model):
    with pytest.raises(AudioError, match="mine: silent"):
        api.predict_array(np.zeros(32000, dtype=np.float32), 16000, model=model, name="mine")
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
    with pytest.raises(NoSpeechError, match="mine: no speech detected"):
        api.predict_array(tone, 16000, model=model, name="mine")


def test_channels_first_arrays_are_refused_with_the_fix(model, speech):
    _, y = speech
    with pytest.raises(AudioError, match=r"look like \(channels, num_samples\).*samples\.T"):
        api.predict_array(np.stack([y, y]), 22050, model=model)


def test_predict_reads_standard_input(speech):
    path, _ = speech
    whole = subprocess.run([sys.executable, str(REPO / "cli.py"), "-q", "predict", str(path),
                            "-j", "1"], capture_output=True, text=True)
    for argument in ("-", "/dev/stdin"):  # through a pipe, as from another program
        piped = subprocess.run([sys.executable, str(REPO / "cli.py"), "-q", "predict",
                                argument, "-j", "1"], input=path.read_bytes(),
                               capture_output=True)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout.decode() == whole.stdout  # the same verdict and probabilities
    empty = subprocess.run([sys.executable, str(REPO / "cli.py"), "-q", "predict", "-"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert empty.returncode == 1 and "-: error: empty file" in empty.stdout
    out = path.parent / "stdin.csv"
    out.write_text("kept\n")
    refused = subprocess.run([sys.executable, str(REPO / "cli.py"), "predict", "-", "-o", str(out)],
                             input=path.read_bytes(), capture_output=True)
    assert refused.returncode == 2 and b"--overwrite" in refused.stderr
    assert out.read_text() == "kept\n"
    mixed = subprocess.run([sys.executable, str(REPO / "cli.py"), "predict", "-", str(path)],
                           capture_output=True, text=True)
    assert mixed.returncode == 2 and "pass it alone" in mixed.stderr
