"""What scoring a file produces, and how it is written: one record for a file and one for
each of its segments, the same field names in the terminal, CSV, JSONL, the service and
the Python API (README, "The scoring record").

**The segment record** (``timeline_record``; one per scored segment): ``path``,
``start_s`` and ``end_s`` (the segment's bounds in the recording, seconds), ``speech_s``
(seconds of detected speech in it), ``emotion``, ``confidence`` and ``probabilities``
(``{emotion: probability}``). A segment is scored in one analysis window centred on it:
one longer than the window (up to 1.5 windows, ``vad.MAX_SEGMENT_WINDOWS``) is
scored on its middle ``window_seconds``.

**The file record** (``file_record``): ``path``, ``emotion``, ``confidence``,
``probabilities``, ``speech`` (``seconds`` of speech found, its number of ``segments``),
``weak`` (true when ``confidence`` is below the model's ``Scorer.weak_below``: a verdict
more likely wrong than right), ``notes``, ``error`` (empty, or why the file has no
verdict: then ``emotion``, ``confidence``, ``probabilities`` and ``weak`` are null),
``bundle`` (the model's identity), for a file of more than one segment ``summary``
(``timeline_summary``: seconds and share of speech per emotion, the dominant emotion, and
the dominant emotion minute by minute) and, where asked for, ``timeline`` (its segment
records). CSV has no nesting: its columns are
the same names with one column per emotion for ``probabilities``.

**The file's verdict** is the mean of its segments' probabilities weighted by each
segment's seconds of speech, so a long stretch of talk counts more than a short
interjection; a recording that is one segment gets that segment's probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# The segment record's scalar fields: the timeline CSV's first columns.
TIMELINE_FIELDS = ("path", "start_s", "end_s", "speech_s", "emotion", "confidence")
# The file CSV's columns before and after the emotions' (FileResult's fields, flat).
FILE_FIELDS = ("path", "emotion", "confidence", "weak")
# Columns the file CSV gained since outputs were first written: an older output that
# lacks them is resumed, the column added (empty for the rows it already held).
ADDED_COLUMNS = ("weak",)
# The summary's time slices: the dominant emotion of each minute of a recording.
SLICE_SECONDS = 60.0
# What outputs written before the scoring record had one shape called a field.
OLD_NAMES = {"file": "path"}


@dataclass
class FileResult:
    """One file's verdict, or the reason it has none in ``error``; ``segments`` holds its
    timeline records."""

    path: str
    emotion: str = ""
    confidence: float = float("nan")
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str = ""
    notes: list[str] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    weak: bool | None = None  # confidence below the model's weak_below; None: no verdict
    audio_sha256: str = ""  # of the decoded samples (pipeline.corpus.duplicates); not written out


def timeline_record(path: str, *, start_s: float, end_s: float, speech_s: float,
                    probabilities: np.ndarray, labels: tuple[str, ...]) -> dict:
    """The timeline record of one segment (see module docstring); ``probabilities``
    float ``(len(labels),)``."""
    best = int(np.argmax(probabilities))
    return {"path": path, "start_s": round(start_s, 3), "end_s": round(end_s, 3),
            "speech_s": round(speech_s, 3), "emotion": labels[best],
            "confidence": float(probabilities[best]),
            "probabilities": {label: float(p) for label, p in zip(labels, probabilities)}}


def file_record(result: FileResult, *, bundle: str = "", timeline: bool = False) -> dict:
    """The file record of ``result`` (see module docstring), with its segment records as
    ``timeline`` when asked."""
    speech = sum(segment["speech_s"] for segment in result.segments)
    record = {"path": result.path, "emotion": result.emotion or None,
              "confidence": None if result.error else result.confidence,
              "probabilities": result.probabilities or None,
              "speech": {"seconds": round(float(speech), 3), "segments": len(result.segments)},
              "weak": None if result.error else result.weak,
              "notes": result.notes, "error": result.error, "bundle": bundle}
    if len(result.segments) > 1 and not result.error:
        record["summary"] = timeline_summary(result.segments)
    if timeline:
        record["timeline"] = result.segments
    return record


def timeline_summary(segments: list[dict], slice_seconds: float = SLICE_SECONDS) -> dict:
    """What a timeline says at a glance, from its segment records (each counted by its
    seconds of speech, ``speech_s``, under its own verdict): ``emotions`` ``{emotion:
    {"seconds", "share"}}`` (share of the file's speech; emotions no segment chose are
    left out), ``dominant`` (the emotion with the most speech; of equals, the one heard
    first), and ``by_slice``: for
    each ``slice_seconds`` of the recording holding a segment's middle, its ``start_s``,
    ``end_s`` and dominant ``emotion`` with that emotion's ``share`` of the slice's
    speech. Raises ``ValueError`` for no segments."""
    if not segments:
        raise ValueError("a summary needs at least one segment")
    total = sum(s["speech_s"] for s in segments) or 1.0
    seconds: dict[str, float] = {}
    slices: dict[int, dict[str, float]] = {}
    for s in segments:
        seconds[s["emotion"]] = seconds.get(s["emotion"], 0.0) + s["speech_s"]
        at = int((s["start_s"] + s["end_s"]) / 2 // slice_seconds)
        slices.setdefault(at, {})
        slices[at][s["emotion"]] = slices[at].get(s["emotion"], 0.0) + s["speech_s"]
    ranked = sorted(seconds, key=lambda e: -seconds[e])
    by_slice = []
    for at, inside in sorted(slices.items()):
        best = max(inside, key=inside.get)
        by_slice.append({"start_s": at * slice_seconds, "end_s": (at + 1) * slice_seconds,
                         "emotion": best,
                         "share": round(inside[best] / (sum(inside.values()) or 1.0), 4)})
    return {"emotions": {e: {"seconds": round(seconds[e], 3),
                             "share": round(seconds[e] / total, 4)} for e in ranked},
            "dominant": ranked[0], "by_slice": by_slice}


def upgrade(record: dict, labels: tuple[str, ...], speech: dict[str, list[float]]) -> dict:
    """A JSONL line written before the scoring record, in its shape: ``file`` read as
    ``path``, a segment's flat probabilities nested, a file line's ``segments`` count made
    its ``speech`` (``speech``: each path's segments' ``speech_s`` read so far, filled in
    here). A line already in shape comes back unchanged."""
    record = {OLD_NAMES.get(key, key): value for key, value in record.items()}
    if "start_s" in record:
        if "probabilities" not in record:
            record["probabilities"] = {label: record.pop(label) for label in labels
                                       if label in record}
        speech.setdefault(record.get("path"), []).append(record.get("speech_s") or 0.0)
    elif "speech" not in record:
        seconds = speech.get(record.get("path"), [])
        record.pop("segments", None)
        record["speech"] = {"seconds": round(float(sum(seconds)), 3),
                            "segments": len(seconds)} if seconds else None
    return record


def verdict(segment_probabilities: np.ndarray, speech_seconds: np.ndarray) -> np.ndarray:
    """The file's probabilities: segment probabilities ``(n_segments, classes)`` averaged
    with weights ``speech_seconds`` ``(n_segments,)``. Returns ``(classes,)``."""
    weights = np.asarray(speech_seconds, dtype=np.float64)
    return (weights @ segment_probabilities / weights.sum()).astype(np.float64)


def result_rows(results: list[FileResult], labels: tuple[str, ...], *,
                bundle: str = "") -> list[dict]:
    """The CSV contract: path, emotion, confidence, weak (``true`` / ``false``), one column
    per emotion, notes (joined with "; "), error, and the model that scored it
    (``Scorer.identity``)."""
    return [{"path": r.path, "emotion": r.emotion,
             "confidence": "" if r.error else f"{r.confidence:.6f}",
             "weak": "" if r.error or r.weak is None else str(r.weak).lower(),
             **{label: "" if r.error else f"{r.probabilities[label]:.6f}" for label in labels},
             "notes": "; ".join(r.notes), "error": r.error, "bundle": bundle} for r in results]


def timeline_rows(results: list[FileResult], labels: tuple[str, ...], *,
                  bundle: str = "") -> list[dict]:
    """The timeline CSV: one row per scored segment; a file without segments gets one
    row holding its error."""
    rows = []
    for r in results:
        if r.error:
            rows.append({"path": r.path, "error": r.error, "bundle": bundle})
        for record in r.segments:
            rows.append({**{name: record[name] for name in TIMELINE_FIELDS},
                         "confidence": f"{record['confidence']:.6f}",
                         **{label: f"{record['probabilities'][label]:.6f}" for label in labels},
                         "error": "", "bundle": bundle})
    return rows


def _segment_lines(result: FileResult) -> list[str]:
    return [f"  {s['start_s']:7.2f}-{s['end_s']:7.2f} s  {s['emotion']:<10} "
            f"{s['confidence']:.0%}  ({s['speech_s']:.1f} s of speech)" for s in result.segments]


def _summary_lines(result: FileResult) -> list[str]:
    """A file of several segments: its speech per emotion and each minute's dominant
    emotion (``timeline_summary``), two lines."""
    if len(result.segments) < 2:
        return []
    summary = timeline_summary(result.segments)
    shares = ", ".join(f"{e} {v['share']:.0%} ({v['seconds']:.0f} s)"
                       for e, v in summary["emotions"].items())
    slices = ", ".join(f"{s['start_s'] / 60:.0f}-{s['end_s'] / 60:.0f} min {s['emotion']}"
                       for s in summary["by_slice"])
    return [f"  over time: {summary['dominant']} dominates; speech by segment verdict: {shares}",
            f"  minute by minute: {slices}"]


def format_single(result: FileResult, labels: tuple[str, ...], *, windows: bool = False,
                  bundle: str = "") -> str:
    """The original tool's output: the verdict, then every emotion's probability (and
    with ``windows`` each segment), then the model that scored it."""
    if result.error:
        return f"{result.path}: error: {result.error}"
    lines = [f"Predicted emotion: {result.emotion} with {result.confidence:.2%} confidence"
             + (" (weak: more likely wrong than right)" if result.weak else "")]
    lines += [f"  {label:<10} {result.probabilities[label]:7.2%}" for label in labels]
    lines += [f"  note: {note}" for note in result.notes]
    lines += _summary_lines(result)
    lines += _segment_lines(result) if windows else []
    return "\n".join(lines + ([f"model: {bundle}"] if bundle else []))


def format_table(results: list[FileResult], *, windows: bool = False, bundle: str = "") -> str:
    """One line per file (path, emotion, confidence, error), each file's segments under
    it with ``windows``, its notes, and the model that scored them."""
    width = max(len(r.path) for r in results)
    lines = [f"{'path':<{width}}  {'emotion':<10} {'confidence':>11}  error"]
    for r in results:
        confidence = "" if r.error else f"{r.confidence:.2%}" + (" weak" if r.weak else "")
        lines.append(f"{r.path:<{width}}  {r.emotion:<10} {confidence:>11}  {r.error}".rstrip())
        lines += [f"  note: {note}" for note in r.notes]
        lines += _segment_lines(r) if windows else []
    return "\n".join(lines + ([f"model: {bundle}"] if bundle else []))
