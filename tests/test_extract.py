"""Tests of the extract stage (pipeline/corpus/extract.py): shards and counts, determinism across
worker counts, the cache and --force, bad clips, picklable tasks, resume after a killed
run, and the CLI command."""

from __future__ import annotations

import copy as copying
import dataclasses
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile

from pipeline.core.atomic import read_json
from pipeline.core.errors import PipelineError
from pipeline.corpus.download import corpus_root
from pipeline.corpus.extract import ExtractConfig, ShardTask, build_shard, extract, plan_shards
from pipeline.corpus.index import IndexConfig, build_index, clips_hash, load_index
from pipeline.corpus.store import load_store
from pipeline.signal.augment import AugmentConfig, AugmentParams
from pipeline.signal.features import FeatureConfig
from pipeline.signal.frontend import FrontEndConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG = ExtractConfig(augment=AugmentConfig(copies=1), shard_clips=8)
N_CLIPS = 64  # the `indexed` fixture: 4 actors x 8 emotions x 2 takes


def _run(data_dir: Path, artifacts: Path, config: ExtractConfig = CONFIG, **kwargs):
    return extract(data_dir=data_dir, artifacts_dir=artifacts, config=config, **kwargs)


def _shards(features_dir: Path) -> dict[str, tuple[dict[str, np.ndarray], dict]]:
    """Every shard's datasets and attributes, by file name."""
    out = {}
    for path in sorted(features_dir.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            out[path.name] = ({name: handle[name][()] for name in handle}, dict(handle.attrs))
    return out


def _assert_same_shards(a: Path, b: Path) -> None:
    first, second = _shards(a), _shards(b)
    assert first and list(first) == list(second)
    for name, (datasets, attrs) in first.items():
        other_datasets, other_attrs = second[name]
        assert sorted(datasets) == sorted(other_datasets)
        for column, values in datasets.items():
            assert values.dtype == other_datasets[column].dtype, (name, column)
            np.testing.assert_array_equal(values, other_datasets[column], err_msg=f"{name}:{column}")
        assert attrs == other_attrs, name


def _stamps(features_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(features_dir.glob("shard-*.h5"))}


# --- what a run writes --------------------------------------------------------------------


def test_extract_writes_every_clip_and_copy_with_compact_dtypes(indexed, tmp_path):
    config = dataclasses.replace(CONFIG, augment=AugmentConfig(copies=2))
    result = _run(indexed, tmp_path / "artifacts", config)
    assert not result.cached and result.failures == {}
    assert (result.clips, result.rows) == (N_CLIPS, N_CLIPS * 3)

    shards = _shards(result.features_dir)
    assert list(shards) == [f"shard-{k:05d}.h5" for k in range(N_CLIPS // 8)]
    clips = {clip.clip_id: clip for clip in load_index(indexed)}
    seen: dict[str, list[int]] = {}
    for datasets, attrs in shards.values():
        n = len(datasets["copy"])
        assert n == 8 * 3
        assert datasets["features"].dtype == np.float16
        assert datasets["features"].shape == (n, *config.features.shape)
        assert np.all(np.isfinite(datasets["features"]))
        for column in ("fold", "label", "actor"):  # these belong to the index
            assert column not in datasets
        assert datasets["copy"].dtype == np.int8 and datasets["copy"].shape == (n,)
        assert datasets["aug_params"].dtype == np.float64
        assert datasets["aug_params"].shape == (n, len(AugmentParams.FIELDS))
        assert attrs["cache_key"] == config.cache_key(clips_hash(load_index(indexed)))
        assert json.loads(attrs["feature_config"]) == config.features.to_dict()
        for i, clip_id in enumerate(datasets["clip_id"].astype(str)):
            seen.setdefault(clip_id, []).append(int(datasets["copy"][i]))
    assert sorted(seen) == sorted(clips)
    assert all(sorted(copies) == [0, 1, 2] for copies in seen.values())

    record = read_json(result.features_dir / "manifest.json")
    assert record["rows"] == N_CLIPS * 3 and record["clips"] == N_CLIPS
    assert sum(shard["rows"] for shard in record["shards"]) == N_CLIPS * 3
    assert [p.name for p in result.features_dir.glob(".*")] == [".lock"]  # no temporary files


def test_one_or_two_workers_give_identical_shards(indexed, tmp_path):
    one = _run(indexed, tmp_path / "one", jobs=1)
    two = _run(indexed, tmp_path / "two", jobs=2)
    assert one.rows == two.rows == N_CLIPS * 2
    _assert_same_shards(one.features_dir, two.features_dir)


# --- cache, force, changed settings -------------------------------------------------------


def test_a_second_run_is_a_cache_hit_that_decodes_nothing(indexed, tmp_path, monkeypatch):
    from pipeline.corpus import extract as extract_module

    first = _run(indexed, tmp_path / "artifacts")
    stamps = _stamps(first.features_dir)

    def no_work(*args, **kwargs):
        raise AssertionError("a cache hit built a shard")
    monkeypatch.setattr(extract_module, "build_shard", no_work)  # speed: benchmarks/, not here
    second = _run(indexed, tmp_path / "artifacts")
    assert second.cached and not first.cached
    assert (second.rows, second.clips) == (first.rows, first.clips)
    assert _stamps(first.features_dir) == stamps  # nothing rewritten


def _overwrite_features_in_place(shard: Path) -> None:
    """Zero 64 bytes in the middle of the shard's features, keeping its size and mtime:
    only its content tells."""
    with h5py.File(shard, "r") as handle:
        offset = handle["features"].id.get_offset() + handle["features"].id.get_storage_size() // 2
    before = shard.stat()
    with open(shard, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * 64)
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (shard.stat().st_size, shard.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_shard_changed_in_place_is_rebuilt_alone_and_train_then_accepts_it(
        indexed, tmp_path, caplog, monkeypatch):
    """extract and train agree: a shard whose content no longer matches the manifest is
    not "current" for extract (which would leave train refusing it until --force)."""
    from pipeline.core.errors import StaleInputError
    from pipeline.core.progress import log

    first = _run(indexed, tmp_path / "artifacts")
    reference = _shards(first.features_dir)
    damaged = first.features_dir / "shard-00003.h5"
    _overwrite_features_in_place(damaged)
    with pytest.raises(StaleInputError, match="shard-00003.h5 is missing or changed"):
        load_store(tmp_path / "artifacts", clips=load_index(indexed))
    stamps = _stamps(first.features_dir)

    monkeypatch.setattr(log, "propagate", True)  # a CLI test may have turned it off
    with caplog.at_level("INFO", logger="pipeline"):
        rerun = _run(indexed, tmp_path / "artifacts")
    assert not rerun.cached and rerun.rows == first.rows
    assert any("rebuilding shard" in m and "shard-00003.h5" in m and "SHA-256" in m
               for m in caplog.messages), caplog.messages
    assert "resuming: 7 of 8 shards already complete" in caplog.messages
    after = _stamps(first.features_dir)
    assert after.pop("shard-00003.h5") != stamps.pop("shard-00003.h5")
    assert after == stamps  # the other shards were kept as they were
    rebuilt = _shards(first.features_dir)["shard-00003.h5"]
    for column, values in reference["shard-00003.h5"][0].items():
        np.testing.assert_array_equal(rebuilt[0][column], values, err_msg=column)
    assert len(load_store(tmp_path / "artifacts", clips=load_index(indexed))) == first.rows
    assert _run(indexed, tmp_path / "artifacts").cached


def test_force_recomputes_every_shard_to_the_same_values(indexed, tmp_path):
    first = _run(indexed, tmp_path / "artifacts")
    _run(indexed, tmp_path / "reference")
    stamps = _stamps(first.features_dir)
    forced = _run(indexed, tmp_path / "artifacts", force=True)
    assert not forced.cached
    after = _stamps(forced.features_dir)
    assert list(after) == list(stamps)
    assert all(after[name][0] != stamps[name][0] for name in stamps)  # each file replaced
    _assert_same_shards(forced.features_dir, tmp_path / "reference" / "features")


@pytest.mark.parametrize("change", [
    {"features": FeatureConfig(n_mels=32)},
    {"features": FeatureConfig(front_end=FrontEndConfig(target_lufs=-30.0))},
    {"augment": AugmentConfig(copies=1, max_semitones=1.0)},
    {"seed": 5},
], ids=["n_mels", "front_end", "max_semitones", "seed"])
def test_a_changed_setting_recomputes(indexed, tmp_path, change):
    before = _run(indexed, tmp_path / "artifacts")
    old = _shards(before.features_dir)
    config = dataclasses.replace(CONFIG, **change)
    after = _run(indexed, tmp_path / "artifacts", config)
    assert not after.cached
    record = read_json(after.features_dir / "manifest.json")
    clips = load_index(indexed)
    assert record["key"] == config.cache_key(clips_hash(clips))
    assert record["key"] != CONFIG.cache_key(clips_hash(clips))
    store = load_store(after.features_dir.parent, clips=clips)
    assert store.features.shape[1:] == config.features.shape
    new = _shards(after.features_dir)
    for name, (datasets, _) in new.items():
        augmented = datasets["copy"] > 0
        if "features" in change:
            continue  # another shape: nothing to compare
        np.testing.assert_array_equal(datasets["features"][~augmented],
                                      old[name][0]["features"][~augmented])  # clean rows same
        assert not np.array_equal(datasets["features"][augmented],
                                  old[name][0]["features"][augmented])


def test_the_failure_threshold_is_not_part_of_the_cache_key(indexed, tmp_path):
    _run(indexed, tmp_path / "artifacts")
    again = _run(indexed, tmp_path / "artifacts", dataclasses.replace(CONFIG, max_failure_share=0.5))
    assert again.cached


def test_a_new_shard_size_removes_shards_no_longer_planned(indexed, tmp_path):
    _run(indexed, tmp_path / "artifacts")
    result = _run(indexed, tmp_path / "artifacts", dataclasses.replace(CONFIG, shard_clips=16))
    assert sorted(p.name for p in result.features_dir.glob("shard-*.h5")) == [
        f"shard-{k:05d}.h5" for k in range(4)]
    assert len(load_store(result.features_dir.parent, clips=load_index(indexed))) == N_CLIPS * 2


def test_new_folds_or_a_new_split_seed_re_extract_nothing(indexed, tmp_path):
    """Folds live in the index, not in the features: 'index --folds 4' (or another
    --seed) after a full extract leaves every shard as it was, and the store loads with
    the new folds."""
    first = _run(indexed, tmp_path / "artifacts")
    stamps = _stamps(first.features_dir)
    for config in (IndexConfig(folds=4, seed=0), IndexConfig(folds=4, seed=3)):
        build_index(data_dir=indexed, config=config)
        again = _run(indexed, tmp_path / "artifacts")
        assert again.cached
        assert _stamps(first.features_dir) == stamps  # nothing rewritten
        store = load_store(first.features_dir.parent, clips=load_index(indexed))
        assert sorted(np.unique(store.fold)) == [0, 1, 2, 3]


def test_a_changed_clip_makes_the_store_stale_and_extract_recomputes(indexed, tmp_path):
    first = _run(indexed, tmp_path / "artifacts")
    clip = load_index(indexed)[0]
    root = corpus_root(indexed)
    samples, rate = soundfile.read(root / clip.path)
    soundfile.write(root / clip.path, samples * 0.5, rate)  # same name, other audio
    build_index(data_dir=indexed, config=IndexConfig(folds=2, seed=0))
    with pytest.raises(PipelineError, match="other clips"):
        load_store(first.features_dir.parent, clips=load_index(indexed))
    second = _run(indexed, tmp_path / "artifacts")
    assert not second.cached
    assert len(load_store(second.features_dir.parent, clips=load_index(indexed))) == N_CLIPS * 2


# --- bad clips ----------------------------------------------------------------------------


def _spoil_two_clips(data_dir: Path) -> tuple[str, str]:
    """After indexing: one clip becomes garbage bytes, another pure silence."""
    clips = load_index(data_dir)
    corrupt, silent = clips[5], clips[40]
    root = corpus_root(data_dir)
    (root / corrupt.path).write_bytes(b"RIFF not really a wave file" * 10)
    soundfile.write(root / silent.path, np.zeros(silent.num_samples, dtype=np.float32),
                    silent.sample_rate)
    return corrupt.clip_id, silent.clip_id


def test_unreadable_and_silent_clips_are_recorded_and_skipped(indexed, tmp_path):
    corrupt, silent = _spoil_two_clips(indexed)
    result = _run(indexed, tmp_path / "artifacts")
    assert set(result.failures) == {corrupt, silent}
    assert "not readable audio" in result.failures[corrupt]
    assert "silent" in result.failures[silent]
    assert result.clips == N_CLIPS and result.rows == (N_CLIPS - 2) * 2
    store = load_store(result.features_dir.parent, clips=load_index(indexed))
    assert len(store) == (N_CLIPS - 2) * 2
    assert corrupt not in set(store.clip_id) and silent not in set(store.clip_id)
    assert read_json(result.features_dir / "manifest.json")["failures"] == result.failures


def test_a_clip_without_speech_is_recorded_and_skipped(indexed, tmp_path):
    clip = load_index(indexed)[9]
    t = np.arange(clip.num_samples) / clip.sample_rate
    soundfile.write(corpus_root(indexed) / clip.path, 0.3 * np.sin(2 * np.pi * 440 * t),
                    clip.sample_rate)  # a tone with the clip's name
    result = _run(indexed, tmp_path / "artifacts")
    assert list(result.failures) == [clip.clip_id]
    assert "no speech detected (0.00 s of speech found" in result.failures[clip.clip_id]
    assert clip.clip_id not in set(load_store(result.features_dir.parent,
                                              clips=load_index(indexed)).clip_id)


def test_too_many_failures_fail_the_stage_without_a_manifest(indexed, tmp_path):
    _spoil_two_clips(indexed)
    strict = dataclasses.replace(CONFIG, max_failure_share=0.02)
    with pytest.raises(PipelineError, match=r"2 of 64 clips failed .*max-failure-share"):
        _run(indexed, tmp_path / "artifacts", strict)
    features = tmp_path / "artifacts" / "features"
    assert not (features / "manifest.json").exists()
    with pytest.raises(PipelineError, match="no feature store"):
        load_store(tmp_path / "artifacts", clips=load_index(indexed))
    # a looser threshold accepts the same shards without recomputing them
    stamps = _stamps(features)
    result = _run(indexed, tmp_path / "artifacts")
    assert len(result.failures) == 2 and _stamps(features) == stamps


# --- what is sent to workers --------------------------------------------------------------


def test_tasks_and_config_pickle_and_travel_to_a_joblib_worker(indexed, tmp_path):
    from joblib import Parallel, delayed

    (tmp_path / "artifacts" / "features").mkdir(parents=True)
    tasks = plan_shards(data_dir=indexed, artifacts_dir=tmp_path / "artifacts", config=CONFIG,
                        key="k" * 16)
    assert len(tasks) == N_CLIPS // 8 and all(isinstance(t, ShardTask) for t in tasks)
    for obj in (CONFIG, tasks[0], tasks[0].clips[0]):
        assert pickle.loads(pickle.dumps(obj)) == obj
    assert ExtractConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG

    workers = Parallel(n_jobs=2, backend="loky")
    assert workers(delayed(copying.deepcopy)(task) for task in tasks[:2]) == tasks[:2]
    reports = workers(delayed(build_shard)(task) for task in tasks[:2])
    assert [r["number"] for r in reports] == [0, 1]
    assert [r["rows"] for r in reports] == [8 * 2, 8 * 2]
    for task in tasks[:2]:
        with h5py.File(task.out_path, "r") as handle:
            assert json.loads(handle.attrs["clip_ids"]) == [c.clip_id for c in task.clips]
            assert len(handle["copy"]) == 8 * 2


# --- resume after a killed run ------------------------------------------------------------

RUN_EXTRACT = """
import json, sys
from pathlib import Path
from pipeline.core import progress
from pipeline.corpus.extract import ExtractConfig, extract
progress.configure(level="INFO")
extract(data_dir=Path(sys.argv[1]), artifacts_dir=Path(sys.argv[2]), jobs=1,
        config=ExtractConfig.from_dict(json.loads(sys.argv[3])))
"""


@pytest.mark.slow
def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(indexed, tmp_path):
    config = dataclasses.replace(CONFIG, shard_clips=4)  # 16 shards, written one by one
    artifacts = tmp_path / "artifacts"
    features = artifacts / "features"
    command = [sys.executable, "-c", RUN_EXTRACT, str(indexed), str(artifacts),
               json.dumps(config.to_dict())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(features.glob("shard-*.h5")) and process.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "extraction finished before it was killed"
    assert not (features / "manifest.json").exists()
    kept = _stamps(features)
    assert 1 <= len(kept) < 16

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {len(kept)} of 16 shards already complete" in rerun.stderr
    after = _stamps(features)
    assert {name: after[name] for name in kept} == kept  # complete shards were not redone
    assert len(after) == 16 and not list(features.glob(".*tmp"))

    reference = _run(indexed, tmp_path / "reference", config)
    _assert_same_shards(features, reference.features_dir)
    assert read_json(features / "manifest.json")["rows"] == reference.rows == N_CLIPS * 2
    assert _run(indexed, artifacts, config).cached


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli_runner():
    """CliRunner plus the `cli` group; the logging setup the CLI installs is undone after."""
    from click.testing import CliRunner

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from cli import cli

    log = logging.getLogger("pipeline")
    saved = (log.handlers[:], log.level, log.propagate)
    yield CliRunner(), cli
    log.handlers[:] = saved[0]
    log.setLevel(saved[1])
    log.propagate = saved[2]


def test_cli_extract_writes_then_reuses_the_store(indexed, tmp_path, cli_runner):
    runner, cli = cli_runner
    args = ["--data-dir", str(indexed), "--artifacts-dir", str(tmp_path / "artifacts"), "-q",
            "extract", "--jobs", "1", "--copies", "1", "--n-mels", "32", "--window-seconds", "2"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert f"features: {N_CLIPS * 2} rows from {N_CLIPS} clips" in first.output
    assert "0 clip(s) failed" in first.output and "cache hit" not in first.output
    store = load_store(tmp_path / "artifacts", clips=load_index(indexed))
    assert store.features.shape[1:] == FeatureConfig(n_mels=32, window_seconds=2.0).shape

    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "cache hit" in second.output


def test_cli_extract_without_an_index_fails_with_one_clean_line(tmp_path, cli_runner):
    runner, cli = cli_runner
    result = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "--artifacts-dir",
                                 str(tmp_path / "artifacts"), "-q", "extract", "--jobs", "1"])
    assert result.exit_code == 1
    assert "run 'ser index' first" in result.output
    assert "Traceback" not in result.output
