"""Writing predictions as they come, and resuming: each file's result is appended to the
``--output`` file as soon as it is scored, and with ``--windows`` each timeline record
of a long (streamed) file as soon as its segment is scored; every write is flushed. An
interrupted run keeps what it scored.

Rerun with the same output, ``resume`` reads it back and the files already in it are
skipped, except the last one written: it may be incomplete (a long file stopped halfway,
or a line cut by the kill), so its rows are removed and it is scored again. Rows are in
input order, so that file's rows are the last ones.

Formats (``pipeline.results`` holds the row contracts):

- ``.csv``: one row per file (``result_rows``, notes included); with ``windows``, the
  timeline: one row per segment and an error row for a file without segments
  (``timeline_rows``);
- ``.jsonl``: one line per file (path, emotion, confidence, probabilities, error, notes);
  with ``windows``, each file's timeline records first, a line each (they carry
  ``file``), then its own line (it carries ``path`` and the segment count).

Every row and line names the model that scored it (``bundle``: ``Scorer.identity``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.results import (TIMELINE_FIELDS, FileResult, result_rows, timeline_rows)
from pipeline.stages import strict_json, write_text_atomic


class ResultSink:
    """Appends results to ``out`` (``.csv`` or ``.jsonl``) as they are scored; a context
    manager. Raises ``PipelineError`` for another suffix."""

    def __init__(self, out: Path, labels: tuple[str, ...], *, windows: bool = False,
                 bundle: str = ""):
        self.out, self.labels, self.windows, self.bundle = Path(out), tuple(labels), windows, bundle
        self.kind = self.out.suffix.lower()
        if self.kind not in (".csv", ".jsonl"):
            raise PipelineError(f"--output {out}: use a .csv or .jsonl file name")
        self.columns = ([*TIMELINE_FIELDS, *labels, "error", "bundle"] if windows else
                        ["path", "emotion", "confidence", *labels, "notes", "error", "bundle"])
        self.key = "file" if windows and self.kind == ".csv" else "path"
        self.handle = None
        self.streamed: str | None = None  # the file whose timeline went out segment by segment

    def __enter__(self) -> "ResultSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, *, resume: bool) -> set[str]:
        """Open for writing: afresh, or (``resume``) after the rows already there,
        minus the last file's. Returns the paths already done. Raises
        ``PipelineError`` when the existing file was written with other columns."""
        done, text = set(), ""
        if resume and self.out.exists():
            done, text = self._kept(self.out.read_text(encoding="utf-8", errors="surrogateescape"))
        if not text and self.kind == ".csv":
            text = _csv_text([self.columns], None)
        write_text_atomic(self.out, text)
        self.handle = open(self.out, "a", encoding="utf-8", errors="surrogateescape", newline="")
        return done

    def segment(self, record: dict) -> None:
        """One timeline record of a file being scored (written now with ``windows``)."""
        if not self.windows:
            return
        self.streamed = record["file"]
        self._write_records(timeline_rows([FileResult(record["file"], segments=[record])],
                                          self.labels, bundle=self.bundle)
                            if self.kind == ".csv" else [{**record, "bundle": self.bundle}])

    def file(self, result: FileResult) -> None:
        """A scored file: its row (and, with ``windows``, the timeline rows not yet out)."""
        segments = [] if self.streamed == result.path else result.segments
        self.streamed = None
        if self.kind == ".csv":
            rows = (timeline_rows([FileResult(result.path, error=result.error,
                                              segments=segments)], self.labels,
                                  bundle=self.bundle)
                    if self.windows else result_rows([result], self.labels, bundle=self.bundle))
            self._write_records(rows)
            return
        record = {"path": result.path, "emotion": result.emotion or None,
                  "confidence": None if result.error else result.confidence,
                  "probabilities": result.probabilities or None, "error": result.error,
                  "notes": result.notes, "bundle": self.bundle}
        if self.windows:
            record["segments"] = len(result.segments)
        segments = [{**segment, "bundle": self.bundle} for segment in segments]
        self._write_records([*segments, record] if self.windows else [record])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def _write_records(self, records: list[dict]) -> None:
        if self.kind == ".csv":
            text = _csv_text(records, self.columns)
        else:
            text = "".join(strict_json(record) + "\n" for record in records)
        self.handle.write(text)
        self.handle.flush()

    def _kept(self, text: str) -> tuple[set[str], str]:
        """``(paths done, the text to keep)`` of an existing output (see module docstring)."""
        if self.kind == ".csv":
            rows = list(csv.reader(io.StringIO(text)))
            if rows and rows[0] != self.columns:
                raise PipelineError(f"--output {self.out} holds other columns (written with "
                                    "other options or labels): choose another file, or pass "
                                    "--overwrite to replace it")
            records = [dict(zip(self.columns, row)) for row in rows[1:]
                       if len(row) == len(self.columns)]
        else:
            records = [_json_or_none(line) for line in text.split("\n")]
            records = [r for r in records if isinstance(r, dict)]
        others = {r.get("bundle") for r in records} - {self.bundle, "", None}
        if others and self.bundle:
            raise PipelineError(f"--output {self.out} holds results of another model "
                                f"({', '.join(sorted(others))}, not {self.bundle}): choose "
                                "another file, or pass --overwrite to replace it")
        paths = [r.get("path") or r.get("file") for r in records]
        if not paths:
            return set(), ""
        keep = [r for r, p in zip(records, paths) if p != paths[-1]]
        if self.kind == ".csv":
            return set(paths) - {paths[-1]}, _csv_text([self.columns], None) + \
                _csv_text(keep, self.columns)
        return set(paths) - {paths[-1]}, "".join(strict_json(r) + "\n" for r in keep)


def _csv_text(rows: list, columns: list[str] | None) -> str:
    """CSV text of ``rows``: dicts with ``columns``, or plain lists when it is None."""
    buffer = io.StringIO()
    if columns is None:
        csv.writer(buffer, lineterminator="\n").writerows(rows)
    else:
        csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:  # an empty or cut-off line
        return None


@dataclass(frozen=True)
class Counts:
    scored: int  # files scored by this run
    failed: int  # of them, with an error row
    skipped: int  # already in the output (resumed)


def score_into(output: Path, inputs: list, scorer, *, windows: bool = False,
               resume: bool = True, **options) -> Counts:
    """Score the audio files of ``inputs`` into ``output`` one by one (``ResultSink``),
    resuming it unless ``resume`` is False; ``options`` go to
    ``predict.iter_predictions`` (jobs, tta, scheduler). Raises ``PipelineError`` when
    ``inputs`` hold no audio or ``output`` cannot be resumed."""
    from pipeline.predict import audio_files, iter_predictions
    from pipeline.progress import bar

    paths = audio_files(inputs)
    scored = failed = 0
    with ResultSink(output, scorer.labels, windows=windows, bundle=scorer.identity) as sink:
        done = sink.start(resume=resume)
        todo = [path for path in paths if str(path) not in done]
        with bar(total=len(todo), desc="predict", unit="file") as progress:
            for result in iter_predictions(todo, scorer, progress=progress,
                                           on_segment=sink.segment, **options):
                sink.file(result)
                scored, failed = scored + 1, failed + bool(result.error)
    return Counts(scored, failed, len(paths) - len(todo))
