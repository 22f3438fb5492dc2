"""Tests of pipeline/inference/results.py: the verdict, the timeline record and the output files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.inference.results import (
    FileResult,
    format_single,
    format_table,
    timeline_record,
    verdict,
)
from pipeline.inference.sink import write_results

LABELS = ("calm", "sad", "angry")


def _scored(path: str) -> FileResult:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    speech = [3.0, 1.0]
    mean = verdict(probs, speech)
    segments = [timeline_record(path, start_s=s, end_s=s + 2.5, speech_s=w, probabilities=p,
                                labels=LABELS)
                for s, w, p in zip((0.0, 3.0), speech, probs)]
    return FileResult(path, emotion=LABELS[int(mean.argmax())], confidence=float(mean.max()),
                      probabilities=dict(zip(LABELS, mean)), notes=["4.00 s of speech"],
                      segments=segments)


def test_the_verdict_weights_segments_by_their_seconds_of_speech():
    mean = verdict(np.array([[1.0, 0.0], [0.0, 1.0]]), [3.0, 1.0])
    np.testing.assert_allclose(mean, [0.75, 0.25])
    np.testing.assert_allclose(verdict(np.array([[0.2, 0.8]]), [0.4]), [0.2, 0.8])


def test_a_timeline_record_names_the_segment_and_its_best_emotion():
    record = timeline_record("a.wav", start_s=1.23456, end_s=4.0, speech_s=2.0,
                             probabilities=np.array([0.1, 0.6, 0.3]), labels=LABELS)
    assert record["start_s"] == 1.235 and record["emotion"] == "sad"
    assert record["confidence"] == pytest.approx(0.6) and record["probabilities"]["angry"] == pytest.approx(0.3)


def test_csv_has_one_row_per_file_and_the_timeline_one_per_segment(tmp_path):
    results = [_scored("a.wav"), FileResult("b.wav", error="no speech detected")]
    write_results(results, tmp_path / "out.csv", LABELS)
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [r["path"] for r in rows] == ["a.wav", "b.wav"]
    assert rows[0]["emotion"] == "calm" and float(rows[0]["calm"]) == pytest.approx(0.55)
    assert rows[1]["confidence"] == "" and rows[1]["error"] == "no speech detected"
    write_results(results, tmp_path / "timeline.csv", LABELS, windows=True)
    rows = list(csv.DictReader(open(tmp_path / "timeline.csv")))
    assert [(r["path"], r["emotion"]) for r in rows] == [("a.wav", "calm"), ("a.wav", "angry"),
                                                          ("b.wav", "")]


def test_jsonl_is_strict_json_with_null_for_a_file_without_a_verdict(tmp_path):
    results = [_scored("a.wav"), FileResult("b.wav", error="unreadable")]
    write_results(results, tmp_path / "out.jsonl", LABELS, windows=True)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["path"] for line in lines] == ["a.wav", "a.wav", "a.wav", "b.wav"]
    assert ["start_s" in line for line in lines] == [True, True, False, False]  # its timeline
    assert lines[0]["probabilities"]["calm"] == pytest.approx(0.7)
    assert lines[2]["notes"] == ["4.00 s of speech"]
    assert lines[2]["speech"] == {"seconds": 4.0, "segments": 2}
    assert lines[3]["confidence"] is None and lines[3]["probabilities"] is None
    assert "NaN" not in (tmp_path / "out.jsonl").read_text()
    with pytest.raises(PipelineError, match="use a .csv or .jsonl"):
        write_results(results, tmp_path / "out.txt", LABELS)


def test_terminal_text_shows_the_verdict_every_emotion_and_errors():
    text = format_single(_scored("a.wav"), LABELS, windows=True)
    assert text.splitlines()[0] == "Predicted emotion: calm with 55.00% confidence"
    assert "3.00-   5.50 s  angry" in text and "note: 4.00 s of speech" in text
    assert format_single(FileResult("b.wav", error="x"), LABELS) == "b.wav: error: x"
    table = format_table([_scored("a.wav"), FileResult("long/name.wav", error="x")])
    assert table.splitlines()[1].split()[:3] == ["a.wav", "calm", "55.00%"]


def test_csv_keeps_notes_and_every_row_names_the_model(tmp_path):
    out = tmp_path / "out.csv"
    write_results([_scored("a.wav")], out, LABELS, bundle="ravdess-cnn@0.2.0+abcd1234")
    row = next(csv.DictReader(open(out)))
    assert row["notes"] == "4.00 s of speech" and row["bundle"] == "ravdess-cnn@0.2.0+abcd1234"
    write_results([_scored("a.wav")], out, LABELS, windows=True, bundle="m@1+2")
    assert {r["bundle"] for r in csv.DictReader(open(out))} == {"m@1+2"}


def test_the_terminal_table_shows_segments_with_windows_and_names_the_model():
    results = [_scored("a.wav"), _scored("b.wav")]
    plain = format_table(results, bundle="m@1+2")
    assert "angry" not in plain and plain.splitlines()[-1] == "model: m@1+2"
    timeline = format_table(results, windows=True)
    assert timeline.count("3.00-   5.50 s  angry") == 2  # each file's segments under it


def test_a_line_of_the_old_shape_is_read_in_the_scoring_records_shape():
    """JSONL written before the scoring record said ``file`` on segment lines, with flat
    probabilities, and ``segments`` (a count) on the file's line."""
    from pipeline.inference.results import file_record, upgrade

    speech: dict = {}
    old = [{"file": "a.wav", "start_s": 0.0, "end_s": 2.5, "speech_s": 3.0, "emotion": "calm",
            "confidence": 0.7, "calm": 0.7, "sad": 0.2, "angry": 0.1, "bundle": "m@1"},
           {"file": "a.wav", "start_s": 3.0, "end_s": 5.5, "speech_s": 1.0, "emotion": "angry",
            "confidence": 0.8, "calm": 0.1, "sad": 0.1, "angry": 0.8, "bundle": "m@1"},
           {"path": "a.wav", "emotion": "calm", "confidence": 0.55, "probabilities": {},
            "error": "", "notes": [], "bundle": "m@1", "segments": 2}]
    new = [upgrade(line, LABELS, speech) for line in old]
    result = _scored("a.wav")
    assert new[:2] == [{**segment, "bundle": "m@1"} for segment in result.segments]
    assert new[2]["speech"] == file_record(result)["speech"] == {"seconds": 4.0, "segments": 2}
    assert "segments" not in new[2]
    assert [upgrade(line, LABELS, {}) for line in new] == new  # already in shape
