"""The RAVDESS file-name parser and label map (``pipeline/corpus/recipes/ravdess_names.py``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.corpus.recipes import ravdess_names as ravdess
from pipeline.corpus.recipes.ravdess_names import BadClipName, parse_name

# The convention, written independently of the module: seven ASCII two-digit fields.
_VALID_FIELDS = {
    "modality": (1, 2, 3), "vocal channel": (1, 2), "emotion": tuple(range(1, 9)),
    "intensity": (1, 2), "statement": (1, 2), "repetition": (1, 2), "actor": tuple(range(1, 100)),
}
_ASCII_STEM = re.compile(r"[0-9]{2}(?:-[0-9]{2}){6}")


def _stem(fields: tuple[int, ...]) -> str:
    return "-".join(f"{field:02d}" for field in fields)


valid_fields = st.tuples(*(st.sampled_from(values) for values in _VALID_FIELDS.values()))


def test_parses_a_known_name() -> None:
    name = parse_name("03-01-05-02-01-02-12")
    assert (name.modality, name.vocal_channel, name.emotion, name.intensity,
            name.statement, name.repetition, name.actor) == (3, 1, 4, 2, 1, 2, 12)
    assert ravdess.EMOTIONS[name.emotion] == "angry"
    assert name.gender == "female"
    assert name.is_speech
    assert name.clip_id == "03-01-05-02-01-02-12"


def test_song_and_gender() -> None:
    song = parse_name("03-02-01-01-01-01-07")
    assert not song.is_speech
    assert song.gender == "male"


@settings(max_examples=100)
@given(valid_fields)
def test_valid_names_round_trip(fields: tuple[int, ...]) -> None:
    stem = _stem(fields)
    name = parse_name(stem)
    assert name.clip_id == stem
    assert name.emotion == fields[2] - 1
    assert name.gender == ("male" if fields[6] % 2 else "female")
    assert name.is_speech == (fields[1] == 1)


@pytest.mark.parametrize("position, field", list(enumerate(_VALID_FIELDS)))
def test_out_of_range_field_is_named(position: int, field: str) -> None:
    fields = [3, 1, 1, 1, 1, 1, 1]
    fields[position] = 0
    with pytest.raises(BadClipName, match=field):
        parse_name(_stem(tuple(fields)))


@pytest.mark.parametrize("stem", [
    "", "recording", "03-01-01-01-01-01", "03-01-01-01-01-01-01-01", "3-1-1-1-1-1-1",
    "03_01_01_01_01_01_01", "03-01-01-01-01-01-01 ", "03-01-01-01-01-01-01\n",
    "\u0660\u0663-01-01-01-01-01-01",  # Arabic-Indic digits: not the ASCII convention
])
def test_malformed_names_are_refused(stem: str) -> None:
    with pytest.raises(BadClipName):
        parse_name(stem)


@settings(max_examples=100)
@given(st.one_of(
    st.text(max_size=24),
    valid_fields.map(_stem).flatmap(lambda stem: st.tuples(st.just(stem), st.text(max_size=3)))
    .map(lambda pair: pair[0] + pair[1]),
    st.lists(st.integers(0, 99), min_size=7, max_size=7).map(lambda fields: _stem(tuple(fields))),
))
def test_parser_accepts_exactly_the_convention(stem: str) -> None:
    """Any string either parses to a name whose clip id is the string itself, or is
    refused; it parses exactly when it is seven ASCII fields, each in range."""
    in_convention = bool(_ASCII_STEM.fullmatch(stem)) and all(
        int(value) in allowed
        for value, allowed in zip(stem.split("-"), _VALID_FIELDS.values()))
    try:
        name = parse_name(stem)
    except BadClipName:
        assert not in_convention
    else:
        assert in_convention
        assert name.clip_id == stem
