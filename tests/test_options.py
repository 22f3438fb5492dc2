"""Every numeric option of the command line refuses negative, NaN, infinite, absurdly
large and (where it makes no sense) zero values with one line naming the option and the
accepted range, exit status 2, before any work starts; so do a device this machine lacks
and a fold the index does not have."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cli import cli

# (command, option, lowest accepted, highest accepted, integer?)
NUMERIC = [
    (["index"], "--seed", 0, 2 ** 32 - 1, True),
    (["index"], "--folds", 2, 100, True),
    (["extract"], "--seed", 0, 2 ** 32 - 1, True),
    (["train"], "--seed", 0, 2 ** 32 - 1, True),
    (["extract"], "--jobs", 1, 1024, True),
    (["extract"], "--copies", 0, 100, True),
    (["extract"], "--window-seconds", 0.5, 60.0, False),
    (["extract"], "--n-mels", 8, 256, True),
    (["extract"], "--max-failure-share", 0.0, 1.0, False),
    (["train"], "--epochs", 1, 10_000, True),
    (["train"], "--val-folds", 0, 99, True),
    (["train"], "--members", 1, 32, True),
    (["evaluate"], "--jobs", 1, 1024, True),
    (["predict", "x.wav"], "--jobs", 1, 1024, True),
]


def _invoke(tmp_path, command, option, value):
    where = ["--data-dir", str(tmp_path / "data"), "--artifacts-dir", str(tmp_path / "art")]
    if not command:  # a global option: any command after it
        args = where + [option, value, "index"]
    else:
        args = where + command[:1] + [option, value] + command[1:]
    return CliRunner().invoke(cli, args)


def _assert_refused(result, option):
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid value for") and option in last, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _outside(low, high, integer):
    """Values outside [low, high]: below, above (up to absurd), and never-valid strings."""
    below = st.integers(max_value=low - 1) if integer else st.floats(max_value=low, exclude_max=True)
    above = st.integers(min_value=high + 1) if integer else st.floats(min_value=high, exclude_min=True)
    odd = st.sampled_from(["nan", "-nan", "inf", "-inf", "1e999", "", "twelve"])
    return st.one_of(below.map(str), above.map(str), odd)


@pytest.mark.parametrize("command, option, low, high, integer", NUMERIC,
                         ids=[" ".join(c[:1] + [o]) for c, o, *_ in NUMERIC])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_numeric_options_refuse_values_outside_their_range(tmp_path_factory, command, option,
                                                           low, high, integer, data):
    value = data.draw(_outside(low, high, integer))
    tmp_path = tmp_path_factory.mktemp("opt")
    _assert_refused(_invoke(tmp_path, command, option, value), option)


@pytest.mark.parametrize("command, option, low, high, integer", NUMERIC,
                         ids=[" ".join(c[:1] + [o]) for c, o, *_ in NUMERIC])
def test_the_range_ends_are_accepted_by_the_parser(command, option, low, high, integer):
    param = next(p for p in (cli.commands[command[0]] if command else cli).params
                 if option in p.opts)
    for value in (low, high):
        converted = param.type.convert(str(value), param, None)
        assert converted == value and math.isfinite(converted)


@pytest.mark.parametrize("command, variable", [("index", "SER_SPLIT_SEED"),
                                               ("extract", "SER_AUGMENT_SEED"),
                                               ("train", "SER_TRAIN_SEED")])
def test_a_negative_seed_from_the_environment_is_one_line(tmp_path, command, variable):
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), command], env={variable: "-5"})
    _assert_refused(result, "--seed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_training_on_cuda_without_cuda_names_the_device_and_the_fix(tmp_path):
    result = _invoke(tmp_path, ["train", "--fold", "0"], "--device", "cuda")
    _assert_refused(result, "--device")
    assert "CUDA is not available on this machine" in result.output and "use cpu" in result.output


@pytest.mark.parametrize("device", ["foo", "cuda:-3", "tpu"])
def test_a_device_that_is_not_a_device_name_is_refused(tmp_path, device):
    result = _invoke(tmp_path, ["train"], "--device", device)
    _assert_refused(result, "--device")


def test_a_fold_the_index_lacks_is_refused(indexed):
    data_dir = indexed  # two folds
    for fold in ("2", "-1", "99"):
        result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "train", "--fold", fold])
        _assert_refused(result, "--fold")
        assert "the index has folds 0 to 1" in result.output
