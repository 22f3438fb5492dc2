"""A folder of hostile inputs beside good ones, built from nothing but espeak-ng speech
and numpy: what ``tests/test_hostile.py`` scores and ``benchmarks/bench_hostile.py``
measures. No corpus file is used.

``build(folder)`` returns ``{"good": [...], "scaled": {copy: source}, "errors": {path:
expected error text}, "skipped": {path: reason}}``: the files that must be scored, the
scaled copies that must score like their source, the files that must get an error row
(with a fragment of its message), and the files a folder scan must skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from conftest import synth_speech

RATE = 16000


def _tone(seconds: float, freq: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _not_speech(folder: Path) -> dict[Path, str]:
    rng = np.random.default_rng(0)
    signals = {
        "hum-50hz.wav": _tone(3.0, 50.0), "tone-440hz.wav": _tone(3.0, 440.0),
        "white-noise.wav": (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32),
        "dc-only.wav": np.full(3 * RATE, 0.2, dtype=np.float32),
        "dither-4lsb.wav": (rng.integers(-4, 5, 3 * RATE) / 32768).astype(np.float32),
        "one-sample.wav": np.array([0.5], dtype=np.float32),
        "tone-10ms.wav": _tone(0.01, 1000.0),
    }
    errors = {}
    for name, y in signals.items():
        soundfile.write(folder / name, y, RATE, subtype="PCM_16")
        errors[folder / name] = "no speech detected" if name != "dc-only.wav" else "silent"
    return errors


def _broken(folder: Path, speech: np.ndarray) -> dict[Path, str]:
    errors = {}
    soundfile.write(folder / "rate-3hz.wav", speech[:3000], 3)
    errors[folder / "rate-3hz.wav"] = "sample rate 3 Hz is below 8000 Hz"
    soundfile.write(folder / "rate-1mhz.wav", speech[:3000], 1_000_000)
    errors[folder / "rate-1mhz.wav"] = "sample rate 1000000 Hz is above the 384000 Hz limit"
    soundfile.write(folder / "channels-40.wav", np.zeros((1600, 40), dtype=np.float32), RATE)
    errors[folder / "channels-40.wav"] = "40 channels, more than the limit of 32"
    nan = speech.copy()
    nan[100] = np.nan
    soundfile.write(folder / "nan.wav", nan, RATE, subtype="FLOAT")
    errors[folder / "nan.wav"] = "NaN or infinite"
    (folder / "empty.wav").write_bytes(b"")
    errors[folder / "empty.wav"] = "empty file"
    (folder / "text.wav").write_text("not audio, a text file with a .wav name\n" * 20)
    errors[folder / "text.wav"] = "not readable audio"
    os.symlink(folder / "nowhere.wav", folder / "broken-link.wav")
    errors[folder / "broken-link.wav"] = "cannot open"
    return errors


def build(folder: Path) -> dict:
    """Write the hostile folder (see module docstring) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    speech = synth_speech(emotion=5, seconds=2.5, sample_rate=RATE, seed=1)
    other = synth_speech(emotion=3, seconds=2.0, sample_rate=RATE, seed=2)
    good = [folder / "good-angry.wav", folder / "good-sad.flac", folder / "good.aiff",
            folder / "good.opus", Path(os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9.wav"))]
    soundfile.write(good[0], speech, RATE)
    soundfile.write(good[1], other, RATE)
    soundfile.write(good[2], speech, RATE)
    soundfile.write(good[3], other, RATE, format="OGG", subtype="OPUS")
    soundfile.write(os.fsencode(good[4]), other, RATE, format="WAV")  # a name that is not UTF-8
    huge = folder / "float-1e18.wav"  # absurd sample values: conditioned, scored like its source
    soundfile.write(huge, (speech.astype(np.float64) * 1e18).astype(np.float32), RATE,
                    subtype="FLOAT")
    skipped = {folder / "._good-angry.wav": "hidden", folder / "notes.txt": "not audio (.txt)"}
    (folder / "._good-angry.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(200))  # macOS fork
    (folder / "notes.txt").write_text("recorded on Tuesday")
    return {"good": good + [huge], "scaled": {huge: good[0]},
            "errors": {**_not_speech(folder), **_broken(folder, speech)}, "skipped": skipped}
