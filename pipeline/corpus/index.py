"""The ``index`` stage: the manifest of every labelled recording, their audio facts, and
speaker-disjoint folds.

Reads each source (a corpus through its recipe, ``pipeline.corpus.recipes``, or a manifest file,
``pipeline.corpus.manifest``), checks the rows (a bad one stops the stage in one line before
anything is written), reads each file's header and decoded samples (for a content hash
that finds the same audio under two names) and assigns folds (``pipeline.corpus.folds``). It
writes ``<data>/manifest.jsonl`` (the rows, in the manifest format), ``<data>/index.csv``
(the rows with their audio facts and fold) and ``<data>/index.json`` (its record, written
last). Two hashes key later stages:

- ``clips_hash``: each clip's id and audio, without folds, labels or paths: what features
  depend on, so assigning folds, changing the split seed, remapping a label or moving a
  corpus never re-extracts;
- ``index_hash``: the whole index, folds included: what a cross-validation run depends on.

Files a recipe cannot name, unreadable files and labels the model lacks are reported and
left out; they never stop the stage. Without a source, the corpus ``download`` fetched is
indexed with the ``ravdess`` recipe.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from pipeline.core import labels, layout
from pipeline.core.atomic import manifest as stage_record
from pipeline.core.atomic import read_json, write_json_atomic, write_text_atomic
from pipeline.core.errors import AudioError, CorpusError
from pipeline.core.hashing import code_hash, hash_obj
from pipeline.core.progress import bar, log
from pipeline.corpus import manifest
from pipeline.corpus.folds import assign_folds

INDEX_FORMAT = 3  # 3: any corpus (manifest rows, speaker names, absolute paths)


@dataclass(frozen=True)
class IndexConfig:
    folds: int = 5
    seed: int = 0  # the split seed: which speakers go to which fold (and the random split)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexConfig":
        return cls(**data)


@dataclass(frozen=True)
class Source:
    """Where rows come from: a recipe over a corpus folder (``recipe`` names it, ``path``
    the folder, or the CSV file for ``csv``), or ``recipe="manifest"`` and a manifest file."""

    recipe: str
    path: str
    speaker_pattern: str | None = None  # the folders recipe's speaker pattern

    @classmethod
    def parse(cls, text: str, *, speaker_pattern: str | None = None) -> "Source":
        """``NAME=PATH`` (``--corpus``). Raises ``CorpusError`` with the fix otherwise."""
        name, sep, path = text.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise CorpusError(f"--corpus {text!r}: write NAME=PATH, e.g. --corpus "
                              "emovo=../shared/emovo (recipes: 'ser index --help')")
        return cls(name.strip(), str(Path(path.strip()).expanduser().resolve()),
                   speaker_pattern if name.strip() == "folders" else None)


@dataclass(frozen=True)
class Clip:
    """One indexed recording: its manifest row, audio facts and fold. ``path`` absolute."""

    path: str
    corpus: str
    clip_id: str
    label: str  # the corpus's own label
    emotion: str  # the model's (labels.EMOTIONS)
    speaker: str  # <corpus>:<speaker>, unique across corpora
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
    left_out: list[str] = field(default_factory=list)  # per source: its label mapping


def default_sources(data_dir: Path) -> list[Source]:
    """The corpus ``download`` recorded, through the ``ravdess`` recipe."""
    from pipeline.corpus.download import corpus_root

    return [Source("ravdess", str(corpus_root(data_dir)))]


def gather(sources: list[Source]) -> tuple[list[manifest.Row], dict, list[str]]:
    """Every source's rows, checked together (``manifest.check``: one line, the first bad
    row), what was skipped by reason, and one line per source on what it left out."""
    from pipeline.corpus import recipes

    rows, skipped, said = [], defaultdict(list), []
    for source in sources:
        if source.recipe == "manifest":
            found_rows = manifest.read(Path(source.path))
            manifest.check(found_rows, source=source.path, need_speakers=True)
        else:
            options = {"speaker_pattern": source.speaker_pattern} if source.speaker_pattern else {}
            found = recipes.find_rows(source.recipe, Path(source.path), **options)
            found_rows = _drop_repeated_ids(found.rows, skipped)
            _check_pattern(found_rows, source)
            manifest.check(found_rows, source=f"--corpus {source.recipe}={source.path}",
                           need_speakers=True)
            said.append(_mapping(found))
            for reason, paths in found.skipped.items():
                skipped[reason].extend(str(Path(source.path) / p) for p in paths)
        rows.extend(found_rows)
    manifest.check(rows, source="the sources together", need_speakers=True)
    return rows, dict(skipped), said


def _mapping(found) -> str:
    """One line: how a corpus's labels were mapped onto the model's, and which were left
    out (``found``: a recipe's ``Found``)."""
    seen = sorted({(row.label, row.emotion) for row in found.rows})
    line = f"{found.corpus or found.rows[0].corpus} labels: " + ", ".join(
        f"{label} -> {emotion}" for label, emotion in seen)
    if found.left_out:
        line += "; left out, the model has no such emotion: " + ", ".join(
            f"{' '.join(filter(None, (label, found.meanings.get(label))))} ({n} files)"
            for label, n in sorted(found.left_out.items()))
    return line


def _check_pattern(rows: list, source: Source) -> None:
    """A folders corpus whose --speaker-pattern misses a file: one line naming both."""
    missed = next((row for row in rows if not row.speaker), None)
    if source.speaker_pattern and missed:
        raise CorpusError(f"--speaker-pattern {source.speaker_pattern!r} matched no speaker in "
                          f"{missed.path}: write a pattern that matches every file's path "
                          "under the corpus folder (its group 'speaker', or group 1)")


def _drop_repeated_ids(rows: list, skipped: dict) -> list:
    """Keep one file per clip id (a corpus holding both x.wav and x.mp3, say: the
    lossless one, ``duplicates.by_clip_id``)."""
    from pipeline.corpus.duplicates import by_clip_id

    kept, dropped = by_clip_id(rows)
    if dropped:
        skipped["clip id already indexed from another file"].extend(sorted(dropped))
    return kept


def build_index(*, data_dir: Path, sources: list[Source] | None = None,
                config: IndexConfig = IndexConfig(), force: bool = False) -> IndexResult:
    """Index ``sources`` (default ``default_sources``) into ``data_dir`` (see the module
    docstring). Raises ``CorpusError`` naming the row and the fix for a bad manifest or
    recipe folder, and when no clip is left."""
    sources = sources or default_sources(data_dir)
    csv_path, json_path = layout.index_csv(data_dir), layout.index_manifest(data_dir)
    rows, skipped, said = gather(sources)
    key = hash_obj({"config": config.to_dict(), "format": INDEX_FORMAT,
                    "sources": [asdict(s) for s in sources], "code": code_hash(__name__),
                    "rows": [asdict(r) for r in rows],
                    "files": [(Path(r.path).stat().st_size, Path(r.path).stat().st_mtime_ns)
                              for r in rows]})
    done = read_json(json_path)
    # The CSV is written before its record: a run that died in between (or a hand edit)
    # leaves a CSV the record does not describe, so its hash must match too.
    if (not force and done and done.get("key") == key and csv_path.exists()
            and done.get("index_hash") == hashlib.sha256(csv_path.read_bytes()).hexdigest()[:16]):
        log.info("index is current (%d clips); nothing to do (--force redoes it)", done["clips"])
        return IndexResult(load_index(data_dir), done.get("skipped", {}), done["index_hash"],
                           cached=True, left_out=done.get("left_out", []))
    records = _audio_facts(rows, skipped)
    if not records:
        raise CorpusError("no readable labelled clips in " + ", ".join(
            f"{s.recipe}={s.path}" for s in sources) + ": check the paths and the recipes' "
            "layouts ('ser index --help')")
    records = _mark_duplicates(records, skipped)
    speakers = {r["speaker"]: (r["corpus"], r["gender"]) for r in records}
    folds = assign_folds(speakers, folds=config.folds, seed=config.seed)
    clips = sorted((Clip(**r, fold=folds[r["speaker"]]) for r in records),
                   key=lambda c: (c.corpus, c.speaker, c.clip_id))
    text = _to_csv(clips)
    index_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
    indexed = {c.clip_id for c in clips}
    manifest.write([row for row in rows if row.clip_id in indexed],
                   layout.corpus_manifest(data_dir))
    write_text_atomic(csv_path, text)
    write_json_atomic(json_path, stage_record(
        stage="index", key=key, config=config.to_dict(), sources=[asdict(s) for s in sources],
        index_hash=index_hash, clips_hash=clips_hash(clips), clips=len(clips),
        emotions=list(labels.EMOTIONS), corpora=sorted({c.corpus for c in clips}),
        speakers=sorted(speakers), skipped=skipped, left_out=said,
        duplicates={c.clip_id: c.duplicate_of for c in clips if c.duplicate_of}))
    return IndexResult(clips, skipped, index_hash, left_out=said)


def _audio_facts(rows: list[manifest.Row], skipped: dict) -> list[dict]:
    """Each readable row as the fields of a ``Clip`` (without ``duplicate_of``, ``fold``);
    an unreadable or empty file goes to ``skipped`` by reason."""
    from pipeline.core.errors import UnreadableAudioError
    from pipeline.signal import audio

    records = []
    with bar(total=len(rows), desc="index", unit="file") as progress:
        for row in rows:
            try:
                samples, sample_rate = audio.read(Path(row.path))
            except AudioError as exc:
                reason = ("no audio frames" if "no audio frames" in str(exc)
                          else "not readable audio" if isinstance(exc, UnreadableAudioError)
                          else "no usable audio (empty or too long)")
                skipped.setdefault(reason, []).append(row.path)
                log.warning("left out: %s", exc)
            else:
                records.append({
                    "path": row.path, "corpus": row.corpus, "clip_id": row.clip_id,
                    "label": row.label, "emotion": row.emotion, "speaker": row.speaker_key,
                    "gender": row.gender, "sample_rate": int(sample_rate),
                    "channels": int(samples.shape[1]), "num_samples": int(samples.shape[0]),
                    "duration": round(samples.shape[0] / sample_rate, 4),
                    "content_hash": _content_hash(samples)})
            progress.update(1)
    return records


def _content_hash(samples: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples).tobytes()).hexdigest()[:20]


