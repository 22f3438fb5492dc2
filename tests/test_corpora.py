"""Tests of pipeline/corpora.py and the cross-corpus figures of pipeline/evaluate.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_URDU, need
from pipeline import ravdess
from pipeline.corpora import CORPORA, detect, ravdess_label, urdu_label
from pipeline.errors import PipelineError
from pipeline.evaluate import cross_corpus

EMOTIONS = ravdess.EMOTIONS


@pytest.mark.parametrize("name, label", [
    ("Angry/SM1_F10_A010.wav", "angry"), ("Happy/SF3_F2_H051.flac", "happy"),
    ("Neutral/SM27_F1_N099.wav", "neutral"), ("Sad/SF14_F12_S003.wav", "sad"),
])
def test_urdu_names_map_onto_ravdess_emotions(name, label):
    assert urdu_label(Path(name)) == EMOTIONS.index(label)
    assert ravdess_label(Path(name)) is None


@pytest.mark.parametrize("name", ["SM1_F10_X010.wav", "SM1_F10.wav", "03-01-05-01-01-01-07.wav",
                                  "interview.wav", "SM1_F10_A010_copy.wav"])
def test_other_names_have_no_urdu_label(name):
    assert urdu_label(Path(name)) is None


def test_ravdess_song_clips_have_no_label():
    assert ravdess_label(Path("03-01-05-01-01-01-07.wav")) == EMOTIONS.index("angry")
    assert ravdess_label(Path("03-02-05-01-01-01-07.wav")) is None  # song


def test_detect_picks_the_corpus_the_names_follow():
    urdu = [Path("Sad/SF14_F12_S003.wav"), Path("Angry/SM1_F10_A010.wav"), Path("x.wav")]
    assert detect(urdu).name == "urdu"
    assert detect([Path("03-01-05-01-01-01-07.wav"), Path("x.wav")]).name == "ravdess"
    with pytest.raises(PipelineError, match="no labelled clips"):
        detect([Path("interview.wav")])


def _onehot(rows: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros((len(rows), len(EMOTIONS)))
    for i, row in enumerate(rows):
        for label, p in row.items():
            out[i, EMOTIONS.index(label)] = p
    return out


def test_cross_corpus_counts_calm_as_wrong_8_way_and_as_neutral_4_way():
    urdu = CORPORA["urdu"].emotions
    true = np.array([EMOTIONS.index(e) for e in ("neutral", "neutral", "angry", "sad")])
    probabilities = _onehot([
        {"calm": 0.5, "neutral": 0.2, "happy": 0.3},   # 8-way calm (wrong); 4-way neutral 0.7
        {"neutral": 0.6, "angry": 0.4},                 # right both ways
        {"surprised": 0.6, "angry": 0.4},               # 8-way wrong; 4-way angry
        {"fearful": 0.5, "sad": 0.2, "happy": 0.3},     # wrong both ways (happy 4-way)
    ])
    figures = cross_corpus(true, probabilities, urdu)
    eight, four = figures["pooled"]["per_class"], figures["restricted"]["per_class"]
    assert eight["neutral"]["recall"] == 0.5 and four["neutral"]["recall"] == 1.0
    assert eight["angry"]["recall"] == 0.0 and four["angry"]["recall"] == 1.0
    assert eight["sad"]["recall"] == 0.0 and four["sad"]["recall"] == 0.0
    # UA is the mean over the corpus's emotions that occur (happy has no clip here)
    assert figures["pooled"]["ua"] == pytest.approx((0.5 + 0.0 + 0.0) / 3)
    assert figures["restricted"]["ua"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert figures["predicted_share"] == pytest.approx(
        {**{e: 0.0 for e in EMOTIONS}, "calm": 0.25, "neutral": 0.25, "surprised": 0.25,
         "fearful": 0.25})
    assert figures["emotions"] == list(urdu)


def test_cross_corpus_on_all_eight_emotions_has_no_restricted_figure():
    true = np.arange(8)
    figures = cross_corpus(true, np.eye(8), EMOTIONS)
    assert figures["pooled"]["ua"] == 1.0 and "restricted" not in figures


@pytest.mark.realdata
def test_the_shared_urdu_copy_is_labelled_100_per_emotion():
    need(SHARED_URDU.is_dir(), f"URDU copy not found at {SHARED_URDU}")
    files = sorted(SHARED_URDU.rglob("*.flac"))
    labels = [urdu_label(f) for f in files]
    assert len(files) == 400 and None not in labels
    counts = {EMOTIONS[label]: labels.count(label) for label in set(labels)}
    assert counts == {"angry": 100, "happy": 100, "neutral": 100, "sad": 100}
    assert all(f.parent.name.lower() == EMOTIONS[label] for f, label in zip(files, labels))
