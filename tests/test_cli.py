"""The command line end to end: every stage through ``click.testing.CliRunner`` on the
64-clip synthetic corpus, and ``cli.py --help`` in a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile
from click.testing import CliRunner, Result

from cli import cli
from conftest import clip_name, write_corpus
from pipeline.core import labels

REPO = Path(__file__).resolve().parents[1]
STAGES = ("download", "index", "extract", "train", "evaluate", "export", "predict")


@dataclass
class Workspace:
    root: Path
    corpus: Path
    data_dir: Path
    artifacts_dir: Path
    outputs: dict[str, Result]

    def run(self, *args: str) -> Result:
        """One CLI call with this workspace's folders; the environment cannot redirect them."""
        return CliRunner().invoke(
            cli, ["--data-dir", str(self.data_dir), "--artifacts-dir", str(self.artifacts_dir),
                  "-q", *args],
            env={"SER_BUNDLE": None, "SER_SOURCE": None, "SER_DEVICE": "cpu"})


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """download -> index -> extract -> train (every fold, then final) -> evaluate -> export."""
    root = tmp_path_factory.mktemp("cli")
    space = Workspace(root, root / "corpus", root / "data", root / "artifacts", {})
    write_corpus(space.corpus)
    steps = {
        "download": ["download", "--source", str(space.corpus)],
        # 3 folds: room for a test fold, a validation fold (--val-folds 1) and a training fold
        "index": ["index", "--folds", "3"],
        "extract": ["extract", "--jobs", "1", "--copies", "1"],
        "train-fold-0": ["train", "--fold", "0", "--epochs", "2"],
        "train-all": ["train", "--fold", "all", "--epochs", "2"],
        "evaluate": ["evaluate", "--fold", "all"],
        "export-fold": ["export", "--run", "fold-0"],
        "train-final": ["train", "--final", "--epochs", "2"],
        "export-final": ["export"],
    }
    for name, args in steps.items():
        space.outputs[name] = ok(space.run(*args))
    return space


def test_every_stage_runs_and_reports(workspace):
    out = workspace.outputs
    assert f"corpus at {workspace.corpus.resolve()}" in out["download"].output
    assert out["index"].output.startswith("64 clips, 4 speakers, ")
    assert re.search(r"features: 128 rows from 64 clips", out["extract"].output)
    assert "fold-0: last epoch 2 kept (no validation actors)" in out["train-fold-0"].output
    # the recipe's ensemble: a second member per run, from the next seed
    assert "fold-0.m1: last epoch 2 kept" in out["train-fold-0"].output
    # 'all' reuses the finished fold 0 and trains the others
    lines = out["train-all"].output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "fold-0", "fold-0.m1", "fold-1", "fold-1.m1", "fold-2", "fold-2.m1"]
    assert lines[1].endswith("(cached)") and not lines[2].endswith("(cached)")
    assert "final: last epoch 2 kept (no validation actors)" in out["train-final"].output
    assert "final.m1: last epoch 2 kept (no validation actors)" in out["train-final"].output
    for run in ("fold-0", "fold-1", "fold-2", "final", "fold-0.m1", "final.m1"):
        assert (workspace.artifacts_dir / "runs" / run / "model.pt").is_file()
        assert (workspace.artifacts_dir / "runs" / run / "result.json").is_file()


def test_evaluate_all_folds_writes_the_cross_validation_report(workspace):
    output = workspace.outputs["evaluate"].output
    assert "mean  ± std" in output
    for fold in (0, 1, 2):
        assert re.search(rf"^\s+{fold}\s+\d\d", output, re.MULTILINE), output
    assert "each fold's model: an ensemble of 2 members" in output
    report = json.loads((workspace.artifacts_dir / "reports" / "cv.json").read_text())
    assert [run["fold"] for run in report["fold_runs"]] == [0, 1, 2]
    assert report["members"] == 2 and report["fold_runs"][1]["member_runs"] == ["fold-1", "fold-1.m1"]
    assert report["pooled"]["n"] == 64
    assert (workspace.artifacts_dir / "reports" / "cv.png").stat().st_size > 0


def test_export_writes_bundles(workspace):
    bundles = workspace.artifacts_dir / "bundles"
    assert f"bundle written to {bundles / 'ser-fold-0.safetensors'}" in workspace.outputs["export-fold"].output
    assert f"bundle written to {bundles / 'ser-final.safetensors'}" in workspace.outputs["export-final"].output
    assert sorted(p.name for p in bundles.iterdir()) == ["ser-final.safetensors", "ser-fold-0.safetensors"]
    from pipeline.inference.bundle import load

    assert load(bundles / "ser-final.safetensors").metadata["members"] == 2


