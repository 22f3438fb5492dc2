"""Tests of pipeline/core/extras.py and the CLI's use of it: a command that needs a package
the plain install leaves out stops before any work, naming the extra to install."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core import extras
from pipeline.core.errors import PipelineError


def test_the_missing_package_names_its_extra():
    error = extras.missing_extra(ModuleNotFoundError(name="torch.nn"), "ser train")
    assert str(error) == ("ser train needs torch, which this install leaves out: "
                          "pip install 'ser-pipeline[train]'")
    assert "[serve]" in str(extras.missing_extra(ModuleNotFoundError(name="fastapi"), "x"))
    assert extras.missing_extra(ModuleNotFoundError(name="numpy"), "x") is None


@pytest.fixture
def without(monkeypatch):
    """``without("torch", "h5py")``: from then on those packages look uninstalled to the
    lookups (``find_spec``) and to imports."""
    import builtins

    def hide(*names: str) -> None:
        real_spec, real_import = importlib.util.find_spec, builtins.__import__

        def find_spec(name, *args):
            return None if name.split(".")[0] in names else real_spec(name, *args)

        def fake_import(name, *args, **kwargs):
            if name.split(".")[0] in names:
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        monkeypatch.setattr(builtins, "__import__", fake_import)

    return hide


def test_require_looks_up_without_importing(without):
    extras.require("ser train", "json")
    without("torch")
    with pytest.raises(PipelineError, match=r"ser train needs torch.*\[train\]"):
        extras.require("ser train", "json", "torch")


@pytest.mark.parametrize("args, package", [
    (["train"], "torch"), (["extract"], "h5py"), (["export"], "torch"), (["run"], "torch"),
    (["evaluate", "--fold", "0"], "torch")])
def test_a_stage_that_needs_the_train_extra_says_so_before_it_starts(args, package, without,
                                                                     tmp_path):
    without("torch", "h5py", "safetensors")
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "--artifacts-dir",
                                      str(tmp_path / "a"), *args])
    assert result.exit_code == 1, result.output
    assert f"needs {package}, which this install leaves out" in result.output
    assert "pip install 'ser-pipeline[train]'" in result.output
    assert not (tmp_path / "a" / "runs").exists()


def test_a_torch_bundle_without_torch_says_how_to_score_it(without, tmp_path):
    from pipeline.inference.locate import SHIPPED

    without("torch", "safetensors")
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF")
    result = CliRunner().invoke(cli, ["predict", "--bundle", str(SHIPPED), str(clip)])
    assert result.exit_code == 1
    assert "is scored with torch, which this install leaves out" in result.output
    assert f"ser export --format onnx --bundle {SHIPPED}" in result.output
