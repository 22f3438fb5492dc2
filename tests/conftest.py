"""Shared fixtures: a seeded rng and tiny synthetic RAVDESS trees written into tmp_path
with the real file-name convention (torchaudio's dataset tests do the same)."""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

SHARED_RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "ravdess"
SHARED_URDU = SHARED_RAVDESS.parent / "urdu"

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _shared_ravdess(request):
    """Every ``realdata`` test: skipped without ../shared/ravdess, failed under CI=true."""
    if request.node.get_closest_marker("realdata"):
        need(SHARED_RAVDESS.is_dir(), f"real RAVDESS copy not found at {SHARED_RAVDESS}")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def clip_name(*, emotion: int, actor: int, intensity: int = 1, statement: int = 1,
              repetition: int = 1, channel: int = 1) -> str:
    """A RAVDESS stem; ``emotion`` is 1-based as in the names."""
    return f"03-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"


ESPEAK = shutil.which("espeak-ng")
SENTENCES = ("Kids are talking by the door", "Dogs are sitting by the door",
             "The door is open and the kids are talking")
VOICES = ("en-us", "en-gb", "en-us+f2", "en-gb+f3")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip the calling test when ``condition`` fails, or fail it under ``CI=true``, where
    everything the suite needs (espeak-ng, ../shared, a browser) is installed."""
    if not condition:
        (pytest.fail if IN_CI else pytest.skip)(reason)


@functools.lru_cache(maxsize=None)
def _espeak(text: str, *, voice: str, pitch: int, words_per_minute: int) -> tuple[np.ndarray, int]:
    """Real synthetic speech from Debian's espeak-ng: float32 ``(num_samples,)`` and its rate."""
    need(ESPEAK is not None, "espeak-ng is not installed (scripts/setup.sh installs it as root; "
                             "or: apt-get install espeak-ng)")
    wav = subprocess.run([ESPEAK, "--stdout", "-v", voice, "-p", str(pitch),
                          "-s", str(words_per_minute), text],
                         check=True, capture_output=True).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return samples, rate


def synth_speech(*, emotion: int, seconds: float = 1.2, sample_rate: int = 16000,
                 seed: int = 0, channels: int = 1) -> np.ndarray:
    """Real (synthesised) English speech whose pitch and tempo depend on the emotion and
    whose voice and sentence depend on ``seed``, with 0.3 s of near-silence on both ends.
    Utterances are repeated, 0.4 s apart, until the speech lasts about ``seconds``
    (at least one). float32 ``(num_frames,)`` or ``(num_frames, channels)``."""
    from pipeline.signal.audio import resample

    local = np.random.default_rng(seed)
    utterance, rate = _espeak(SENTENCES[seed % len(SENTENCES)], voice=VOICES[seed // 3 % len(VOICES)],
                              pitch=15 + 9 * emotion, words_per_minute=110 + 20 * emotion)
    utterance = resample(utterance, orig_sr=rate, target_sr=sample_rate)
    pause = np.zeros(int(0.4 * sample_rate), dtype=np.float32)
    parts = [utterance]
    while sum(p.size for p in parts) < seconds * sample_rate - utterance.size / 2:
        parts += [pause, utterance]
    silence = np.zeros(int(0.3 * sample_rate), dtype=np.float32)
    y = 0.3 * np.concatenate([silence, *parts, silence]) / max(1e-9, np.abs(utterance).max())
    y = (y + 3e-4 * local.standard_normal(y.size)).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def write_corpus(root: Path, *, actors=(1, 2, 3, 4), emotions=range(1, 9), takes=2,
                 sample_rate: int = 16000, suffix: str = ".wav") -> list[Path]:
    """A tiny RAVDESS tree ``root/Actor_XX/<name><suffix>``; returns the files written."""
    written = []
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for emotion in emotions:
            for take in range(takes):
                name = clip_name(emotion=emotion, actor=actor, statement=1 + take % 2,
                                 repetition=1 + take // 2 % 2, intensity=1 + take // 4 % 2)
                path = folder / f"{name}{suffix}"
                y = synth_speech(emotion=emotion, sample_rate=sample_rate,
                                 seed=actor * 1000 + emotion * 10 + take)
                soundfile.write(path, y, sample_rate)
                written.append(path)
    return written


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A folder of 4 actors x 8 emotions x 2 takes (64 clips, 16 kHz WAV)."""
    root = tmp_path / "corpus"
    write_corpus(root)
    return root


@pytest.fixture
def indexed(tmp_path, corpus) -> Path:
    """A data folder whose download and index stages ran on ``corpus`` (2 folds)."""
    from pipeline.corpus.download import download
    from pipeline.corpus.index import IndexConfig, build_index

    data_dir = tmp_path / "data"
    download(data_dir=data_dir, source=str(corpus))
    build_index(data_dir=data_dir, config=IndexConfig(folds=2, seed=0))
    return data_dir


@pytest.fixture
def runner():
    """A click CliRunner (the CLI's log handler follows whatever stderr is current)."""
    from click.testing import CliRunner

    return CliRunner()


def prepare_store(root: Path, *, folds: int, copies: int = 1) -> tuple[Path, Path, Path]:
    """download + index + extract on a fresh 64-clip synthetic corpus under ``root``.
    Returns ``(corpus, data_dir, artifacts_dir)``."""
    from pipeline.corpus.download import download
    from pipeline.corpus.extract import ExtractConfig, extract
    from pipeline.corpus.index import IndexConfig, build_index
    from pipeline.signal.augment import AugmentConfig

    corpus, data_dir, artifacts_dir = root / "corpus", root / "data", root / "artifacts"
    write_corpus(corpus)
    download(data_dir=data_dir, source=str(corpus))
    build_index(data_dir=data_dir, config=IndexConfig(folds=folds, seed=0))
    extract(data_dir=data_dir, artifacts_dir=artifacts_dir,
            config=ExtractConfig(augment=AugmentConfig(copies=copies), shard_clips=16))
    return corpus, data_dir, artifacts_dir


@pytest.fixture
def hide_module(monkeypatch):
    """``hide_module("matplotlib")``: from then on in the test, importing that package
    fails as if it were not installed."""
    import builtins

    real_import = builtins.__import__

    def hide(package: str) -> None:
        def fake_import(name, *args, **kwargs):
            if name == package or name.startswith(package + "."):
                raise ImportError(f"No module named '{package}'")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake_import)

    return hide


@functools.lru_cache(maxsize=None)
def _tiny_audio(suffix: str) -> bytes:
    """0.05 s of float noise at 16 kHz, encoded as ``suffix`` (".wav" or ".flac")."""
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, 800).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, noise, 16000, format=suffix.lstrip(".").upper(),
                    subtype="FLOAT" if suffix == ".wav" else "PCM_16")
    return buffer.getvalue()


def write_tiny_tree(root: Path, *relatives: str) -> Path:
    """A tiny audio file (a non-audio one for other suffixes) at each root-relative path,
    for recipes to read names from; returns ``root``."""
    for relative in relatives:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_tiny_audio(path.suffix) if path.suffix in (".wav", ".flac") else b"x")
    return root
