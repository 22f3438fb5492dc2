"""Shared fixtures: a seeded rng and tiny synthetic RAVDESS trees written into tmp_path
with the real file-name convention (torchaudio's dataset tests do the same)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "ravdess"

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    if SHARED_RAVDESS.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real RAVDESS copy not found at {SHARED_RAVDESS}")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def clip_name(*, emotion: int, actor: int, intensity: int = 1, statement: int = 1,
              repetition: int = 1, channel: int = 1) -> str:
    """A RAVDESS stem; ``emotion`` is 1-based as in the names."""
    return f"03-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"


def synth_speech(*, emotion: int, seconds: float = 1.2, sample_rate: int = 16000,
                 seed: int = 0, channels: int = 1) -> np.ndarray:
    """A voiced-looking tone whose pitch and brightness depend on the emotion, with
    silence on both ends. float32 ``(frames,)`` or ``(frames, channels)``."""
    local = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110.0 * 2 ** ((emotion - 1) / 4) * (1 + 0.02 * local.standard_normal())
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k ** (0.5 + 0.2 * emotion) for k in range(1, 8))
    envelope = np.sin(np.pi * t / seconds) ** 2
    y = 0.3 * envelope * voice / 4 + 0.002 * local.standard_normal(t.size)
    silence = np.zeros(int(0.3 * sample_rate))
    y = np.concatenate([silence, y, silence]).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def write_corpus(root: Path, *, actors=(1, 2, 3, 4), emotions=range(1, 9), takes=2,
                 sample_rate: int = 16000, suffix: str = ".wav") -> list[Path]:
    """A tiny RAVDESS tree ``root/Actor_XX/<name><suffix>``; returns the files written."""
    import soundfile

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
    from pipeline.download import download
    from pipeline.index import IndexConfig, build_index

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
    from pipeline.augment import AugmentConfig
    from pipeline.download import download
    from pipeline.extract import ExtractConfig, extract
    from pipeline.index import IndexConfig, build_index

    corpus, data_dir, artifacts_dir = root / "corpus", root / "data", root / "artifacts"
    write_corpus(corpus)
    download(data_dir=data_dir, source=str(corpus))
    build_index(data_dir=data_dir, config=IndexConfig(folds=folds, seed=0))
    extract(data_dir=data_dir, artifacts_dir=artifacts_dir,
            config=ExtractConfig(augment=AugmentConfig(copies=copies), shard_clips=16))
    return corpus, data_dir, artifacts_dir
