"""Tests of pipeline/inference/sink.py: each result is on disk as soon as it is scored, and a rerun
resumes: files already written are skipped, the last one written is scored again."""

from __future__ import annotations

import csv
import json

import pytest

from pipeline.core.errors import PipelineError
from pipeline.inference.results import FileResult, timeline_record
from pipeline.inference.sink import ResultSink

LABELS = ("calm", "sad")


def _result(path: str, *, segments: int = 1, error: str = "") -> FileResult:
    if error:
        return FileResult(path, error=error)
    records = [timeline_record(path, start_s=2.0 * k, end_s=2.0 * k + 1.5, speech_s=1.0,
                               probabilities=[0.25, 0.75], labels=LABELS)
               for k in range(segments)]
    return FileResult(path, emotion="sad", confidence=0.75,
                      probabilities={"calm": 0.25, "sad": 0.75}, segments=records, weak=False)


@pytest.mark.parametrize("suffix, windows", [(".csv", False), (".csv", True),
                                             (".jsonl", False), (".jsonl", True)])
def test_every_result_is_on_disk_as_soon_as_it_is_given(tmp_path, suffix, windows):
    out = tmp_path / f"out{suffix}"
    with ResultSink(out, LABELS, windows=windows) as sink:
        assert sink.start(resume=True) == set()
        names = ("a.wav", "b.wav", "c.wav")
        for k, name in enumerate(names):
            sink.file(_result(name, segments=2))
            text = out.read_text()  # read by another handle while the sink is open
            assert all(done in text for done in names[:k + 1])
            assert not any(later in text for later in names[k + 1:])
            lines_per_file = {(".csv", False): 1, (".csv", True): 2, (".jsonl", False): 1,
                              (".jsonl", True): 3}[suffix, windows]
            header = 1 if suffix == ".csv" else 0
            assert len(text.splitlines()) == header + lines_per_file * (k + 1)


def test_a_streamed_files_timeline_is_written_segment_by_segment_and_once(tmp_path):
    out = tmp_path / "timeline.csv"
    result = _result("long.wav", segments=3)
    with ResultSink(out, LABELS, windows=True) as sink:
        sink.start(resume=False)
        for k, record in enumerate(result.segments):
            sink.segment(record)
            assert len(list(csv.DictReader(open(out)))) == k + 1  # already there
        sink.file(result)
    rows = list(csv.DictReader(open(out)))
    assert [row["start_s"] for row in rows] == ["0.0", "2.0", "4.0"]  # not written twice


@pytest.mark.parametrize("suffix, windows", [(".csv", False), (".csv", True),
                                             (".jsonl", False), (".jsonl", True)])
def test_resume_skips_what_is_written_and_redoes_the_last_file(tmp_path, suffix, windows):
    out = tmp_path / f"out{suffix}"
    with ResultSink(out, LABELS, windows=windows) as sink:
        sink.start(resume=False)
        sink.file(_result("a.wav", segments=2))
        sink.file(_result("b.wav", error="no speech detected"))
        for record in _result("c.wav", segments=3).segments[:2]:  # killed within c.wav
            sink.segment(record)
        if not windows:
            sink.file(_result("c.wav"))
    with ResultSink(out, LABELS, windows=windows) as sink:
        assert sink.start(resume=True) == {"a.wav", "b.wav"}
        assert "c.wav" not in out.read_text()  # its rows are gone: it is scored again
        sink.file(_result("c.wav", segments=3))
    text = out.read_text()
    assert text.count("c.wav") == (3 if windows else 1) + (1 if windows and suffix == ".jsonl"
                                                            else 0)


def test_a_line_cut_by_a_kill_is_dropped_on_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResultSink(out, LABELS) as sink:
        sink.start(resume=False)
        for name in ("a.wav", "b.wav", "c.wav"):
            sink.file(_result(name))
    out.write_text(out.read_text()[:-25])  # the last line cut halfway
    with ResultSink(out, LABELS) as sink:
        assert sink.start(resume=True) == {"a.wav"}  # b.wav is now the last whole file
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == ["a.wav"]


