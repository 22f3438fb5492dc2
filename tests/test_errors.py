"""Tests of pipeline/core/errors.py: every project error is a PipelineError, which the CLI
prints as one line (exit 1) instead of a traceback."""

from __future__ import annotations

import inspect

import pytest

from pipeline.core import errors


def test_every_error_class_is_a_pipeline_error():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__]
    assert len(classes) >= 8
    assert all(issubclass(c, errors.PipelineError) for c in classes)
    assert issubclass(errors.NoSpeechError, errors.AudioError)


def test_the_cli_prints_a_pipeline_error_as_one_line(tmp_path, runner):
    from cli import cli

    result = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "index"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: no corpus recorded in")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("error", [errors.BundleError, errors.StaleInputError])
def test_the_message_is_the_users(error):
    assert str(error("x: rerun 'ser extract'")) == "x: rerun 'ser extract'"
