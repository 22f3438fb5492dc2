"""Tests of pipeline/training/distributed.py: one training run on 2 processes under torchrun (gloo
on CPU), resumed after a crash, and the pieces it is built from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core import layout
from pipeline.network.recipe import TrainConfig
from pipeline.training import distributed
from test_train import write_store

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_one_process_is_no_group_and_keeps_the_recipe(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.join(torch.device("cpu")) is None
    config = TrainConfig()
    assert distributed.rank_config(config, None) is config
    assert distributed.rank_rows(101, None) == 101


def test_ranks_split_every_epoch_between_them_and_keep_the_step_size():
    group = [distributed.Group(rank, 2, rank) for rank in (0, 1)]
    rows = np.arange(100, 111)
    shares = [distributed.rank_order(rows, g, seed=3, epoch=5) for g in group]
    assert all(len(share) == distributed.rank_rows(len(rows), group[0]) == 6 for share in shares)
    assert set(torch.cat(shares).tolist()) == set(rows.tolist())  # every row, one padded twice
    again = distributed.rank_order(rows, group[0], seed=3, epoch=5)
    assert torch.equal(again, shares[0])
    assert not torch.equal(distributed.rank_order(rows, group[0], seed=3, epoch=6), shares[0])
    assert distributed.rank_config(TrainConfig(batch_size=64), group[1]).batch_size == 32


def _torchrun(data_dir: Path, artifacts_dir: Path, *extra: str, fault: str | None = None):
    env = {k: v for k, v in os.environ.items() if k not in ("SER_FAULT", "RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", **({"SER_FAULT": fault} if fault else {}))
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(REPO / "cli.py"),
               "--data-dir", str(data_dir), "--artifacts-dir", str(artifacts_dir), "train",
               "--fold", "0", "--epochs", "2", "--members", "1", "--device", "cpu", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _weights(artifacts_dir: Path) -> dict:
    return torch.load(layout.model_file(artifacts_dir, "fold-0"), weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside python")
def test_torchrun_with_two_processes_trains_a_run_and_resumes_it(tmp_path):
    data_dir, artifacts_dir = write_store(tmp_path / "whole")
    done = _torchrun(data_dir, artifacts_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(layout.run_manifest(artifacts_dir, "fold-0").read_text())
    assert result["world_size"] == 2 and result["epochs_run"] == 2
    assert done.stdout.count("fold-0: last epoch 2 kept") == 2  # each rank's CLI reports
    metrics = layout.metrics_file(artifacts_dir, "fold-0").read_text().splitlines()
    assert len(metrics) == 2  # written by rank 0 alone, once per epoch

    # a crash in epoch 2 (each rank takes 5 steps an epoch), then --resume
    crashed_data, crashed = write_store(tmp_path / "crashed")
    failed = _torchrun(crashed_data, crashed, fault="train:step@7")
    assert failed.returncode != 0
    assert not layout.model_file(crashed, "fold-0").exists()
    resumed = _torchrun(crashed_data, crashed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming fold-0 after epoch 1" in resumed.stderr
    whole, back = _weights(artifacts_dir), _weights(crashed)
    assert all(torch.equal(whole[k], back[k]) for k in whole)  # as if never interrupted
