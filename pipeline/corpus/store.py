"""The HDF5 feature store: shards of rows, and the manifest that lists them.

A shard ``shard-NNNNN.h5`` holds, for its rows (one row per clip copy):

- ``features``: float16 ``(n, 2, n_mels, num_frames)`` (channel 0 MFCC, 1 log-mel dB)
- ``copy`` int8 (0: the clean copy), ``clip_id`` bytes ``(n,)``
- ``aug_params`` float64 ``(n, 9)``: ``AugmentParams.FIELDS`` (shift_seconds, semitones,
  snr_db, speed, noise_seed, noise_beta, telephone, rt60, drr_db)

and attributes: ``cache_key``, ``feature_config`` / ``augment_config``
(JSON), ``code_version``, ``clip_ids`` (the clips assigned to it) and ``failures`` (JSON).

Layout: contiguous datasets, no chunking, no compression. Training reads whole shards
into memory, so chunking buys nothing; float16 halves the size of float32 and is far
finer than the features' noise (log-mel values up to ~1e2 dB keep ~0.05 dB); gzip on
float16 spectra saved ~10 % at several times the write and read time (see
``benchmarks/bench_extract.py --layout``).

Each shard is written by one process under a temporary name and renamed when complete.

The manifest records each shard's size and SHA-256; ``shard_problem`` checks a shard
against them and is the one check both sides use: ``load_store`` (train, evaluate)
refuses a shard that fails it, and ``extract`` rebuilds that shard instead of calling the
store current, so the two never disagree. Hashing reads every byte: ~1.5 GB/s measured
on a 400 MB file in the page cache (2-core machine), so ~0.07 s for the default profile's
~104 MB store, the same read ``train`` does anyway. The modification time is not
trusted: a file overwritten in place can keep it.

Labels, speakers, corpora and folds are not stored: they belong to the index, and
``load_store`` joins them to the rows by clip id, so assigning folds anew or remapping a
corpus's labels never touches the features.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import faults, layout
from pipeline.core.atomic import read_json
from pipeline.core.errors import StaleInputError
from pipeline.core.hashing import hash_file

COLUMNS = ("copy",)


@dataclass
class FeatureStore:
    """All rows of a feature store in memory; ``features`` float16 ``(n, 2, n_mels,
    num_frames)``. From the index the store was loaded with: ``label`` (int, position in
    ``label_map``), ``speaker`` (str, ``<corpus>:<speaker>``), ``actor`` (int codes of the
    speakers, 0..n-1), ``corpus`` (str) and ``fold``."""

    features: np.ndarray
    label: np.ndarray
    actor: np.ndarray
    speaker: np.ndarray
    corpus: np.ndarray
    fold: np.ndarray
    copy: np.ndarray
    clip_id: np.ndarray  # str
    aug_params: np.ndarray
    manifest: dict
    label_map: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.label)


def write_shard(path: Path, *, rows: dict[str, np.ndarray], attrs: dict) -> None:
    """Write one shard atomically: a temporary file in the same folder, then rename."""
    import h5py

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("features", data=rows["features"].astype(np.float16))
            for column in COLUMNS:
                handle.create_dataset(column, data=rows[column].astype(np.int8))
            handle.create_dataset("clip_id", data=np.asarray(rows["clip_id"], dtype="S"))
            handle.create_dataset("aug_params", data=rows["aug_params"].astype(np.float64))
            for key, value in attrs.items():
                handle.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        faults.point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def shard_attrs(path: Path) -> dict | None:
    """A complete shard's attributes, or None if it is missing or unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return dict(handle.attrs)
    except (OSError, KeyError):
        return None


def read_shard(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as handle:
        rows = {name: handle[name][()] for name in ("features", "aug_params", *COLUMNS)}
        rows["clip_id"] = handle["clip_id"][()].astype(str)
    return rows


def shard_problem(path: Path, entry: dict) -> str:
    """Why the shard at ``path`` no longer matches its manifest ``entry`` (``bytes``,
    ``sha256``): a short phrase, or ``""`` when it matches. Reads the whole file (its
    SHA-256); never raises for a missing or unreadable file (that is the phrase)."""
    try:
        size = path.stat().st_size
        if size != entry.get("bytes"):
            return f"{size} bytes where the manifest says {entry.get('bytes')}"
        if hash_file(path) != entry.get("sha256"):
            return "its content no longer matches the manifest's SHA-256"
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    return ""


def load_manifest(artifacts_dir: Path) -> dict:
    """The feature store's manifest; ``StaleInputError`` naming the fix when missing."""
    record = read_json(layout.features_manifest(artifacts_dir))
    if not record:
        raise StaleInputError(f"no feature store at {layout.features_dir(artifacts_dir)}: "
                              "run 'ser extract' first")
    return record


def load_store(artifacts_dir: Path, *, clips: list) -> FeatureStore:
    """Read every shard listed in the manifest into memory, each row's fold taken from
    ``clips`` (the index: ``pipeline.corpus.index.load_index``).

    Refuses, naming the stage to rerun, a store extracted from other clips than the
    index's (``pipeline.corpus.index.clips_hash``) or with missing or changed shards.
    """
    from pipeline.corpus.index import clips_hash

    folder = layout.features_dir(artifacts_dir)
    record = load_manifest(artifacts_dir)
    if record.get("clips_hash") != clips_hash(clips):
        raise StaleInputError(f"features in {folder} were extracted from other clips than the "
                              "index lists: rerun 'ser extract'")
    parts = []
    for shard in record["shards"]:
        path = folder / shard["file"]
        problem = shard_problem(path, shard)
        if problem:
            raise StaleInputError(f"shard {path} is missing or changed since extraction "
                                  f"({problem}): rerun 'ser extract'")
        attrs = shard_attrs(path)
        if attrs is None or attrs.get("cache_key") != record["key"]:
            raise StaleInputError(f"shard {path} belongs to another feature config: "
                                  "rerun 'ser extract'")
        if shard["rows"]:
            parts.append(read_shard(path))
    if not parts:
        raise StaleInputError(f"feature store {folder} has no rows: rerun 'ser extract'")
    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return FeatureStore(manifest=record, **merged, **_joined(clips, merged["clip_id"]))


def labels_key(store: FeatureStore) -> str:
    """A hash of what the index joined onto the rows and training depends on beyond the
    features: the label set and each clip's emotion and speaker (a fixed manifest row or a
    changed label map or speaker pattern retrains; ``train.run_key``)."""
    from pipeline.core.hashing import hash_obj

    return hash_obj([list(store.label_map), sorted({
        (str(c), int(y), str(s)) for c, y, s in zip(store.clip_id, store.label, store.speaker)})])


def _joined(clips: list, clip_ids: np.ndarray) -> dict:
    """The index's columns for each row's clip: label (position in the model's label
    set), speaker, its integer code, corpus and fold."""
    from pipeline.core.labels import EMOTIONS

    by_id = {clip.clip_id: clip for clip in clips}
    rows = [by_id[clip_id] for clip_id in clip_ids]
    speaker = np.array([c.speaker for c in rows], dtype=str)
    _, actor = np.unique(speaker, return_inverse=True)
    return {"label": np.array([EMOTIONS.index(c.emotion) for c in rows], dtype=np.int8),
            "speaker": speaker, "actor": actor.astype(np.int64),
            "corpus": np.array([c.corpus for c in rows], dtype=str),
            "fold": np.array([c.fold for c in rows], dtype=np.int8), "label_map": EMOTIONS}