def test_members_option_picks_the_ensemble_size(workspace, tmp_path):
    out = tmp_path / "single.safetensors"
    # the CV report describes the recipe's 2-member ensembles, not one member alone
    refused = workspace.run("export", "--members", "1", "--out", str(out))
    assert refused.exit_code == 1 and "does not belong to runs/final (differs in members)" in \
        refused.output and "--no-test-figures" in refused.output
    assert not out.exists()
    ok(workspace.run("export", "--members", "1", "--no-test-figures", "--out", str(out)))
    from pipeline.inference.bundle import load

    assert load(out).metadata["members"] == 1
    assert load(out).metadata["provenance"]["test"] is None
    result = workspace.run("export", "--members", "3", "--out", str(tmp_path / "three.safetensors"))
    assert result.exit_code == 1 and "run 'ser train --final --members 3'" in result.output
    assert not (tmp_path / "three.safetensors").exists()


def test_tta_option_on_export_and_predict(workspace, tmp_path):
    from pipeline.inference.bundle import load
    from pipeline.signal.views import CLEAN, TEST_VIEWS

    bundle = workspace.artifacts_dir / "bundles" / "ser-final.safetensors"
    assert load(bundle).views == TEST_VIEWS
    clean_bundle = tmp_path / "clean.safetensors"
    refused = workspace.run("export", "--no-tta", "--out", str(clean_bundle))
    assert "(measured with other test-time views)" in refused.output
    ok(workspace.run("export", "--no-tta", "--no-test-figures", "--out", str(clean_bundle)))
    assert load(clean_bundle).views == CLEAN and load(clean_bundle).metadata["test_views"] == [{}]
    clip = str(workspace.corpus / "Actor_03" / f"{clip_name(emotion=2, actor=3)}.wav")
    outputs = {}
    for name, args in (("views", ["--bundle", str(bundle)]),
                       ("no-tta", ["--bundle", str(bundle), "--no-tta"]),
                       ("clean bundle", ["--bundle", str(clean_bundle)])):
        out = tmp_path / f"{name}.csv"
        ok(workspace.run("predict", clip, "-j", "1", "-o", str(out), *args))
        outputs[name] = out.read_text()
    # the same probabilities; the bundle column names each model
    def without_bundle(text: str) -> list:
        return [row[:-1] for row in csv.reader(io.StringIO(text))]

    assert without_bundle(outputs["no-tta"]) == without_bundle(outputs["clean bundle"]) \
        != without_bundle(outputs["views"])


def test_predict_one_file_prints_the_verdict_and_every_emotion(workspace):
    clip = workspace.corpus / "Actor_03" / f"{clip_name(emotion=5, actor=3)}.wav"
    output = ok(workspace.run("predict", str(clip), "--bundle", "latest", "-j", "1")).output
    lines = output.strip().splitlines()
    verdict = re.fullmatch(r"Predicted emotion: (\w+) with (\d{1,3}\.\d\d)% confidence"
                           r"( \(weak: more likely wrong than right\))?", lines[0])
    assert verdict, lines[0]
    assert verdict[1] in labels.EMOTIONS
    shares = {}
    for line in lines[1:9]:
        label, share = line.split()
        shares[label] = float(share.rstrip("%"))
    assert list(shares) == list(labels.EMOTIONS)
    assert sum(shares.values()) == pytest.approx(100.0, abs=0.05)
    assert shares[verdict[1]] == pytest.approx(float(verdict[2]))


def test_predict_folder_to_csv_and_jsonl(workspace, tmp_path):
    bundle = str(workspace.artifacts_dir / "bundles" / "ser-final.safetensors")
    folder = workspace.corpus / "Actor_01"
    out = tmp_path / "x.csv"
    result = ok(workspace.run("predict", str(folder), "--bundle", bundle, "--output", str(out)))
    assert f"16 file(s) scored into {out}" in result.output
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["path", "emotion", "confidence", "weak", *labels.EMOTIONS,
                                 "notes", "error", "bundle"]
    assert len(rows) == 16 and all(row["error"] == "" for row in rows)
    assert all(sum(float(row[label]) for label in labels.EMOTIONS) == pytest.approx(1.0, abs=1e-4)
               for row in rows)

    out_jsonl = tmp_path / "x.jsonl"
    ok(workspace.run("predict", str(folder), "--bundle", bundle, "-o", str(out_jsonl), "--windows"))
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    records = [r for r in lines if "start_s" not in r]  # the files' lines, not the timeline's
    assert [r["path"] for r in records] == [row["path"] for row in rows]
    assert [r["emotion"] for r in records] == [row["emotion"] for row in rows]
    assert all(r["speech"]["segments"] == 1 for r in records)
    assert [r["path"] for r in lines] == [row["path"] for row in rows for _ in (0, 1)]


