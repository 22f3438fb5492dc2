"""One manifest format for any labelled corpus (lhotse / EmoBox style): a table with one
row per recording.

Columns (JSONL: one object per line; CSV: a header row):

- ``path``: the audio file; relative paths are relative to the manifest's folder;
- ``emotion``: the model's label (``pipeline.core.labels.EMOTIONS``, or a word for one that
  ``labels.to_emotion`` knows: "anger", "joy", ...);
- ``label``: the corpus's own label, as the corpus names it (default: ``emotion``);
- ``speaker``: who speaks, unique within the corpus ("" when unknown: such a manifest can
  be evaluated on, but not split into speaker-disjoint folds);
- ``corpus``: the corpus's name (default: the manifest's file stem);
- ``gender``: ``female``, ``male`` or "" (optional; it balances the folds);
- ``clip_id``: a unique id (optional; default ``<corpus>/<path without suffix>``).

``ser index`` writes one from the recipes (``pipeline.corpus.recipes``) as
``<data>/manifest.jsonl``;
a user can write one by hand and pass it with ``--manifest``. ``check`` refuses a bad one
with one line naming the row and the fix, before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath

from pipeline.core import labels
from pipeline.core.errors import CorpusError

GENDERS = ("female", "male", "")


@dataclass(frozen=True)
class Row:
    """One recording of a manifest; ``path`` absolute once read (``read``)."""

    path: str
    label: str
    emotion: str
    speaker: str
    corpus: str
    gender: str = ""
    clip_id: str = ""

    @property
    def speaker_key(self) -> str:
        """The speaker, unique across corpora: ``<corpus>:<speaker>``."""
        return f"{self.corpus}:{self.speaker}"


COLUMNS = tuple(f.name for f in fields(Row))
REQUIRED = ("path", "emotion")


def default_clip_id(corpus: str, relative: PurePosixPath) -> str:
    """``<corpus>/<relative path without its suffix>``."""
    return f"{corpus}/{relative.with_suffix('').as_posix()}"


def read(path: Path) -> list[Row]:
    """The rows of a JSONL (``.jsonl``, ``.json``) or CSV manifest, paths made absolute
    (relative ones against the manifest's folder). Raises ``CorpusError`` naming the file,
    the row and the fix: unreadable, not the format its suffix says, a missing column, an
    emotion the model does not have, a gender other than female / male / empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"manifest {path} cannot be read ({exc}): pass a UTF-8 JSONL or "
                          "CSV file") from None
    records = _jsonl_records(text, path) if path.suffix.lower() in (".jsonl", ".json") \
        else _csv_records(text, path)
    if not records:
        raise CorpusError(f"manifest {path} has no rows: it needs at least the columns "
                          f"{', '.join(REQUIRED)}")
    return [_row(record, number, path) for number, record in records]


def _jsonl_records(text: str, path: Path) -> list[tuple[int, dict]]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path} line {number} is not JSON ({exc.msg}): write one "
                              "object per line, or name the file .csv if it is CSV") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{path} line {number} is not a JSON object: write one object "
                              'per line, e.g. {"path": "a.wav", "emotion": "angry"}')
        records.append((number, record))
    return records


def _csv_records(text: str, path: Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise CorpusError(f"{path} has no column {', '.join(missing)} in its header (it has "
                          f"{', '.join(reader.fieldnames or []) or 'none'}): the first line must "
                          f"name the columns, at least {', '.join(REQUIRED)}")
    return [(number, record) for number, record in enumerate(reader, 2)]


def _row(record: dict, number: int, path: Path) -> Row:
    where = f"{path} line {number}"
    values = {k: "" if record.get(k) is None else str(record[k]).strip() for k in COLUMNS}
    for column in REQUIRED:
        if not values[column]:
            raise CorpusError(f"{where}: no {column}: every row needs {', '.join(REQUIRED)}")
    try:
        emotion = labels.to_emotion(values["emotion"])
    except KeyError:
        emotion = None
    if emotion is None:
        raise CorpusError(f"{where}: emotion {values['emotion']!r} is not one of the model's "
                          f"({', '.join(labels.EMOTIONS)}) nor a word for one (anger, joy, "
                          "fear, ...): write the model's emotion in 'emotion' and keep the "
                          "corpus's own word in 'label', or leave the row out")
    if values["gender"] not in GENDERS:
        raise CorpusError(f"{where}: gender {values['gender']!r}: write female, male or "
                          "leave it empty")
    if re.match(r"[A-Za-z]:[\\/]", values["path"]):
        raise CorpusError(f"{where}: {values['path']} is a Windows drive path: write paths "
                          "relative to the manifest's folder, or absolute on this machine")
    audio = PurePosixPath(values["path"].replace("\\", "/"))
    absolute = Path(os.path.normpath(Path(audio) if Path(audio).is_absolute()
                                     else path.parent.resolve() / Path(audio)))
    corpus = values["corpus"] or path.stem
    return Row(path=str(absolute), label=values["label"] or values["emotion"],
               emotion=emotion, speaker=values["speaker"], corpus=corpus,
               gender=values["gender"],
               clip_id=values["clip_id"] or default_clip_id(corpus, _relative(absolute, path)))


def _relative(audio: Path, manifest: Path) -> PurePosixPath:
    try:
        return PurePosixPath(audio.relative_to(manifest.parent.resolve()).as_posix())
    except ValueError:
        return PurePosixPath(audio.as_posix().lstrip("/"))


def check(rows: list[Row], *, source: str, need_speakers: bool) -> None:
    """Refuse, in one line naming the first bad row and the fix, a manifest with a file
    that does not exist, a path or clip id listed twice, or (``need_speakers``: folds are
    to be made) a row without a speaker. ``source``: what to name (a file or a recipe)."""
    for what, counts in (("path", Counter(r.path for r in rows)),
                         ("clip_id", Counter(r.clip_id for r in rows))):
        repeated = [value for value, n in counts.items() if n > 1]
        if repeated:
            raise CorpusError(f"{source}: {what} {repeated[0]} is listed {counts[repeated[0]]} "
                              f"times: keep one row per recording")
    for number, row in enumerate(rows, 1):
        try:
            row.path.encode("utf-8")
        except UnicodeEncodeError:
            raise CorpusError(f"{source} row {number}: the file name {row.path!r} is not valid "
                              "UTF-8: rename the file (manifests and the index are UTF-8 text)"
                              ) from None
        if not Path(row.path).is_file():
            raise CorpusError(f"{source} row {number}: {row.path} does not exist or is not a "
                              "file: fix the path (relative paths are relative to the "
                              "manifest's folder) or remove the row")
        if need_speakers and not row.speaker:
            raise CorpusError(f"{source} row {number} ({row.path}): no speaker, and folds need "
                              "one so that no speaker is both trained and tested on: add a "
                              "speaker column (or --speaker-pattern for a folders corpus)")


def write(rows: list[Row], path: Path) -> None:
    """Write ``rows`` as JSONL (``.jsonl``) or CSV (any other suffix), atomically."""
    from pipeline.core.atomic import write_text_atomic

    if Path(path).suffix.lower() == ".jsonl":
        text = "".join(json.dumps(asdict(row), ensure_ascii=False) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
        text = buffer.getvalue()
    write_text_atomic(Path(path), text)
