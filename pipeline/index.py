"""The ``index`` stage: one row per usable speech clip, and actor-disjoint folds.

Walks the corpus recorded by ``download``, parses every file name (see ``ravdess``),
reads each file's header and decoded samples (for a content hash that finds the same
audio under two names), and writes ``<data>/index.csv`` atomically, then
``<data>/index.json`` (the manifest, written last). Two hashes key later stages:

- ``clips_hash``: the clips and their audio, without folds: what features depend on, so
  assigning folds or changing the split seed never re-extracts;
- ``index_hash``: the whole index, folds included: what a cross-validation run depends on.

Files whose names do not parse, unreadable files and song files are reported and left
out; they never stop the stage.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pipeline import layout, ravdess
from pipeline.download import corpus_root
from pipeline.errors import CorpusError
from pipeline.progress import bar, log
from pipeline.scan import scan
from pipeline.stages import (code_hash, hash_obj, manifest, read_json, write_json_atomic,
                             write_text_atomic)

INDEX_FORMAT = 2  # 2: Clip.frames renamed num_samples


@dataclass(frozen=True)
class IndexConfig:
    folds: int = 5
    seed: int = 0  # the split seed: which actors go to which fold (and the random split)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexConfig":
        return cls(**data)


@dataclass(frozen=True)
class Clip:
    """One indexed clip. ``path`` is relative to the corpus root; ``label`` is 0-based."""

    path: str
    clip_id: str
    modality: int
    vocal_channel: int
    emotion: str
    label: int
    intensity: int
    statement: int
    repetition: int
    actor: int
    gender: str
    sample_rate: int
    channels: int
    num_samples: int  # per channel
    duration: float
    content_hash: str
    duplicate_of: str
    fold: int


@dataclass
class IndexResult:
    clips: list[Clip]
    skipped: dict[str, list[str]]  # reason -> file paths
    index_hash: str
    cached: bool = False


def assign_folds(genders: dict[int, str], *, folds: int, seed: int) -> dict[int, int]:
    """Actor -> fold, each actor in exactly one fold, balanced by gender.

    Actors of each gender are shuffled (seeded) and dealt round-robin; the second gender
    continues where the first stopped, so fold sizes differ by at most one and so do the
    counts of each gender.
    """
    if folds < 2:
        raise CorpusError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if len(genders) < folds:
        raise CorpusError(f"--folds {folds} is more than the {len(genders)} actors present; "
                          f"use --folds {max(2, len(genders))} or fewer")
    rng = np.random.default_rng(seed)
    assignment: dict[int, int] = {}
    position = 0
    for gender in sorted(set(genders.values())):
        actors = sorted(actor for actor, g in genders.items() if g == gender)
        for actor in rng.permutation(actors):
            assignment[int(actor)] = position % folds
            position += 1
    return assignment


def _content_hash(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples).tobytes()).hexdigest()[:20]


def _scan(path: Path, root: Path) -> tuple[dict | None, str | None]:
    """Read one file: (row fields, None) or (None, reason it is left out)."""
    import soundfile

    try:
        name = ravdess.parse_name(path.stem)
    except ravdess.BadClipName as exc:
        return None, f"name does not parse ({exc})"
    if not name.is_speech:
        return None, "song, not speech"
    try:
        info = soundfile.info(str(path))
        samples, _ = soundfile.read(str(path), dtype="int32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad input
        return None, f"not readable audio ({type(exc).__name__})"
    if samples.shape[0] == 0:
        return None, "no audio frames"
    return {
        "path": path.relative_to(root).as_posix(), "clip_id": name.clip_id,
        "modality": name.modality, "vocal_channel": name.vocal_channel,
        "emotion": ravdess.EMOTIONS[name.emotion], "label": name.emotion,
        "intensity": name.intensity, "statement": name.statement,
        "repetition": name.repetition, "actor": name.actor, "gender": name.gender,
        "sample_rate": int(info.samplerate), "channels": int(info.channels),
        "num_samples": int(samples.shape[0]), "duration": round(samples.shape[0] / info.samplerate, 4),
        "content_hash": _content_hash(samples),
    }, None


def _listing(root: Path) -> tuple[list[Path], dict[str, list[str]]]:
    """The audio files under ``root`` (``pipeline.scan``'s rule) and the rest by reason."""
    found = scan([root])
    return found.files, {reason: [p.relative_to(root).as_posix() for p in paths]
                         for reason, paths in found.skipped.items()}


def build_index(*, data_dir: Path, config: IndexConfig = IndexConfig(),
                force: bool = False) -> IndexResult:
    """Index the corpus under ``data_dir`` (see module docstring)."""
    root = corpus_root(data_dir)
    csv_path, json_path = layout.index_csv(data_dir), layout.index_manifest(data_dir)
    files, scan_skipped = _listing(root)
    key = hash_obj({"config": config.to_dict(), "format": INDEX_FORMAT, "root": str(root),
                    "code": code_hash(__name__),
                    "files": [(p.relative_to(root).as_posix(), p.stat().st_size,
                               p.stat().st_mtime_ns) for p in files]})
    done = read_json(json_path)
    # The CSV is written before its manifest: a run that died in between (or a hand edit)
    # leaves a CSV the manifest does not describe, so its hash must match too.
    if (not force and done and done.get("key") == key and csv_path.exists()
            and done.get("index_hash") == hashlib.sha256(csv_path.read_bytes()).hexdigest()[:16]):
        log.info("index is current (%d clips); nothing to do (--force redoes it)", done["clips"])
        return IndexResult(load_index(data_dir), done.get("skipped", {}),
                           done["index_hash"], cached=True)

    rows, skipped = [], defaultdict(list, scan_skipped)
    with bar(total=len(files), desc="index", unit="file") as progress:
        for path in files:
            row, reason = _scan(path, root)
            if row is None:
                skipped[reason.split(" (")[0]].append(path.relative_to(root).as_posix())
            else:
                rows.append(row)
            progress.update(1)
    if not rows:
        raise CorpusError(f"no RAVDESS speech clips under {root}: expected Actor_XX/"
                          "03-01-EE-II-SS-RR-AA.wav files; check 'ser download --source'")
    rows = _drop_repeated_ids(rows, skipped)
    _mark_duplicates(rows)
    genders = {row["actor"]: row["gender"] for row in rows}
    folds = assign_folds(genders, folds=config.folds, seed=config.seed)
    clips = sorted((Clip(**row, fold=folds[row["actor"]]) for row in rows),
                   key=lambda clip: (clip.actor, clip.clip_id))
    text = _to_csv(clips)
    index_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
    write_text_atomic(csv_path, text)
    write_json_atomic(json_path, manifest(
        stage="index", key=key, config=config.to_dict(), root=str(root), index_hash=index_hash,
        clips_hash=clips_hash(clips),
        clips=len(clips), actors=sorted(genders), skipped=dict(skipped),
        duplicates={c.clip_id: c.duplicate_of for c in clips if c.duplicate_of}))
    return IndexResult(clips, dict(skipped), index_hash)


def _drop_repeated_ids(rows: list[dict], skipped: dict) -> list[dict]:
    """Keep one file per clip id (a corpus holding both x.wav and x.flac, say)."""
    seen, kept = set(), []
    for row in rows:
        if row["clip_id"] in seen:
            skipped["clip id already indexed from another file"].append(row["path"])
        else:
            seen.add(row["clip_id"])
            kept.append(row)
    return kept


def _mark_duplicates(rows: list[dict]) -> None:
    first: dict[str, str] = {}
    for row in rows:
        row["duplicate_of"] = first.setdefault(row["content_hash"], row["clip_id"])
        if row["duplicate_of"] == row["clip_id"]:
            row["duplicate_of"] = ""


def _to_csv(clips: list[Clip]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(Clip)], lineterminator="\n")
    writer.writeheader()
    for clip in clips:
        writer.writerow(asdict(clip))
    return buffer.getvalue()


