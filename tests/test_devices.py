"""Tests of pipeline/training/devices.py: a device this machine lacks is one clear error."""

from __future__ import annotations

import pytest
import torch

from pipeline.core.errors import TrainingError
from pipeline.training.devices import pick_device


def test_auto_picks_the_best_device_there_is():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        else "cpu")
    assert pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", ""])
def test_a_name_that_is_no_device_names_the_choices(name):
    with pytest.raises(TrainingError, match="use auto, cpu, cuda, cuda:N or mps"):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_says_so_and_the_fix():
    with pytest.raises(TrainingError, match="CUDA is not available on this machine.*use cpu"):
        pick_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_index_past_the_last_device_is_refused():
    with pytest.raises(TrainingError, match="numbered from 0"):
        pick_device(f"cuda:{torch.cuda.device_count()}")