def test_predict_unsupported_output_suffix_is_one_clean_error(workspace, tmp_path):
    bundle = str(workspace.artifacts_dir / "bundles" / "ser-final.safetensors")
    result = workspace.run("predict", str(workspace.corpus / "Actor_02"), "--bundle", bundle,
                           "-j", "1", "--output", str(tmp_path / "x.txt"))
    assert result.exit_code == 2  # a usage error, refused before any file is scored
    assert "use a .csv or .jsonl file name" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.txt").exists()


def test_predict_exit_status_says_whether_every_file_was_scored(workspace, tmp_path):
    bundle = str(workspace.artifacts_dir / "bundles" / "ser-final.safetensors")
    good = workspace.corpus / "Actor_04" / f"{clip_name(emotion=2, actor=4)}.wav"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"\x00" * 100)
    assert "Predicted emotion:" in ok(workspace.run("predict", str(good), "--bundle", bundle,
                                                    "-j", "1")).output
    result = workspace.run("predict", str(good), str(broken), "--bundle", bundle, "-j", "1")
    assert result.exit_code == 1
    assert "1 of 2 file(s) could not be scored" in result.output
    table = result.output.splitlines()
    assert any(line.startswith(str(broken)) and "not readable" in line for line in table)


def test_evaluate_a_bundle_on_a_folder(workspace, tmp_path):
    source = tmp_path / "heldout"
    write_corpus(source, actors=(7,), takes=1)
    soundfile.write(source / "readme.wav", soundfile.read(next(source.rglob("*.wav")))[0], 16000)
    bundle = workspace.artifacts_dir / "bundles" / "ser-fold-0.safetensors"
    result = ok(workspace.run("evaluate", "--bundle", str(bundle), "--source", str(source), "-j", "1"))
    assert "(8 clips)" in result.output
    path = next((workspace.artifacts_dir / "reports").glob(f"bundle-ser-fold-0-{source.name}-*.json"))
    assert f"report: {path.resolve()}" in result.output
    report = json.loads(path.read_text())
    assert report["files"] == 8 and report["actors"] == ["ravdess:07"] and report["failed"] == 0


def test_evaluate_bundle_needs_a_source(workspace):
    result = workspace.run("evaluate", "--bundle", "latest")
    assert result.exit_code == 2
    assert "--bundle goes with one of --source or --manifest" in result.output
    result = workspace.run("evaluate", "--source", str(workspace.corpus))
    assert result.exit_code == 2 and "--source and --manifest need --bundle" in result.output
    result = workspace.run("evaluate", "--bundle", "latest", "--source", str(workspace.corpus),
                           "--members", "2")
    assert result.exit_code == 2 and "a bundle already holds its members" in result.output


def test_errors_are_one_line_with_the_fix(workspace, tmp_path):
    empty = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "nodata"), "--artifacts-dir",
                                     str(tmp_path / "noartifacts"), "-q", "train", "--fold", "0"])
    assert empty.exit_code == 1
    assert empty.output.startswith("Error: ") and "Traceback" not in empty.output
    assert "ser " in empty.output  # names the stage to run

    missing = workspace.run("predict", str(workspace.corpus), "--bundle", str(tmp_path / "none.pt"))
    assert missing.exit_code == 1
    assert "no bundle at" in missing.output


def test_two_folds_leave_no_room_for_validation_actors(tmp_path, corpus):
    space = Workspace(tmp_path, corpus, tmp_path / "data", tmp_path / "artifacts", {})
    ok(space.run("download", "--source", str(corpus)))
    ok(space.run("index", "--folds", "2"))
    ok(space.run("extract", "--jobs", "1", "--copies", "0"))
    assert "fold-0: last epoch 1 kept" in ok(space.run("train", "--fold", "0", "--epochs", "1")).output
    result = space.run("train", "--fold", "0", "--epochs", "1", "--val-folds", "1", "--force")
    assert result.exit_code == 1
    assert "2 folds leave no training actors" in result.output
    assert "index --folds" in result.output


def test_help_lists_every_stage():
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "--help"], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("Commands:")[1]
    listed = [line.split()[0] for line in commands.strip().splitlines() if line.strip()]
    assert set(STAGES) <= set(listed)
    for stage in STAGES:
        assert CliRunner().invoke(cli, [stage, "--help"]).exit_code == 0


def test_not_found_messages_name_the_absolute_folder_searched(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    latest = runner.invoke(cli, ["predict", "--bundle", "latest", "x.wav"])
    assert latest.exit_code == 1
    assert f"no exported bundle in {tmp_path / 'artifacts' / 'bundles'}" in latest.output
    untrained = runner.invoke(cli, ["--data-dir", "elsewhere", "train", "--fold", "all"])
    assert untrained.exit_code == 1 and str(tmp_path / "elsewhere") in untrained.output
