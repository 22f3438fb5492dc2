"""The ``extract`` stage: every indexed clip -> the front end (``pipeline.signal.frontend``:
conditioning, speech detection, loudness) -> a clean and K augmented feature tensors,
computed in parallel (joblib process workers, one BLAS thread each) into HDF5 shards.

Clips are split into fixed shards (by index order, ``shard_clips`` each). One worker
builds one whole shard and writes it under a temporary name, then renames it: one
writer per file, and a shard that exists is complete. The manifest
``<artifacts>/features/manifest.json`` (config, clips hash, shard list with row counts
and checksums, failures) is written last. The cache key is the config, the clips
(``pipeline.corpus.index.clips_hash``: not their folds) and the code (``hashing.code_hash``).
A rerun:

- finds the manifest's key equal to the current one and every shard matching its size
  and SHA-256 in the manifest (``store.shard_problem``, the check ``train`` makes):
  cache hit, nothing recomputed; a shard that no longer matches is rebuilt alone, with
  a warning saying why;
- otherwise keeps complete shards carrying the current key (an interrupted run resumes
  where it stopped) and builds the rest; ``--force`` rebuilds everything.

Every copy's randomness comes from (seed, clip id, copy index), so shards are identical
whatever the number of workers or the order they finish in.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from pipeline.core import layout
from pipeline.core.atomic import manifest, read_json, write_json_atomic
from pipeline.core.errors import AudioError, PipelineError
from pipeline.core.hashing import CODE_VERSION, code_hash, hash_file, hash_obj
from pipeline.core.progress import bar, log
from pipeline.corpus.index import clips_hash, load_index
from pipeline.corpus.store import shard_attrs, shard_problem, write_shard
from pipeline.signal import frontend
from pipeline.signal.augment import AugmentConfig, AugmentParams, params_for, speech_features
from pipeline.signal.features import FEATURES_VERSION, FeatureConfig


@dataclass(frozen=True)
class ExtractConfig:
    features: FeatureConfig = FeatureConfig()
    augment: AugmentConfig = AugmentConfig()
    seed: int = 0
    shard_clips: int = 40
    max_failure_share: float = 0.05  # not part of the cache key: it only decides failure

    def to_dict(self) -> dict:
        return {"features": self.features.to_dict(), "augment": self.augment.to_dict(),
                "seed": self.seed, "shard_clips": self.shard_clips,
                "max_failure_share": self.max_failure_share}

    @classmethod
    def from_dict(cls, data: dict) -> "ExtractConfig":
        return cls(features=FeatureConfig.from_dict(data["features"]),
                   augment=AugmentConfig.from_dict(data["augment"]), seed=data["seed"],
                   shard_clips=data["shard_clips"], max_failure_share=data["max_failure_share"])

    def cache_key(self, clips: str) -> str:
        """The store's key: this config, the ``clips_hash`` of the clips and the code."""
        keyed = {k: v for k, v in self.to_dict().items() if k != "max_failure_share"}
        return hash_obj({"config": keyed, "clips_hash": clips, "code": code_hash(__name__),
                         "features_version": FEATURES_VERSION})