def test_an_output_written_with_other_columns_is_not_resumed(tmp_path):
    out = tmp_path / "out.csv"
    with ResultSink(out, LABELS) as sink:
        sink.start(resume=False)
        sink.file(_result("a.wav"))
    with pytest.raises(PipelineError, match="holds other columns.*--overwrite"):
        ResultSink(out, LABELS, windows=True).start(resume=True)
    with ResultSink(out, LABELS, windows=True) as sink:
        assert sink.start(resume=False) == set()  # --overwrite


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_output_of_another_model_is_not_resumed(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with ResultSink(out, LABELS, bundle="a@1+1") as sink:
        sink.start(resume=True)
        sink.file(_result("a.wav"))
    with pytest.raises(PipelineError, match="holds results of another model .*a@1\\+1"):
        ResultSink(out, LABELS, bundle="b@1+2").start(resume=True)
    with ResultSink(out, LABELS, bundle="b@1+2") as sink:
        assert sink.start(resume=False) == set()  # --overwrite


def test_the_cli_resumes_an_interrupted_output(tmp_path, trained, runner):  # noqa: F811
    from cli import cli

    from test_predict import corpus_clip

    files = [str(corpus_clip(trained, emotion=e, actor=a)) for e, a in
             ((1, 1), (2, 2), (3, 3), (4, 4), (5, 1), (6, 2))]
    args = ["predict", *files, "--bundle", str(trained.bundle_path), "-j", "1"]
    whole, part = tmp_path / "whole.csv", tmp_path / "part.csv"
    assert runner.invoke(cli, [*args, "-o", str(whole)]).exit_code == 0
    lines = whole.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:4]))  # the header and 3 files: then the run was killed
    resumed = runner.invoke(cli, [*args, "-o", str(part)])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output and "2 file(s) already in it are skipped" in resumed.output
    assert "4 file(s) scored into" in resumed.output
    assert part.read_text() == whole.read_text()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", None])
def test_the_cli_honours_windows_in_every_output(tmp_path, trained, runner, suffix):  # noqa: F811
    from cli import cli

    from test_predict import corpus_clip

    files = [str(corpus_clip(trained, emotion=e, actor=a)) for e, a in ((1, 1), (5, 2))]
    out = tmp_path / f"out{suffix}" if suffix else None
    result = runner.invoke(cli, ["predict", *files, "--bundle", str(trained.bundle_path),
                                 "-j", "1", "--windows", *(["-o", str(out)] if out else [])])
    assert result.exit_code == 0, result.output
    name = trained.bundle_path.stem + "@"
    if suffix == ".csv":
        rows = list(csv.DictReader(open(out)))
        assert [r["path"] for r in rows] == files  # one segment per short clip
        assert all(r["start_s"] and r["bundle"].startswith(name) for r in rows)
    elif suffix == ".jsonl":
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["path"] for line in lines] == [f for f in files
                                                                       for _ in (0, 1)]
        assert all(line["bundle"].startswith(name) for line in lines)
        assert lines[1]["speech"]["segments"] == 1 and "start_s" in lines[0]
    else:
        text = result.output
        assert sum(" s  " in line and "of speech" in line for line in text.splitlines()) == 2
        assert f"model: {name}" in text


from test_predict import trained  # noqa: E402,F401  (the module's tiny model)


# --- hostile names, concurrent runs, writes that cannot complete ---------------------------

HOSTILE_NAMES = ['=HYPERLINK("http://x.example","click").wav', "@SUM(1+1).wav", "+1+2.wav",
                 "-2+3.wav", "\tTAB.wav", "'quoted.wav", "line\rbreak.wav", "new\nline.wav",
                 'a "quote", and a comma.wav', "plain.wav"]


def test_cells_a_spreadsheet_would_run_are_neutralised_and_read_back_exactly(tmp_path):
    out = tmp_path / "out.csv"
    with ResultSink(out, LABELS) as sink:
        sink.start(resume=False)
        for name in HOSTILE_NAMES:
            sink.file(_result(name))
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + len(HOSTILE_NAMES)  # one row per file, CR and LF included
    cells = [row[0] for row in rows[1:]]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert cells[0] == "'" + HOSTILE_NAMES[0] and cells[-1] == "plain.wav"
    with ResultSink(out, LABELS) as sink:  # resume reads back the names as they were
        done = sink.start(resume=True, paths={"other.wav"})
    assert done == set(HOSTILE_NAMES)


