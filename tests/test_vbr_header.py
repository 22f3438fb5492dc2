"""Tests of pipeline/signal/vbr_header.py and of what it is for: an MP3 whose VBR (Xing) header
lies about its length decodes to the audio really in it, the same frames on the
whole-file path, the in-memory path (the service) and the streamed path, and a claim
of hours on a small file makes none of them spin."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from conftest import synth_speech
from pipeline.core.errors import TooLongError, UnreadableAudioError
from pipeline.signal import audio, frontend, stream
from pipeline.signal.features import FeatureConfig
from pipeline.signal.vbr_header import frame_count_offset

RATE = 16000
HOURS_26_7 = int(26.7 * 3600 * RATE / 576)  # MPEG-2 layer III: 576 samples a frame

pytestmark = pytest.mark.skipif("MP3" not in soundfile.available_formats(),
                                reason="this libsndfile cannot write MP3")


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> bytes:
    """2.5 s of synthesised speech as an MP3 written by libsndfile (LAME, with a Xing header)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, synth_speech(emotion=5, seconds=2.5, seed=1), RATE, format="MP3")
    return buffer.getvalue()


def claiming(data: bytes, frames: int) -> bytes:
    """``data`` with its Xing header's frame count replaced by ``frames``."""
    offset = frame_count_offset(data)
    return data[:offset] + struct.pack(">I", frames) + data[offset + 4:]


def test_the_frame_count_found_is_the_one_the_decoder_reports(honest):
    frames = struct.unpack(">I", honest[frame_count_offset(honest):][:4])[0]
    claimed = soundfile.info(io.BytesIO(honest)).frames
    assert 0 <= frames * 576 - claimed <= 3 * 576  # less the encoder's delay and padding


def test_a_file_with_an_id3_tag_first_is_parsed_past_it(honest):
    tag = b"TIT2\x00\x00\x00\x05\x00\x00\x00abcd"
    tagged = b"ID3\x03\x00\x00" + bytes([0, 0, 0, len(tag)]) + tag + honest
    assert frame_count_offset(tagged) == frame_count_offset(honest) + 10 + len(tag)


@pytest.mark.parametrize("frames", [HOURS_26_7, 10], ids=["claims-26.7-h", "claims-0.4-s"])
def test_a_lying_header_decodes_to_the_audio_really_there(tmp_path, honest, frames):
    truth, _ = audio.read_bytes(honest, name="honest.mp3")
    lying = claiming(honest, frames)
    path = tmp_path / "lying.mp3"
    path.write_bytes(lying)
    from_file, rate = audio.read(path)
    from_memory, _ = audio.read_bytes(lying, name="lying.mp3", max_seconds=600)
    assert rate == RATE
    np.testing.assert_array_equal(from_file, from_memory)
    # the same audio; the lifted count only keeps up to one frame of encoder padding
    assert 0 <= len(from_file) - len(truth) <= 1152
    np.testing.assert_array_equal(from_file[:len(truth)], truth)


@pytest.mark.parametrize("frames", [HOURS_26_7, 10], ids=["claims-26.7-h", "claims-0.4-s"])
def test_the_streamed_path_finds_what_the_whole_file_path_finds(tmp_path, honest, frames):
    path = tmp_path / "lying.mp3"
    path.write_bytes(claiming(honest, frames))
    config = FeatureConfig()
    whole = frontend.load(path, config)
    streamed = list(stream.segments(path, config))
    assert len(streamed) == len(whole.segments) >= 1
    for piece, segment in zip(streamed, whole.segments):
        assert piece.start_s == pytest.approx(segment.start / config.sample_rate, abs=0.05)
        assert piece.end_s == pytest.approx(segment.end / config.sample_rate, abs=0.05)


def test_a_claim_of_hours_is_streamed_and_scored_like_the_honest_file(tmp_path, honest):
    """Through the CLI: the 26.7 h claim goes the streamed way, the honest file the
    whole-file way; both end with the same verdict on the same 2.5 s."""
    (tmp_path / "honest.mp3").write_bytes(honest)
    (tmp_path / "hours.mp3").write_bytes(claiming(honest, HOURS_26_7))
    assert is_long(tmp_path / "hours.mp3") and not is_long(tmp_path / "honest.mp3")
    out = tmp_path / "rows.jsonl"
    done = subprocess.run([sys.executable, "-m", "pipeline", "-q", "predict", "--no-tta",
                           str(tmp_path / "honest.mp3"), str(tmp_path / "hours.mp3"),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {json.loads(line)["path"]: json.loads(line) for line in out.read_text().splitlines()}
    honest_row, hours_row = rows[str(tmp_path / "honest.mp3")], rows[str(tmp_path / "hours.mp3")]
    assert not honest_row["error"] and not hours_row["error"]
    assert hours_row["emotion"] == honest_row["emotion"]
    assert hours_row["confidence"] == pytest.approx(honest_row["confidence"], abs=0.05)


def test_a_file_that_decodes_past_the_budget_is_refused_whatever_it_claims(honest):
    lying = claiming(honest, 10)  # says 0.4 s: nothing to refuse before decoding
    with pytest.raises(TooLongError, match=r"lying.mp3: it decodes to more than the 0.1 MB "
                                           r"one recording may take in memory \(1 channel "):
        audio.read_bytes(lying, name="lying.mp3", budget=100_000)
    with pytest.raises(TooLongError, match=r"^lying.mp3: decodes to more than the 1 s limit; "
                                           r"split it$"):
        audio.read_bytes(lying, name="lying.mp3", max_seconds=1.0)


@pytest.mark.parametrize("data", [
    b"ID3\x03\x00\x00\x00\x00\x00\x0fTIT2\x00\x00\x00\x05\x00\x00\x00abcd",
    b"TAG" + b"title".ljust(125, b"\0"),
], ids=["id3v2-tag-only", "id3v1-tag-only"])
def test_an_mp3_that_holds_only_a_tag_says_it_has_no_audio_frames(tmp_path, data):
    path = tmp_path / "tag-only.mp3"
    path.write_bytes(data)
    with pytest.raises(UnreadableAudioError) as caught:
        audio.read(path)
    assert str(caught.value) == f"{path}: no audio frames (an MP3 tag without audio after it)"


def test_reasons_name_the_file_as_text_never_as_bytes(tmp_path):
    path = tmp_path / "caf\udce9-notes.wav"  # a name that is not UTF-8
    with open(bytes(path), "wb") as handle:
        handle.write(b"not audio at all\n" * 10)
    with pytest.raises(UnreadableAudioError) as caught:
        audio.read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not readable audio (") and "b'" not in message


def is_long(path) -> bool:
    """``stream.is_long`` of the file at ``path``, opened as ``predict`` opens it."""
    from pipeline.signal import stream
    from pipeline.signal.audio import open_file

    with open_file(path) as opened:
        return stream.is_long(opened)