def _mark_duplicates(rows: list[dict], skipped: dict) -> list[dict]:
    """Mark each clip whose audio equals an earlier one's (``duplicate_of``); a copy under
    another speaker is left out (folds could put the same audio in training and test)."""
    first: dict[str, dict] = {}
    kept = []
    for row in rows:
        original = first.setdefault(row["content_hash"], row)
        if original is not row and original["speaker"] != row["speaker"]:
            skipped.setdefault("identical audio to a clip of another speaker", []).append(
                row["path"])
            continue
        row["duplicate_of"] = "" if original is row else original["clip_id"]
        kept.append(row)
    return kept


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
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if list(reader.fieldnames or []) != list(types):
            raise CorpusError(f"{csv_path} was written by another version of this tool (its "
                              "columns differ): rerun 'ser index'")
        return [Clip(**{k: cast[types[k]](v) for k, v in row.items()}) for row in reader]


def index_record(data_dir: Path) -> dict:
    """The index's record (``index.json``): config (folds, split seed), sources, hashes,
    counts. Raises ``CorpusError`` when there is none."""
    record = read_json(layout.index_manifest(data_dir))
    if not record or "index_hash" not in record:
        raise CorpusError(f"no index manifest in {data_dir}: run 'ser index' first")
    return record


def clips_hash(clips: list[Clip]) -> str:
    """The hash of what features depend on: each clip's id (augmentation draws are seeded
    by it), audio format and content hash. Not folds, labels, speakers or paths."""
    keyed = ("clip_id", "sample_rate", "channels", "num_samples", "content_hash")
    return hash_obj([{k: getattr(clip, k) for k in keyed} for clip in clips])


