"""Recipes for a user's own recordings: sorted into one folder per emotion, or listed in a
CSV file.

- ``folders``: ``ROOT/<emotion>/<any name>.wav``, nested deeper as one likes: the emotion
  is the first folder under ROOT, read by ``labels.to_emotion`` (``Anger/``, ``joy/``,
  ``pleasant surprise/`` all work; ``boredom/`` is left out). The corpus is ROOT's name.
  ``speaker_pattern``: a regular expression searched in each root-relative posix path;
  its group ``speaker`` (else group 1, else the whole match) is the speaker.
- ``csv``: a CSV file with a header naming at least ``path,emotion`` (optionally
  ``speaker``, ``gender``), paths relative to the CSV's folder; the corpus is its stem.
  A bad row is refused in one line naming the row and the fix, before any row is used.

Clip ids are ``manifest.default_clip_id(corpus, root-relative path)``.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path, PurePosixPath

from pipeline.core import labels
from pipeline.core.errors import CorpusError
from pipeline.corpus.manifest import GENDERS, Row, default_clip_id
from pipeline.corpus.recipes.base import (
    Found,
    Parsed,
    Recipe,
    collect,
    corpus_folder,
    require_rows,
)

FOLDERS_LAYOUT = "angry/clip_0001.wav"
CSV_LAYOUT = "labels.csv (columns path,emotion[,speaker,gender])"
NOT_IN_FOLDER = "directly in the root, not in an emotion folder (ROOT/<emotion>/<file>)"


def _emotion_words() -> str:
    return ", ".join(labels.EMOTIONS)


def speaker_regex(pattern: str | None) -> re.Pattern[str] | None:
    """``pattern`` compiled. Raises ``CorpusError`` naming an invalid one."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CorpusError(f"speaker pattern {pattern!r} is not a valid regular expression "
                          f"({exc}): fix it, e.g. '^[^/]+/(?P<speaker>[^_]+)_' for "
                          "angry/<speaker>_<n>.wav") from None


def speaker_of(regex: re.Pattern[str] | None, relative: PurePosixPath) -> str:
    """The speaker ``regex`` finds in ``relative`` (posix): group ``speaker``, else group
    1, else the whole match; "" without a regex or a match."""
    match = regex.search(relative.as_posix()) if regex else None
    if not match:
        return ""
    if "speaker" in regex.groupindex:
        return match["speaker"] or ""
    return (match[1] if regex.groups else match[0]) or ""


def find_folders(root: Path, *, speaker_pattern: str | None = None) -> Found:
    """One folder per emotion under ``root`` (see the module docstring). Raises
    ``CorpusError`` for an invalid ``speaker_pattern``, a root that is not a folder, a
    first-level folder whose name is no emotion (naming each), or no labelled file."""
    regex = speaker_regex(speaker_pattern)
    folder = corpus_folder(root, corpus="folders", layout=FOLDERS_LAYOUT)
    corpus = folder.name or "folders"
    unknown: set[str] = set()

    def parse(relative: PurePosixPath) -> Parsed | str:
        if len(relative.parts) < 2:
            return NOT_IN_FOLDER
        name = relative.parts[0]
        try:
            emotion = labels.to_emotion(name)
        except KeyError:
            unknown.add(name)
            return "folder names no emotion"
        return Parsed(name, emotion, speaker_of(regex, relative), "",
                      default_clip_id(corpus, relative))

    found = collect(folder, corpus=corpus, layout=FOLDERS_LAYOUT, parse=parse)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise CorpusError(f"folder{'s' if len(unknown) > 1 else ''} {names} under {folder} "
                          f"name{'' if len(unknown) > 1 else 's'} no emotion: rename "
                          f"{'each' if len(unknown) > 1 else 'it'} to one of "
                          f"{_emotion_words()} (or a word like anger, joy, boredom), or move "
                          f"it out of {folder}")
    return require_rows(found, root=folder, layout=FOLDERS_LAYOUT)


def _read_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(row, record) per data row: ``row`` is ``"row N (line L)"`` (N counts data rows from
    1, L the file's line where the row ends); values
    stripped, missing ones "". Raises ``CorpusError`` for an unreadable file, a header
    without path and emotion, or no data row."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            header = [name.strip().lower() for name in next(reader, [])]
            missing = [column for column in ("path", "emotion") if column not in header]
            if missing:
                raise CorpusError(
                    f"{path} line 1: no column {', '.join(missing)} in the header (it has "
                    f"{', '.join(filter(None, header)) or 'none'}): the first line must name "
                    "the columns, at least path,emotion (optionally speaker, gender)")
            records = []
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                values = dict(zip(header, (cell.strip() for cell in cells)))
                records.append((f"row {len(records) + 1} (line {reader.line_num})", values))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{path} cannot be read as CSV ({exc}): pass a UTF-8 CSV file with "
                          "a header naming at least path,emotion") from None
    if not records:
        raise CorpusError(f"{path} has no data rows: list one recording per line under the "
                          "header path,emotion")
    return records