def test_a_resume_keeps_the_last_file_when_it_is_not_among_the_inputs(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResultSink(out, LABELS) as sink:
        sink.start(resume=False)
        sink.file(_result("a/1.wav"))
        sink.file(_result("a/2.wav"))
    with ResultSink(out, LABELS) as sink:
        assert sink.start(resume=True, paths={"b/1.wav"}) == {"a/1.wav", "a/2.wav"}
        sink.file(_result("b/1.wav"))
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == \
        ["a/1.wav", "a/2.wav", "b/1.wav"]


def test_a_second_writer_is_refused_before_it_touches_the_output(tmp_path):
    out = tmp_path / "out.csv"
    with ResultSink(out, LABELS) as first:
        first.start(resume=False)
        first.file(_result("a.wav"))
        before = out.read_bytes()
        with pytest.raises(PipelineError, match=r"--output .*out.csv is being written by "
                                                r"process \d+ on .*: wait for that run"):
            with ResultSink(out, LABELS) as second:
                second.start(resume=True)
        assert out.read_bytes() == before
        first.file(_result("b.wav"))
    assert not (tmp_path / ".out.csv.lock").exists()  # removed by the writer on its way out
    with ResultSink(out, LABELS) as third:  # free again
        assert third.start(resume=True) == {"a.wav"}


def test_a_write_that_fails_leaves_the_output_at_its_last_whole_row(tmp_path, monkeypatch):
    import errno
    import os

    out = tmp_path / "out.csv"
    real_write, calls = os.write, []

    def disk_fills(fd, data):
        calls.append(len(data))
        if len(calls) == 3:  # half of the third row goes out, then the disk is full
            real_write(fd, bytes(data[:len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    with ResultSink(out, LABELS) as sink:
        sink.start(resume=False)
        monkeypatch.setattr("pipeline.inference.sink.os.write", disk_fills)
        sink.file(_result("a.wav"))
        sink.file(_result("b.wav"))
        with pytest.raises(PipelineError, match=r"out.csv: writing failed \(No space left on "
                                                r"device\); it ends at the last whole row"):
            sink.file(_result("c.wav"))
    rows = list(csv.reader(out.open(newline="")))
    assert [row[0] for row in rows[1:]] == ["a.wav", "b.wav"]
    assert out.read_bytes().endswith(b"\r\n")


OLD_TIMELINE_CSV = ("file,start_s,end_s,speech_s,emotion,confidence,calm,sad,error,bundle\r\n"
                    "a.wav,0.0,1.5,1.0,sad,0.750000,0.250000,0.750000,,m@1\r\n"
                    "b.wav,0.0,1.5,1.0,sad,0.750000,0.250000,0.750000,,m@1\r\n")
OLD_TIMELINE_JSONL = (
    '{"file": "a.wav", "start_s": 0.0, "end_s": 1.5, "speech_s": 1.0, "emotion": "sad", '
    '"confidence": 0.75, "calm": 0.25, "sad": 0.75, "bundle": "m@1"}\n'
    '{"path": "a.wav", "emotion": "sad", "confidence": 0.75, "probabilities": {"calm": 0.25, '
    '"sad": 0.75}, "error": "", "notes": [], "bundle": "m@1", "segments": 1}\n'
    '{"file": "b.wav", "start_s": 0.0, "end_s": 1.5, "speech_s": 1.0, "emotion": "sad", '
    '"confidence": 0.75, "calm": 0.25, "sad": 0.75, "bundle": "m@1"}\n')


@pytest.mark.parametrize("suffix, old", [(".csv", OLD_TIMELINE_CSV),
                                         (".jsonl", OLD_TIMELINE_JSONL)])
def test_a_timeline_written_before_the_scoring_record_is_resumed_in_its_shape(
        tmp_path, suffix, old):
    """An output whose lines say ``file`` (written before every output said ``path``) is
    resumed: what is kept is rewritten in the scoring record's shape, and the rest is
    appended in it, so the file ends in one shape."""
    out = tmp_path / f"timeline{suffix}"
    out.write_bytes(old.encode())
    with ResultSink(out, LABELS, windows=True, bundle="m@1") as sink:
        assert sink.start(resume=True) == {"a.wav"}  # b.wav was cut short: scored again
        sink.file(_result("b.wav"))
        sink.file(_result("c.wav"))
    if suffix == ".csv":
        rows = list(csv.DictReader(open(out, newline="")))
        assert [r["path"] for r in rows] == ["a.wav", "b.wav", "c.wav"]
        return
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["path"] for line in lines] == ["a.wav"] * 2 + ["b.wav"] * 2 + ["c.wav"] * 2
    assert all("file" not in line for line in lines)
    assert lines[0]["probabilities"] == {"calm": 0.25, "sad": 0.75}
    assert lines[1]["speech"] == {"seconds": 1.0, "segments": 1} == lines[3]["speech"]


OLD_FILES_CSV = ("path,emotion,confidence,calm,sad,notes,error,bundle\r\n"
                 "a.wav,sad,0.750000,0.250000,0.750000,,,m@1\r\n"
                 "b.wav,sad,0.750000,0.250000,0.750000,,,m@1\r\n")


def test_a_csv_written_before_the_weak_column_is_resumed_with_it(tmp_path):
    """The file CSV gained ``weak``: an output without it is resumed, the column added
    (empty for the rows it held), its other columns still checked."""
    out = tmp_path / "files.csv"
    out.write_bytes(OLD_FILES_CSV.encode())
    with ResultSink(out, LABELS, bundle="m@1") as sink:
        assert sink.start(resume=True) == {"a.wav"}
        sink.file(_result("b.wav"))
    rows = list(csv.DictReader(open(out, newline="")))
    assert [(r["path"], r["weak"]) for r in rows] == [("a.wav", ""), ("b.wav", "false")]
    out.write_bytes(OLD_FILES_CSV.replace("notes,", "remarks,").encode())
    with pytest.raises(PipelineError, match="holds other columns"):
        ResultSink(out, LABELS, bundle="m@1").start(resume=True)