@dataclass(frozen=True)
class ClipTask:
    path: str
    clip_id: str


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to build one shard (picklable, no open handles)."""

    number: int
    clips: tuple[ClipTask, ...]
    config: ExtractConfig
    out_path: Path
    attrs: dict = field(default_factory=dict)


@dataclass
class ExtractResult:
    features_dir: Path
    rows: int
    clips: int
    failures: dict[str, str]
    cached: bool
    seconds: float


def build_shard(task: ShardTask) -> dict:
    """Worker: compute every copy of every clip of the shard, write it, report."""
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    config = task.config
    rows: dict[str, list] = {k: [] for k in ("features", "copy", "clip_id", "aug_params")}
    failures: dict[str, str] = {}
    with threadpool_limits(1):
        for clip in task.clips:
            try:
                speech = frontend.load(Path(clip.path), config.features).main_segment_audio()
            except AudioError as exc:
                failures[clip.clip_id] = str(exc)
                continue
            for copy in range(config.augment.copies + 1):
                params = params_for(config.augment, seed=config.seed, clip_id=clip.clip_id,
                                    copy=copy)
                rows["features"].append(speech_features(speech, params, config.features))
                rows["aug_params"].append(params.to_row())
                rows["copy"].append(copy)
                rows["clip_id"].append(clip.clip_id)
    shape = config.features.shape
    arrays = {
        "features": np.stack(rows["features"]) if rows["features"] else np.zeros((0, *shape)),
        "aug_params": (np.stack(rows["aug_params"]) if rows["aug_params"]
                       else np.zeros((0, len(AugmentParams.FIELDS)))),
        "copy": np.asarray(rows["copy"]),
        "clip_id": np.asarray(rows["clip_id"], dtype="S"),
    }
    write_shard(task.out_path, rows=arrays, attrs={**task.attrs, "failures": failures})
    return {"number": task.number, "rows": len(rows["copy"]), "clips": len(task.clips),
            "failures": failures, "seconds": time.perf_counter() - started}


def plan_shards(*, data_dir: Path, artifacts_dir: Path, config: ExtractConfig,
                key: str) -> list[ShardTask]:
    clips = [ClipTask(c.path, c.clip_id) for c in load_index(data_dir)]
    attrs_common = {"cache_key": key, "code_version": CODE_VERSION,
                    "feature_config": config.features.to_dict(),
                    "augment_config": config.augment.to_dict(), "seed": config.seed,
                    "aug_param_fields": list(AugmentParams.FIELDS)}
    tasks = []
    for number, start in enumerate(range(0, len(clips), config.shard_clips)):
        chunk = tuple(clips[start:start + config.shard_clips])
        tasks.append(ShardTask(number, chunk, config, layout.shard_file(artifacts_dir, number),
                               {**attrs_common, "clip_ids": [c.clip_id for c in chunk]}))
    return tasks


def _is_done(task: ShardTask) -> bool:
    attrs = shard_attrs(task.out_path)
    return bool(attrs) and attrs.get("cache_key") == task.attrs["cache_key"]


def extract(*, data_dir: Path, artifacts_dir: Path, config: ExtractConfig = ExtractConfig(),
            jobs: int = 1, force: bool = False, scheduler: str | None = None) -> ExtractResult:
    """Run the stage (see module docstring). Returns where the store is and its counts.
    ``scheduler``: the address of a Dask cluster to build the shards on instead of
    ``jobs`` local workers (``pipeline.core.engines``: the same shards either way). The store
    is locked meanwhile (``pipeline.core.locks``): a second extract into it is refused with
    ``LockedError`` naming the process that holds it."""
    from pipeline.core.locks import job_lock

    with job_lock(layout.features_dir(artifacts_dir), "extract"):
        return _extract(data_dir=data_dir, artifacts_dir=Path(artifacts_dir).resolve(),
                        config=config, jobs=jobs, force=force, scheduler=scheduler)


def _extract(*, data_dir: Path, artifacts_dir: Path, config: ExtractConfig, jobs: int,
             force: bool, scheduler: str | None) -> ExtractResult:
    started = time.perf_counter()
    out_dir = layout.features_dir(artifacts_dir)
    clips = clips_hash(load_index(data_dir))
    key = config.cache_key(clips)
    manifest_path = layout.features_manifest(artifacts_dir)
    done = read_json(manifest_path)
    if not force and _is_current(out_dir, done, key):
        log.info("features are current (%d rows); nothing to do (--force recomputes)", done["rows"])
        return ExtractResult(out_dir, done["rows"], done["clips"], done["failures"], True,
                             time.perf_counter() - started)

    manifest_path.unlink(missing_ok=True)  # from here on, the old store is not current
    tasks = plan_shards(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config, key=key)
    _clear_unplanned(out_dir, tasks)
    pending = [t for t in tasks if force or not _is_done(t)]
    n_clips = sum(len(t.clips) for t in tasks)
    if len(pending) < len(tasks):
        log.info("resuming: %d of %d shards already complete", len(tasks) - len(pending), len(tasks))
    log.info("extracting %d clips x %d copies %s", sum(len(t.clips) for t in pending),
             config.augment.copies + 1,
             f"on the Dask cluster at {scheduler}" if scheduler else f"with {jobs} worker(s)")
    for _ in _run(pending, jobs=jobs, scheduler=scheduler):
        pass  # each shard is on disk when its report arrives

    shards, failures, rows = [], {}, 0
    for task in tasks:
        attrs = shard_attrs(task.out_path)
        if attrs is None or attrs.get("cache_key") != key:
            raise PipelineError(f"shard {task.out_path} was not written; rerun 'ser extract'")
        shard_failures = _json_attr(attrs["failures"])
        n_rows = (len(task.clips) - len(shard_failures)) * (config.augment.copies + 1)
        failures.update(shard_failures)
        rows += n_rows
        shards.append({"file": task.out_path.name, "rows": n_rows, "clips": len(task.clips),
                       "bytes": task.out_path.stat().st_size,
                       "sha256": hash_file(task.out_path)})
    share = len(failures) / max(1, n_clips)
    for clip_id, reason in list(failures.items())[:5]:
        log.warning("skipped %s: %s", clip_id, reason)
    if share > config.max_failure_share:
        raise PipelineError(f"{len(failures)} of {n_clips} clips failed ({share:.1%}, more than "
                            f"the allowed {config.max_failure_share:.0%}); first: "
                            f"{next(iter(failures.values()))}. Fix or remove those files, rerun "
                            "'ser index' and 'ser extract' (or raise --max-failure-share)")
    seconds = time.perf_counter() - started
    write_json_atomic(manifest_path, manifest(
        stage="extract", key=key, config=config.to_dict(), clips_hash=clips,
        features_version=FEATURES_VERSION, shape=list(config.features.shape),
        rows=rows, clips=n_clips, failures=failures, shards=shards, jobs=jobs,
        seconds=round(seconds, 2)))
    return ExtractResult(out_dir, rows, n_clips, failures, False, seconds)


def _is_current(out_dir: Path, done: dict | None, key: str) -> bool:
    """Whether the store's manifest ``done`` has ``key`` and every shard it lists still
    matches it (``store.shard_problem``: size and SHA-256, the check ``train`` makes).
    A shard that does not is removed, with a warning saying why, so that the rerun
    rebuilds it alone (the others carry the key and are kept)."""
    if not done or done.get("key") != key:
        return False
    damaged = {entry["file"]: problem for entry in done.get("shards", [])
               if (problem := shard_problem(out_dir / entry["file"], entry))}
    for name, problem in damaged.items():
        log.warning("rebuilding shard %s: %s", out_dir / name, problem)
        if Path(name).name == name and fnmatch(name, layout.SHARD_PATTERN):  # never outside
            (out_dir / name).unlink(missing_ok=True)
    return not damaged


def _clear_unplanned(out_dir: Path, tasks: list[ShardTask]) -> None:
    """Remove dead writers' temporaries and shards no task plans (another shard size)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(f".{layout.SHARD_PATTERN}.*.tmp"):
        leftover.unlink()
    planned = {t.out_path.name for t in tasks}
    for stray in out_dir.glob(layout.SHARD_PATTERN):
        if stray.name not in planned:
            stray.unlink()


def _json_attr(value) -> dict:
    return json.loads(value) if isinstance(value, (str, bytes)) else dict(value)


def _run(tasks: list[ShardTask], *, jobs: int, scheduler: str | None):
    """Build shards: here (jobs=1), in joblib process workers, or on a Dask cluster
    (``pipeline.core.engines``); each task writes its own shard file."""
    from pipeline.core.engines import run

    shared = tasks[0].out_path.parent if tasks else None
    with bar(total=sum(len(t.clips) for t in tasks), desc="extract", unit="clip") as progress:
        for report in run(build_shard, tasks, jobs=jobs, scheduler=scheduler, ordered=False,
                          shared_path=shared):
            progress.update(report["clips"])
            yield report