def _csv_entry(where: str, values: dict[str, str], *, base: Path, corpus: str,
               suffixes: frozenset[str]) -> tuple[str, Parsed]:
    """(absolute path, parsed row) of one CSV row. Raises ``CorpusError`` naming ``where``
    and the fix: no path, an unknown emotion, a missing or non-audio file, a bad gender."""
    written = values.get("path", "")
    if not written:
        raise CorpusError(f"{where}: no path: every row needs the audio file's path "
                          "(relative to the CSV's folder) or remove the row")
    label = values.get("emotion", "")
    try:
        emotion = labels.to_emotion(label)
    except KeyError:
        raise CorpusError(f"{where}: emotion {label!r} is not one the tool knows: write one of "
                          f"{_emotion_words()} (or a word like anger, joy; boredom, contempt "
                          "are left out), or remove the row") from None
    relative = Path(PurePosixPath(written.replace("\\", "/")))
    audio = Path(os.path.normpath(base / relative))
    if not audio.is_file():
        raise CorpusError(f"{where}: {written} is not a file (looked for {audio}): fix the "
                          f"path (relative paths are relative to {base}) or remove the row")
    if audio.suffix.lower() not in suffixes:
        raise CorpusError(f"{where}: {written} is not an audio file this machine decodes "
                          f"({audio.suffix or 'no suffix'}): list audio files only")
    gender = values.get("gender", "").lower()
    if gender not in GENDERS:
        raise CorpusError(f"{where}: gender {values.get('gender')!r}: write female, male or "
                          "leave it empty")
    try:
        clip = PurePosixPath(audio.relative_to(base).as_posix())
    except ValueError:
        clip = PurePosixPath(audio.as_posix().lstrip("/"))
    return str(audio), Parsed(label, emotion, values.get("speaker", ""), gender,
                              default_clip_id(corpus, clip))


def find_csv(root: Path) -> Found:
    """The recordings a user's CSV file ``root`` lists (see the module docstring). Raises
    ``CorpusError`` naming the file, the row and the fix for any bad row (missing columns,
    unknown emotion, missing file, duplicate path, bad gender), or no usable row."""
    from pipeline.corpus.scan import audio_suffixes

    path = Path(root)
    if not path.is_file():
        raise CorpusError(f"no CSV file at {path}: pass the CSV that lists the recordings, "
                          f"e.g. {CSV_LAYOUT}")
    base, corpus, suffixes = path.parent.resolve(), path.stem, audio_suffixes()
    rows: list[Row] = []
    left_out: Counter[str] = Counter()
    first: dict[str, str] = {}
    for row, values in _read_csv(path):
        where = f"{path} {row}"
        audio, parsed = _csv_entry(where, values, base=base, corpus=corpus, suffixes=suffixes)
        if audio in first:
            raise CorpusError(f"{where}: {values['path']} is listed again (first at "
                              f"{first[audio].split(' (')[0]}): keep one row per recording")
        first[audio] = row
        if parsed.emotion is None:
            left_out[parsed.label] += 1
            continue
        rows.append(Row(path=audio, label=parsed.label, emotion=parsed.emotion,
                        speaker=parsed.speaker, corpus=corpus, gender=parsed.gender,
                        clip_id=parsed.clip_id))
    found = Found(rows=sorted(rows, key=lambda row: row.path), left_out=dict(left_out),
                  skipped={}, corpus=corpus)
    return require_rows(found, root=path, layout=CSV_LAYOUT)


def _word_labels() -> dict[str, str | None]:
    words: dict[str, str | None] = {emotion: emotion for emotion in labels.EMOTIONS}
    words.update(labels.SYNONYMS)
    words.update(dict.fromkeys(sorted(labels.NOT_MODELLED)))
    return words


RECIPES: dict[str, Recipe] = {
    "folders": Recipe("folders", FOLDERS_LAYOUT, _word_labels(), "any",
                      "your own recordings, one folder per emotion under a root folder "
                      "(pipeline.core.labels.to_emotion reads the folder names)", find_folders),
    "csv": Recipe("csv", CSV_LAYOUT, _word_labels(), "any",
                  "your own recordings listed in a CSV file (columns path,emotion, optionally "
                  "speaker,gender; pipeline.core.labels.to_emotion reads the emotions)", find_csv,
                  root_kind="file"),
}
