"""The CLI on a folder mixing every kind of hostile input with good files (built by
``tests/hostile_inputs.py``): one row per audio file, the exact error for each hostile
one, the good rows equal to those of the good files scored alone, nothing on disk
changed, and a clean one-line failure (exit 1) for a run that cannot succeed."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_inputs

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, errors="surrogateescape", timeout=600)


def read_rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = list(csv.DictReader(handle))
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)), "a file got more than one row"
    return {row["path"]: row for row in rows}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    layout = hostile_inputs.build(root / "in")
    before = snapshot(root / "in")
    mixed = run_cli("predict", str(root / "in"), "--jobs", "2", "--output",
                    str(root / "mixed.csv"), cwd=root)
    alone = run_cli("predict", *map(str, layout["good"]), "--jobs", "2", "--output",
                    str(root / "alone.csv"), cwd=root)
    return root, layout, before, mixed, alone


def test_every_audio_file_gets_exactly_one_row_and_the_run_exits_1(hostile):
    root, layout, _, mixed, _ = hostile
    assert mixed.returncode == 1, mixed.stderr
    rows = read_rows(root / "mixed.csv")
    assert set(rows) == {str(p) for p in [*layout["good"], *layout["errors"]]}
    assert f"{len(layout['good'])} file(s) scored" in mixed.stdout
    assert f"({len(layout['errors'])} more with an error row)" in mixed.stdout
    assert mixed.stderr.count("Error:") == 1 and "Traceback" not in mixed.stderr


def test_each_hostile_file_gets_its_own_error(hostile):
    root, layout, *_ = hostile
    rows = read_rows(root / "mixed.csv")
    for path, expected in layout["errors"].items():
        row = rows[str(path)]
        assert expected in row["error"], (path.name, row["error"])
        assert row["emotion"] == "" and row["confidence"] == ""


def test_hidden_and_non_audio_files_are_skipped_and_counted(hostile):
    root, layout, _, mixed, _ = hostile
    rows = read_rows(root / "mixed.csv")
    assert not set(rows) & {str(p) for p in layout["skipped"]}
    assert "skipped 2 (1 hidden, 1 not audio (.txt))" in mixed.stderr


def test_good_rows_equal_the_good_files_scored_alone(hostile):
    root, layout, _, _, alone = hostile
    assert alone.returncode == 0, alone.stderr
    mixed_rows, alone_rows = read_rows(root / "mixed.csv"), read_rows(root / "alone.csv")
    for path in layout["good"]:
        assert mixed_rows[str(path)] == alone_rows[str(path)]
        assert mixed_rows[str(path)]["error"] == ""


def test_absurd_sample_values_score_like_their_source(hostile):
    root, layout, *_ = hostile
    rows = read_rows(root / "mixed.csv")
    for copy, source in layout["scaled"].items():
        a, b = rows[str(copy)], rows[str(source)]
        assert a["emotion"] == b["emotion"]
        assert abs(float(a["confidence"]) - float(b["confidence"])) < 1e-3


def test_a_non_utf8_file_name_is_written_byte_for_byte(hostile):
    root, *_ = hostile
    raw = (root / "mixed.csv").read_bytes()
    assert os.fsencode(str(root / "in")) + b"/caf\xe9.wav," in raw


def test_nothing_on_disk_changed(hostile):
    root, _, before, *_ = hostile
    assert snapshot(root / "in") == before


def test_an_unwritable_output_is_refused_before_any_work(hostile, monkeypatch):
    from click.testing import CliRunner

    from cli import cli
    from pipeline.inference import predict as predict_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("files were scored before the output was checked")
    monkeypatch.setattr(predict_module, "predict_files", must_not_run)
    root, layout, *_ = hostile
    done = CliRunner().invoke(cli, ["predict", str(layout["good"][0]), "--output",
                                    "/proc/forbidden.csv"])
    assert done.exit_code == 1, done.output
    assert done.output.strip().splitlines() == [
        "Error: --output /proc/forbidden.csv: cannot write in /proc (No such file or "
        "directory): make it writable or point --output elsewhere"]


def test_evaluating_a_folder_where_every_clip_fails_is_one_line_and_exit_1(tmp_path):
    source = tmp_path / "clips"
    source.mkdir()
    for emotion in (1, 5):
        (source / f"03-01-0{emotion}-01-01-01-01.wav").write_bytes(b"RIFF....garbage")
    done = run_cli("--artifacts-dir", str(tmp_path / "art"), "evaluate", "--bundle", "shipped",
                   "--source", str(source), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"Error: none of the 2 clips of {source} could be scored")
    assert not list((tmp_path / "art").rglob("*.json"))
