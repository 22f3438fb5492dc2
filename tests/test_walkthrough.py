"""Tests of scripts/walkthrough.py (issue 30): one recording through ``ser predict``
passes no more modules than the 21 of the flat package (19 after issue 30; issue 31 added
``inference.locate``, which model 'shipped' is, and ``signal.iir``, the filters without
scipy.signal; the shipped model's ONNX form passes ``onnx_bundle`` where the torch path
passed ``network.model``), is opened (and its header read) once, and enters the front end
once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import soundfile

from tests.conftest import synth_speech

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "walkthrough.py"


def _walkthrough():
    spec = importlib.util.spec_from_file_location("walkthrough", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_recording_through_predict_is_opened_once_and_passes_at_most_21_modules(tmp_path):
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, synth_speech(emotion=5, seconds=1.5), 16000)
    order, entries = _walkthrough().walk(["predict", "-j", "1", str(clip)])
    assert len(order) <= 21, order
    assert "pipeline.signal.frontend" in order and "pipeline.inference.onnx_bundle" in order
    assert "pipeline.network.model" not in order  # the shipped model scores without torch
    assert not any(module.startswith("pipeline.training") for module in order)
    opened = [count for name, count in entries.items() if name.startswith("(audio files")]
    assert opened == [1]  # decoded once, its header read once
    assert sys.getprofile() is None  # the profiler is taken off again

