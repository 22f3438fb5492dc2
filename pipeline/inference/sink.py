"""Writing predictions as they come, and resuming: each file's result is appended to the
``--output`` file as soon as it is scored, and with ``--windows`` each timeline record
of a long (streamed) file as soon as its segment is scored; every write is flushed. An
interrupted run keeps what it scored.

Rerun with the same output, ``resume`` reads it back and the files already in it are
skipped, except the last one written: it may be incomplete (a long file stopped halfway,
or a line cut by the kill), so its rows are removed and it is scored again (when it is
among the inputs; otherwise its rows stay). Rows are in input order, so that file's rows
are the last ones.

One run at a time writes an output: the sink holds ``.<name>.lock`` beside it
(``locks.output_lock``) from ``start`` to ``close``, and a second run is refused before it
reads or writes anything. A write that cannot complete (disk full, ``ulimit -f``) is
cut back to the last whole row. CSV follows RFC 4180 (CRLF, quoted cells) and
neutralises cells a spreadsheet would run (``neutralise``); JSONL keeps every value raw.

Formats (``pipeline.inference.results`` holds the row contracts):

- ``.csv``: one row per file (``result_rows``, notes included); with ``windows``, the
  timeline: one row per segment and an error row for a file without segments
  (``timeline_rows``);
- ``.jsonl``: one line per file (path, emotion, confidence, probabilities, error, notes);
  with ``windows``, each file's timeline records first, a line each (they carry
  ``file``), then its own line (it carries ``path`` and the segment count).

Every row and line names the model that scored it (``bundle``: ``Scorer.identity``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.atomic import strict_json, write_text_atomic
from pipeline.core.errors import PipelineError
from pipeline.inference.results import (
    ADDED_COLUMNS,
    FILE_FIELDS,
    OLD_NAMES,
    TIMELINE_FIELDS,
    FileResult,
    file_record,
    result_rows,
    timeline_rows,
    upgrade,
)


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
                        [*FILE_FIELDS, *labels, "notes", "error", "bundle"])
        self.handle = None
        self.held = contextlib.ExitStack()  # the output's lock, from start to close
        self.streamed: str | None = None  # the file whose timeline went out segment by segment

    def __enter__(self) -> "ResultSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, *, resume: bool, paths: set[str] | None = None) -> set[str]:
        """Take the output's lock (``locks.output_lock``: one writer per file), then open
        it for writing: afresh, or (``resume``) after the rows already there, minus the
        last file's when it is among ``paths``, the files to score (None: any). Returns
        the paths already done. Raises ``LockedError`` when another run writes it,
        ``PipelineError`` when the existing file was written with other columns or cannot
        be rewritten (it is then left as it was)."""
        from pipeline.core.locks import output_lock

        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.held.enter_context(output_lock(self.out))
        done, text = set(), ""
        if resume and self.out.exists():
            with open(self.out, encoding="utf-8", errors="surrogateescape", newline="") as old:
                done, text = self._kept(old.read(), paths)
        if not text and self.kind == ".csv":
            text = _csv_text([self.columns], None)
        try:
            write_text_atomic(self.out, text)
            self.handle = open(self.out, "ab", buffering=0)
        except OSError as exc:
            raise PipelineError(f"--output {self.out}: cannot write it ({exc.strerror or exc}); "
                                "it is left as it was: free space or choose another "
                                "--output") from None
        return done

    def segment(self, record: dict) -> None:
        """One timeline record of a file being scored (written now with ``windows``)."""
        if not self.windows:
            return
        self.streamed = record["path"]
        self._write_records(timeline_rows([FileResult(record["path"], segments=[record])],
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
        record = file_record(result, bundle=self.bundle)
        segments = [{**segment, "bundle": self.bundle} for segment in segments]
        self._write_records([*segments, record] if self.windows else [record])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.held.close()

    def _write_records(self, records: list[dict]) -> None:
        """Append ``records`` whole or not at all: a write that fails (disk full, file
        size limit) is cut back to the last whole row, and ``PipelineError`` says why."""
        if self.kind == ".csv":
            text = _csv_text(records, self.columns)
        else:
            text = "".join(strict_json(record) + "\n" for record in records)
        data = memoryview(text.encode("utf-8", errors="surrogateescape"))
        fd = self.handle.fileno()
        before = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise PipelineError(f"--output {self.out}: writing failed ({exc.strerror or exc}); "
                                "it ends at the last whole row: free space (or raise the file "
                                "size limit) and rerun the same command to resume") from None

    def _kept(self, text: str, wanted: set[str] | None) -> tuple[set[str], str]:
        """``(paths done, the text to keep)`` of an existing output (see module docstring);
        the last file's rows stay when it is not in ``wanted``: it will not be scored again."""
        if self.kind == ".csv":
            rows = list(csv.reader(io.StringIO(text)))
            header = [OLD_NAMES.get(name, name) for name in rows[0]] if rows else self.columns
            if header != [c for c in self.columns if c in header or c not in ADDED_COLUMNS]:
                raise PipelineError(f"--output {self.out} holds other columns (written with "
                                    "other options or labels): choose another file, or pass "
                                    "--overwrite to replace it")
            records = [dict(zip(header, map(restore, row))) for row in rows[1:]
                       if len(row) == len(header)]
        else:
            records, speech = [_json_or_none(line) for line in text.split("\n")], {}
            records = [upgrade(r, self.labels, speech) for r in records if isinstance(r, dict)]
        others = {r.get("bundle") for r in records} - {self.bundle, "", None}
        if others and self.bundle:
            raise PipelineError(f"--output {self.out} holds results of another model "
                                f"({', '.join(sorted(others))}, not {self.bundle}): choose "
                                "another file, or pass --overwrite to replace it")
        paths = [r.get("path") for r in records]
        if not paths:
            return set(), ""
        last = paths[-1] if wanted is None or paths[-1] in wanted else None
        keep = [r for r, p in zip(records, paths) if p != last]
        if self.kind == ".csv":
            return set(paths) - {last}, _csv_text([self.columns], None) + \
                _csv_text(keep, self.columns)
        return set(paths) - {last}, "".join(strict_json(r) + "\n" for r in keep)


# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV
# Injection"): it is written with a leading apostrophe, which spreadsheets show as text.
# The apostrophe itself is a trigger too, so that ``restore`` reads back every cell exactly.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralise(cell):
    """``cell`` as written into a CSV file: a string starting with one of
    ``FORMULA_TRIGGERS`` gets a leading ``'``; anything else is unchanged."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS) else cell


def restore(cell: str) -> str:
    """The value ``neutralise`` wrote ``cell`` for (what resume reads back)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_TRIGGERS) else cell


def _csv_text(rows: list, columns: list[str] | None) -> str:
    """CSV text of ``rows`` (dicts with ``columns``, or plain lists when it is None), as
    RFC 4180 has it: CRLF between rows, and every cell holding a comma, a quote, a line
    feed or a carriage return quoted; cells a spreadsheet would run are neutralised."""
    buffer = io.StringIO()
    if columns is None:
        csv.writer(buffer, lineterminator="\r\n").writerows(
            [[neutralise(cell) for cell in row] for row in rows])
    else:
        csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n").writerows(
            [{key: neutralise(value) for key, value in row.items()} for row in rows])
    return buffer.getvalue()


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:  # an empty or cut-off line
        return None


def write_results(results: list[FileResult], out: Path, labels: tuple[str, ...], *,
                  windows: bool = False, bundle: str = "") -> None:
    """Write every result to ``out`` afresh (CSV or JSONL by its suffix, as ``ResultSink``
    writes them one by one while scoring). Raises ``PipelineError`` for another suffix or
    an output another run is writing."""
    with ResultSink(out, labels, windows=windows, bundle=bundle) as sink:
        sink.start(resume=False)
        for result in results:
            sink.file(result)


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
    from pipeline.core.progress import bar
    from pipeline.inference.predict import audio_files, iter_predictions

    paths = audio_files(inputs)
    scored = failed = 0
    with ResultSink(output, scorer.labels, windows=windows, bundle=scorer.identity) as sink:
        done = sink.start(resume=resume, paths={str(path) for path in paths})
        todo = [path for path in paths if str(path) not in done]
        with bar(total=len(todo), desc="predict", unit="file") as progress:
            try:
                for result in iter_predictions(todo, scorer, progress=progress,
                                               on_segment=sink.segment, **options):
                    sink.file(result)
                    scored, failed = scored + 1, failed + bool(result.error)
            except KeyboardInterrupt as exc:  # SIGTERM too (engines.Interrupted): what is kept
                exc.saved = (f"{len(paths) - len(todo) + scored} file(s) scored into {output}; "
                             "rerun to resume")
                raise
    return Counts(scored, failed, len(paths) - len(todo))