def load_index(data_dir: Path) -> list[Clip]:
    """The clips of ``<data>/index.csv``, typed. Raises ``CorpusError`` naming the file
    and the fix when it is missing or was written by another version."""
    csv_path = layout.index_csv(data_dir)
    if not csv_path.exists():
        raise CorpusError(f"no index at {csv_path}: run 'ser index' first")
    types = {f.name: f.type for f in fields(Clip)}
    cast = {"int": int, "float": float, "str": str}
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        if list(reader.fieldnames or []) != list(types):
            raise CorpusError(f"{csv_path} was written by another version of this tool (its "
                              "columns differ): rerun 'ser index'")
        return [Clip(**{k: cast[types[k]](v) for k, v in row.items()}) for row in reader]


def index_record(data_dir: Path) -> dict:
    """The index's manifest (``index.json``): config (folds, split seed), hashes, counts.
    Raises ``CorpusError`` when there is none."""
    record = read_json(layout.index_manifest(data_dir))
    if not record or "index_hash" not in record:
        raise CorpusError(f"no index manifest in {data_dir}: run 'ser index' first")
    return record


def index_hash(data_dir: Path) -> str:
    """The hash of the current index, folds included (what training runs are keyed on)."""
    return index_record(data_dir)["index_hash"]


def clips_hash(clips: list[Clip]) -> str:
    """The hash of the clips without their folds: paths, names, labels, actors, audio
    formats and content hashes. Features are keyed on it, so that assigning folds or
    changing the split seed never re-extracts."""
    return hash_obj([{k: v for k, v in asdict(clip).items() if k != "fold"} for clip in clips])


def summary(result: IndexResult) -> str:
    """A readable summary: clips per emotion, actor and fold, duration, what was left out."""
    clips = result.clips
    lines = [f"{len(clips)} clips, {len({c.actor for c in clips})} actors, "
             f"{sum(c.duration for c in clips) / 60:.1f} min of audio"]
    per_emotion = Counter(c.emotion for c in clips)
    lines.append("per emotion: " + ", ".join(f"{e} {per_emotion[e]}" for e in ravdess.EMOTIONS))
    per_actor = Counter(c.actor for c in clips)
    lines.append("per actor:   " + ", ".join(f"{a:02d}:{n}" for a, n in sorted(per_actor.items())))
    for fold in sorted({c.fold for c in clips}):
        actors = sorted({c.actor for c in clips if c.fold == fold})
        n = sum(c.fold == fold for c in clips)
        lines.append(f"fold {fold}: {n} clips, actors {', '.join(f'{a:02d}' for a in actors)}")
    stereo = [c.path for c in clips if c.channels > 1]
    lines.append(f"stereo (averaged to mono later): {len(stereo)}"
                 + (f" ({', '.join(stereo)})" if stereo else ""))
    for clip in clips:
        if clip.duplicate_of:
            lines.append(f"duplicate audio: {clip.clip_id} is identical to {clip.duplicate_of}")
    missing = [a for a in ravdess.EXPECTED_ACTORS if a not in per_actor]
    if missing:
        lines.append(f"warning: actors missing from this copy: {', '.join(f'{a:02d}' for a in missing)}")
    for reason, paths in sorted(result.skipped.items()):
        examples = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
        lines.append(f"left out ({reason}): {len(paths)} file(s), e.g. {examples}")
    return "\n".join(lines)