def summary(result: IndexResult) -> str:
    """A readable summary: per corpus its clips, speakers and emotions; per fold its
    clips and speakers; stereo files, duplicates, and what was left out."""
    clips = result.clips
    lines = [f"{len(clips)} clips, {len({c.speaker for c in clips})} speakers, "
             f"{sum(c.duration for c in clips) / 60:.1f} min of audio"]
    for corpus in sorted({c.corpus for c in clips}):
        mine = [c for c in clips if c.corpus == corpus]
        per_emotion = Counter(c.emotion for c in mine)
        lines.append(f"{corpus}: {len(mine)} clips, {len({c.speaker for c in mine})} speakers; "
                     + ", ".join(f"{e} {per_emotion[e]}" for e in labels.EMOTIONS
                                 if per_emotion[e]))
    for fold in sorted({c.fold for c in clips}):
        mine = [c for c in clips if c.fold == fold]
        speakers = sorted({c.speaker for c in mine})
        lines.append(f"fold {fold}: {len(mine)} clips, speakers {', '.join(speakers)}")
    stereo = [c.path for c in clips if c.channels > 1]
    lines.append(f"more than one channel (mixed to mono later): {len(stereo)}"
                 + (f" (e.g. {', '.join(stereo[:3])})" if stereo else ""))
    lines += [f"duplicate audio: {c.clip_id} is identical to {c.duplicate_of}"
              for c in clips if c.duplicate_of]
    lines += list(result.left_out)
    for reason, paths in sorted(result.skipped.items()):
        examples = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
        lines.append(f"left out ({reason}): {len(paths)} file(s), e.g. {examples}")
    return "\n".join(lines)
