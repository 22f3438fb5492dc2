"""Tests of pipeline/signal/audio.py: decoding, resampling, and the failures that must surface as
an AudioError naming the file (through the front end, which every stage reads with)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.signal import frontend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import AudioError, PipelineError
from pipeline.signal.audio import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    read,
    resample,
)
from pipeline.signal.features import FeatureConfig


def _tone(seconds: float, *, sample_rate: int, freq: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(y: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sample_rate)[np.argmax(spectrum)])


def test_stereo_is_read_as_frames_by_channels(tmp_path):
    left = _tone(0.5, sample_rate=16000, freq=440.0, amplitude=0.6)
    right = _tone(0.5, sample_rate=16000, freq=1000.0, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")

    samples, sample_rate = read(path)
    assert samples.shape == (left.size, 2) and sample_rate == 16000
    np.testing.assert_array_equal(samples, np.stack([left, right], axis=1))


@pytest.mark.parametrize("file_rate", [8000, 22050, 44100, 48000])
def test_resample_to_the_requested_rate_keeps_the_pitch(tmp_path, file_rate):
    path = tmp_path / f"tone-{file_rate}.flac"
    soundfile.write(path, _tone(1.0, sample_rate=file_rate, freq=440.0), file_rate)
    samples, rate = read(path)
    y = resample(samples[:, 0], orig_sr=rate, target_sr=16000)
    assert y.dtype == np.float32
    assert abs(y.size - 16000) <= 1
    assert abs(_peak_hz(y, 16000) - 440.0) < 2.0  # the pitch survives resampling


def test_resample_at_the_same_rate_returns_the_samples_unchanged():
    y = _tone(0.1, sample_rate=16000, freq=300.0)
    np.testing.assert_array_equal(resample(y, orig_sr=16000, target_sr=16000), y)


# --- files that are not usable audio ------------------------------------------------------


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("this is not audio, just a text file with a .wav name\n" * 20)


def _wav_bytes(tmp: Path) -> bytes:
    soundfile.write(tmp, _tone(0.5, sample_rate=16000, freq=440.0), 16000)
    return tmp.read_bytes()


def _truncated_in_header(path: Path) -> None:
    path.write_bytes(_wav_bytes(path.with_suffix(".full.wav"))[:30])  # before the data chunk


def _truncated_to_header(path: Path) -> None:
    path.write_bytes(_wav_bytes(path.with_suffix(".full.wav"))[:44])  # a header and no frames


def _silent(path: Path) -> None:
    soundfile.write(path, np.zeros(16000, dtype=np.float32), 16000)


def _non_finite(path: Path) -> None:
    y = _tone(0.5, sample_rate=16000, freq=440.0)
    y[100] = np.nan
    soundfile.write(path, y, 16000, subtype="FLOAT")


def _missing(path: Path) -> None:
    pass


@pytest.mark.parametrize("make, reason", [
    (_empty, "empty file"),
    (_text, "not readable audio"),
    (_truncated_in_header, "not readable audio"),
    (_truncated_to_header, "no audio frames"),
    (_silent, "silent"),
    (_non_finite, "NaN or infinite"),
    (_missing, "cannot open"),
], ids=["empty", "text", "truncated-header", "header-only", "silent", "nan", "missing"])
def test_unusable_files_raise_audio_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "03-01-05-01-01-01-07.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as caught:
        frontend.load(path, FeatureConfig())
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, PipelineError)  # the CLI turns it into one clean line


def test_a_quiet_but_real_recording_is_not_called_silent():
    quiet = _tone(0.5, sample_rate=16000, freq=440.0, amplitude=0.001)[:, None]  # -60 dBFS
    y = frontend.condition(quiet, file_rate=16000, sample_rate=16000,
                           config=FeatureConfig().front_end)
    assert np.max(np.abs(y)) > 0.01  # brought to the standard level, not refused


# --- headers outside the limits are refused before decoding --------------------------------


def _header_only_read_budget(monkeypatch):
    """Fail the test if any samples are decoded: the header check must come first."""
    def no_decode(self, *args, **kwargs):
        raise AssertionError("samples were decoded before the header was checked")
    monkeypatch.setattr(soundfile.SoundFile, "read", no_decode)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=st.one_of(st.integers(1, MIN_SAMPLE_RATE - 1),
                      st.integers(MAX_SAMPLE_RATE + 1, 2 ** 31 - 1)))
def test_a_header_rate_outside_the_limits_is_refused_before_decoding(tmp_path, monkeypatch, rate):
    path = tmp_path / "bad-rate.wav"
    soundfile.write(path, _tone(0.1, sample_rate=16000, freq=440.0), rate)
    with monkeypatch.context() as patch:
        _header_only_read_budget(patch)
        with pytest.raises(AudioError, match=f"sample rate {rate} Hz is (below|above)") as caught:
            read(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE])
def test_the_rate_limits_themselves_are_accepted(tmp_path, rate):
    path = tmp_path / "edge.wav"
    soundfile.write(path, _tone(0.1, sample_rate=rate, freq=440.0), rate)
    assert read(path)[1] == rate


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(channels=st.integers(MAX_CHANNELS + 1, 1024))  # libsndfile writes up to 1024
def test_too_many_channels_are_refused_before_decoding(tmp_path, monkeypatch, channels):
    path = tmp_path / "array.wav"
    soundfile.write(path, np.zeros((16, channels), dtype=np.float32), 16000)
    with monkeypatch.context() as patch:
        _header_only_read_budget(patch)
        with pytest.raises(AudioError, match=f"{channels} channels, more than the limit "
                                             f"of {MAX_CHANNELS}"):
            read(path)


def test_the_channel_limit_itself_is_accepted(tmp_path):
    path = tmp_path / "array.wav"
    soundfile.write(path, np.zeros((16, MAX_CHANNELS), dtype=np.float32), 16000)
    assert read(path)[0].shape == (16, MAX_CHANNELS)


def _silence_flac(path: Path, *, seconds: float, rate: int, channels: int) -> Path:
    """Digital silence as FLAC: a few kilobytes that decode to ``seconds`` x ``channels``."""
    with soundfile.SoundFile(path, "w", rate, channels, format="FLAC") as handle:
        block = np.zeros((rate, channels), dtype=np.float32)
        for _ in range(int(seconds)):
            handle.write(block)
    return path


def test_a_header_promising_more_than_the_budget_is_refused_before_decoding(tmp_path,
                                                                            monkeypatch):
    """200 KB of FLAC that decodes to 737 MB (8 channels, 384 kHz, 60 s): refused from
    the header alone, on disk and in memory (an upload), with the budget in the line."""
    from pipeline.core.errors import TooLongError
    from pipeline.signal.audio import DECODE_BUDGET_BYTES, read_bytes

    path = _silence_flac(tmp_path / "bomb.flac", seconds=60, rate=384_000, channels=8)
    assert path.stat().st_size < 300_000
    data = path.read_bytes()
    with monkeypatch.context() as patch:
        _header_only_read_budget(patch)
        for call in (lambda: read(path), lambda: read_bytes(data, name="bomb.flac")):
            with pytest.raises(TooLongError) as caught:
                call()
            assert "its header promises 60 s, 737 MB decoded, more than the " \
                   f"{DECODE_BUDGET_BYTES / 1e6:g} MB one recording may take in memory " \
                   "(8 channels at 384000 Hz)" in str(caught.value)


def test_the_seconds_limit_of_an_upload_is_checked_before_decoding(monkeypatch):
    from pipeline.core.errors import TooLongError
    from pipeline.signal.audio import read_bytes

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(3 * 16000, np.float32), 16000, format="WAV")
    with monkeypatch.context() as patch:
        _header_only_read_budget(patch)
        with pytest.raises(TooLongError, match=r"^up.wav: lasts 3 s, more than the 2 s limit"):
            read_bytes(buffer.getvalue(), name="up.wav", max_seconds=2)


def test_a_file_over_the_budget_is_streamed_in_bounded_blocks(tmp_path, monkeypatch):
    """The CLI does not refuse it: it goes the streamed way, whose blocks never hold more
    than ``BLOCK_BYTES`` decoded, and ends with the one line a silent file gets."""
    from pipeline.core.errors import NoSpeechError
    from pipeline.signal import stream

    path = _silence_flac(tmp_path / "wide.flac", seconds=4, rate=96_000, channels=8)
    monkeypatch.setattr("pipeline.signal.audio.DECODE_BUDGET_BYTES", 1_000_000)
    monkeypatch.setattr(stream, "BLOCK_BYTES", 400_000)
    assert is_long(path)
    sizes = []
    original = soundfile.SoundFile.read

    def counted(self, frames=-1, *args, **kwargs):
        block = original(self, frames, *args, **kwargs)
        sizes.append(block.nbytes)
        return block

    monkeypatch.setattr(soundfile.SoundFile, "read", counted)
    with pytest.raises(NoSpeechError, match=r"wide.flac: no speech detected in 4 s of audio"):
        list(stream.segments(path, FeatureConfig()))
    assert sizes and max(sizes) <= 400_000 and sum(sizes) == 4 * 96_000 * 8 * 4


def is_long(path) -> bool:
    """``stream.is_long`` of the file at ``path``, opened as ``predict`` opens it."""
    from pipeline.signal import stream
    from pipeline.signal.audio import open_file

    with open_file(path) as opened:
        return stream.is_long(opened)
