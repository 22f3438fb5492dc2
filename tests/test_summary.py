"""The weak-verdict field and the timeline summary (pipeline/inference/results.py) on
synthetic recordings whose segments are known: real synthesised speech placed at set
times in silence, scored by a stand-in network that gives each segment the probabilities
the test chose. Both the whole-file path and the streamed path of a long recording."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import soundfile

from conftest import synth_speech
from pipeline.core import labels as label_set
from pipeline.inference.predict import predict_files
from pipeline.inference.results import file_record, format_single
from pipeline.signal.features import FeatureConfig
from pipeline.signal.views import CLEAN

RATE = 16000
STARTS = (5.0, 20.0, 35.0, 65.0, 80.0, 95.0, 200.0, 250.0)  # one utterance each
LABELS = label_set.EMOTIONS


@dataclass
class StandIn:
    """A scorer whose network answers each segment, in time order, with the next of
    ``answers`` (an emotion given probability 0.9, the rest sharing 0.1)."""

    answers: list[str]
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    labels: tuple[str, ...] = LABELS
    views: tuple = CLEAN
    weak_below: float = 0.483
    identity: str = "stand-in"
    calls: int = 0

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        rows = np.full((len(windows), len(self.labels)), 0.1 / (len(self.labels) - 1))
        for row in rows:
            row[self.labels.index(self.answers[self.calls])] = 0.9
            self.calls += 1
        return rows


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two recordings of the same layout: 130 s (scored whole) and 330 s (streamed)."""
    utterance = synth_speech(emotion=3, seconds=1.5, sample_rate=RATE, seed=1)
    out = {}
    for seconds in (130, 330):
        audio = np.zeros(seconds * RATE, dtype=np.float32)
        for start in (s for s in STARTS if s + 3 < seconds):
            at = int(start * RATE)
            audio[at:at + len(utterance)] = utterance
        path = tmp_path_factory.mktemp("long") / f"talk-{seconds}s.wav"
        soundfile.write(path, audio, RATE)
        out[seconds] = path
    return out


def _score(path, answers):
    scorer = StandIn(list(answers))
    [result] = predict_files([path], scorer, jobs=1, tta=False)
    assert not result.error, result.error
    return result, scorer


@pytest.mark.parametrize("seconds", [130, 330])
def test_the_summary_counts_each_segments_speech_under_its_verdict(recordings, seconds):
    n = sum(1 for s in STARTS if s + 3 < seconds)
    answers = ["angry"] * 3 + ["sad"] * 3 + ["calm"] * (n - 6)
    result, scorer = _score(recordings[seconds], answers)
    assert scorer.calls == len(result.segments) == n  # one segment per utterance
    assert [s["emotion"] for s in result.segments] == answers
    record = json.loads(json.dumps(file_record(result)))
    summary = record["summary"]
    speech = {e: sum(s["speech_s"] for s in result.segments if s["emotion"] == e)
              for e in set(answers)}
    assert {e: v["seconds"] for e, v in summary["emotions"].items()} == pytest.approx(speech)
    assert sum(v["share"] for v in summary["emotions"].values()) == pytest.approx(1, abs=1e-3)
    # a tie (angry and sad speak the same utterance 3 times each) goes to the one heard first
    assert summary["dominant"] == max(dict.fromkeys(answers), key=speech.get)
    expected = {0: "angry", 1: "sad"} | ({3: "calm", 4: "calm"} if seconds > 200 else {})
    assert [(s["start_s"], s["emotion"], s["share"]) for s in summary["by_slice"]] == \
        [(60.0 * k, e, 1.0) for k, e in sorted(expected.items())]
    # three emotions at 0.9 each, the file's mean is below the threshold: a weak verdict
    assert record["confidence"] < 0.483 and record["weak"] is True
    text = format_single(result, LABELS)
    assert "(weak: more likely wrong than right)" in text.splitlines()[0]
    assert "minute by minute: 0-1 min angry, 1-2 min sad" in text


def test_one_emotion_throughout_is_a_firm_verdict(recordings):
    result, _ = _score(recordings[130], ["angry"] * 6)
    record = file_record(result)
    assert record["emotion"] == "angry" and record["weak"] is False
    assert record["summary"]["dominant"] == "angry"
    assert record["summary"]["emotions"]["angry"]["share"] == 1.0
    assert "weak" not in format_single(result, LABELS).splitlines()[0]


def test_a_file_without_a_verdict_has_no_weak_flag_and_no_summary(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(RATE * 3, dtype=np.float32), RATE)
    [result] = predict_files([path], StandIn([]), jobs=1, tta=False)
    record = file_record(result)
    assert result.error and record["weak"] is None and "summary" not in record
