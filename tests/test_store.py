"""Tests of pipeline/corpus/store.py: shard round trip, atomic writes, and a store that refuses
to load when it no longer matches what was extracted."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.core import layout
from pipeline.core.atomic import read_json, write_json_atomic
from pipeline.core.errors import StaleInputError
from pipeline.core.hashing import hash_file
from pipeline.corpus.extract import ExtractConfig, extract
from pipeline.corpus.index import load_index
from pipeline.corpus.store import (
    load_store,
    read_shard,
    shard_attrs,
    shard_problem,
    write_shard,
)
from pipeline.signal.augment import AugmentConfig, AugmentParams

CONFIG = ExtractConfig(augment=AugmentConfig(copies=1), shard_clips=16)


def _rows(n: int = 3, shape=(2, 4, 5)) -> dict[str, np.ndarray]:
    local = np.random.default_rng(0)
    return {
        "features": local.standard_normal((n, *shape)).astype(np.float32) * 50,
        "copy": np.arange(n) % 3,
        "clip_id": np.asarray([f"03-01-0{i + 1}-01-01-01-01" for i in range(n)], dtype="S"),
        "aug_params": np.stack([AugmentParams(shift_seconds=0.1 * i).to_row() for i in range(n)]),
    }


def test_a_shard_round_trips_with_its_dtypes_and_attributes(tmp_path):
    rows = _rows()
    path = layout.shard_file(tmp_path, 3)
    assert path.name == "shard-00003.h5"
    path.parent.mkdir()
    write_shard(path, rows=rows, attrs={"cache_key": "abc", "seed": 4,
                                        "feature_config": {"n_mels": 4}, "failures": {}})
    back = read_shard(path)
    assert back["features"].dtype == np.float16
    np.testing.assert_array_equal(back["features"], rows["features"].astype(np.float16))
    for column in ("fold", "label", "actor"):  # these belong to the index, not the features
        assert column not in back
    assert back["copy"].dtype == np.int8
    np.testing.assert_array_equal(back["copy"], rows["copy"])
    assert back["aug_params"].dtype == np.float64
    np.testing.assert_array_equal(back["aug_params"], rows["aug_params"])
    assert list(back["clip_id"]) == [c.decode() for c in rows["clip_id"]]

    attrs = shard_attrs(path)
    assert attrs["cache_key"] == "abc" and attrs["seed"] == 4
    assert json.loads(attrs["feature_config"]) == {"n_mels": 4}  # dicts are kept as JSON
    assert json.loads(attrs["failures"]) == {}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_failed_write_leaves_neither_the_shard_nor_a_temporary_file(tmp_path):
    rows = _rows()
    del rows["copy"]
    path = tmp_path / "shard-00000.h5"
    with pytest.raises(KeyError):
        write_shard(path, rows=rows, attrs={})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rewrite_keeps_the_previous_complete_shard(tmp_path):
    path = tmp_path / "shard-00000.h5"
    write_shard(path, rows=_rows(), attrs={"cache_key": "old"})
    broken = _rows()
    del broken["aug_params"]
    with pytest.raises(KeyError):
        write_shard(path, rows=broken, attrs={"cache_key": "new"})
    assert shard_attrs(path)["cache_key"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_shard_attrs_are_none_for_a_missing_or_unreadable_file(tmp_path):
    assert shard_attrs(tmp_path / "nothing.h5") is None
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)  # an HDF5 signature, then nothing
    assert shard_attrs(garbage) is None


# --- loading an extracted store -----------------------------------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> tuple[Path, Path]:
    """(data_dir, artifacts_dir) of a store extracted once from the 64-clip corpus."""
    from conftest import write_corpus
    from pipeline.corpus.download import download
    from pipeline.corpus.index import IndexConfig, build_index

    tmp = tmp_path_factory.mktemp("extracted")
    write_corpus(tmp / "corpus")
    download(data_dir=tmp / "data", source=str(tmp / "corpus"))
    build_index(data_dir=tmp / "data", config=IndexConfig(folds=2, seed=0))
    extract(data_dir=tmp / "data", artifacts_dir=tmp / "artifacts", config=CONFIG)
    return tmp / "data", tmp / "artifacts"


@pytest.fixture
def store(extracted, tmp_path) -> tuple[Path, Path]:
    """(data_dir, artifacts_dir): a private copy of the extracted store, free to damage."""
    data_dir, artifacts = extracted
    shutil.copytree(layout.features_dir(artifacts), layout.features_dir(tmp_path / "artifacts"))
    return data_dir, tmp_path / "artifacts"


def test_load_store_reads_every_row(store):
    data_dir, artifacts = store
    clips = load_index(data_dir)
    loaded = load_store(artifacts, clips=clips)
    assert len(loaded) == len(clips) * 2 == loaded.manifest["rows"]
    assert loaded.features.shape == (len(loaded), *CONFIG.features.shape)
    assert loaded.features.dtype == np.float16
    assert loaded.aug_params.shape == (len(loaded), len(AugmentParams.FIELDS))
    by_id = {clip.clip_id: clip for clip in clips}
    assert set(loaded.clip_id) == set(by_id)
    for i in range(len(loaded)):
        clip = by_id[loaded.clip_id[i]]
        assert (loaded.label_map[loaded.label[i]], loaded.speaker[i], loaded.corpus[i],
                loaded.fold[i]) == (clip.emotion, clip.speaker, clip.corpus, clip.fold)
    assert loaded.actor.tolist() == [sorted(set(loaded.speaker)).index(s) for s in loaded.speaker]
    assert sorted(np.unique(loaded.copy)) == [0, 1]


def test_load_store_takes_the_folds_from_the_index_it_is_given(store):
    """Folds are joined by clip id at load time: reassigning them needs no extraction."""
    data_dir, artifacts = store
    clips = [dataclasses.replace(clip, fold=int(clip.speaker[-2:]) * 7 % 3)
             for clip in load_index(data_dir)]
    loaded = load_store(artifacts, clips=clips)
    np.testing.assert_array_equal(loaded.fold, [int(s[-2:]) * 7 % 3 for s in loaded.speaker])


def test_load_store_refuses_a_store_from_other_clips(store):
    data_dir, artifacts = store
    clips = load_index(data_dir)
    changed = [dataclasses.replace(clips[0], content_hash="0" * 20), *clips[1:]]
    for other in (clips[1:], changed):  # a clip gone; a clip whose audio changed
        with pytest.raises(StaleInputError, match="other clips.*rerun 'ser extract'"):
            load_store(artifacts, clips=other)


def test_load_store_without_a_manifest_says_to_run_extract(tmp_path):
    with pytest.raises(StaleInputError, match="no feature store.*ser extract"):
        load_store(tmp_path / "artifacts", clips=[])


def test_load_store_refuses_a_missing_shard(store):
    data_dir, artifacts = store
    layout.shard_file(artifacts, 1).unlink()
    with pytest.raises(StaleInputError, match="missing or changed"):
        load_store(artifacts, clips=load_index(data_dir))


def test_load_store_refuses_a_shard_that_grew(store):
    data_dir, artifacts = store
    with open(layout.shard_file(artifacts, 2), "ab") as handle:
        handle.write(b"\x00" * 16)
    with pytest.raises(StaleInputError, match="missing or changed"):
        load_store(artifacts, clips=load_index(data_dir))


def test_load_store_refuses_a_shard_changed_in_place(store):
    """Same size, same attributes, other feature values: only the checksum tells."""
    data_dir, artifacts = store
    shard = layout.shard_file(artifacts, 0)
    with h5py.File(shard, "r") as handle:
        offset = handle["features"].id.get_offset()
    size = shard.stat().st_size
    with open(shard, "r+b") as handle:
        handle.seek(offset + 64)
        handle.write(b"\x00\x3c" * 8)  # eight float16 ones
    assert shard.stat().st_size == size
    with pytest.raises(StaleInputError, match="changed since extraction \\(its content no "
                       "longer matches the manifest's SHA-256\\): rerun 'ser extract'"):
        load_store(artifacts, clips=load_index(data_dir))


def test_shard_problem_is_the_check_extract_and_train_share(store):
    """Matching, grown, missing and changed in place with its size and mtime kept: the
    phrase names what differs, and "" only for the shard as extracted."""
    import os

    _, artifacts = store
    entries = read_json(layout.features_manifest(artifacts))["shards"]
    folder = layout.features_dir(artifacts)
    assert [shard_problem(folder / e["file"], e) for e in entries] == [""] * len(entries)
    shard, entry = folder / entries[0]["file"], entries[0]
    before = shard.stat()
    with open(shard, "r+b") as handle:
        handle.seek(before.st_size // 2)
        byte = handle.read(1)
        handle.seek(before.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert shard_problem(shard, entry) == "its content no longer matches the manifest's SHA-256"
    with open(shard, "ab") as handle:
        handle.write(b"\x00")
    assert shard_problem(shard, entry) == (f"{entry['bytes'] + 1} bytes where the manifest "
                                           f"says {entry['bytes']}")
    shard.unlink()
    assert shard_problem(shard, entry) == "missing"


def test_load_store_refuses_a_shard_from_another_extraction(store, tmp_path):
    """A shard of another seed dropped in, with the manifest's size and checksum made to
    match it: its cache key still gives it away."""
    data_dir, artifacts = store
    extract(data_dir=data_dir, artifacts_dir=tmp_path / "other",
            config=dataclasses.replace(CONFIG, seed=9, shard_clips=16))
    shard = layout.shard_file(artifacts, 0)
    shutil.copyfile(layout.shard_file(tmp_path / "other", 0), shard)
    record = read_json(layout.features_manifest(artifacts))
    record["shards"][0].update(bytes=shard.stat().st_size, sha256=hash_file(shard))
    write_json_atomic(layout.features_manifest(artifacts), record)
    with pytest.raises(StaleInputError, match="another feature config"):
        load_store(artifacts, clips=load_index(data_dir))
