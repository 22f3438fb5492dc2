"""Runs killed at an exact step (``SER_FAULT``, pipeline/core/faults.py: the process leaves by
``os._exit``, like ``kill -9``) leave no corrupt output, and the rerun ends with the same
arrays and weights as a run that was never interrupted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import write_corpus
from pipeline.core.faults import FAULT_EXIT

REPO = Path(__file__).resolve().parents[1]


def cli(root: Path, *args: str, fault: str | None = None, artifacts: str = "artifacts"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **({"SER_FAULT": fault} if fault else {}))
    return subprocess.run([sys.executable, str(REPO / "cli.py"), "-q", "--data-dir",
                           str(root / "data"), "--artifacts-dir", str(root / artifacts), *args],
                          env=env, capture_output=True, text=True, timeout=600)


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def killed(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == FAULT_EXIT, done.stdout + done.stderr


@pytest.fixture(scope="module")
def indexed_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupted")
    write_corpus(root / "corpus", actors=(1, 2, 3, 4), emotions=(1, 5, 6), takes=4)  # 48: 2 shards
    ok(cli(root, "download", "--source", str(root / "corpus")))
    ok(cli(root, "index", "--folds", "2"))
    return root


def _shards(features: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted(features.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            out[path.name] = {name: handle[name][()] for name in handle}
    return out


def test_extract_killed_between_shards_resumes_to_the_same_arrays(indexed_root):
    root = indexed_root
    ok(cli(root, "extract", "--jobs", "1", "--copies", "1", artifacts="clean"))
    killed(cli(root, "extract", "--jobs", "1", "--copies", "1",
               fault="write:shard-00001.h5"))  # the second shard complete, not yet renamed
    features = root / "artifacts" / "features"
    assert not (features / "manifest.json").exists()  # the store is not trusted yet
    assert not (features / "shard-00001.h5").exists()
    ok(cli(root, "extract", "--jobs", "1", "--copies", "1"))
    assert not list(features.glob(".*.tmp"))
    expected, got = _shards(root / "clean" / "features"), _shards(features)
    assert got.keys() == expected.keys() and len(got) >= 2
    for name in expected:
        for dataset, array in expected[name].items():
            np.testing.assert_array_equal(got[name][dataset], array, err_msg=f"{name}/{dataset}")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def extracted_root(indexed_root) -> Path:
    # 2 training actors x 12 clips x 4 copies = 96 rows: two optimiser steps per epoch
    ok(cli(indexed_root, "extract", "--jobs", "1", "--copies", "3", artifacts="base"))
    ok(cli(indexed_root, "train", "--fold", "0", "--epochs", "3", "--members", "1",
           artifacts="base"))
    return indexed_root


@pytest.mark.parametrize("fault", ["train:step@3", "write:checkpoint.pt@2", "write:model.pt"],
                         # step 3: the first of epoch 2, whose checkpoint is not written
                         ids=["mid-epoch", "mid-checkpoint-write", "mid-model-write"])
def test_training_killed_anywhere_resumes_to_the_same_weights(extracted_root, tmp_path, fault):
    root = tmp_path
    shutil.copytree(extracted_root / "data", root / "data")
    (root / "artifacts").mkdir()
    shutil.copytree(extracted_root / "base" / "features", root / "artifacts" / "features")
    train = ("train", "--fold", "0", "--epochs", "3", "--members", "1")
    killed(cli(root, *train, fault=fault))
    run = root / "artifacts" / "runs" / "fold-0"
    assert not (run / "result.json").exists() and not (run / "model.pt").exists()
    ok(cli(root, *train, "--resume"))
    expected = _weights(extracted_root / "base" / "runs" / "fold-0" / "model.pt")
    got = _weights(run / "model.pt")
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    assert not list(run.glob(".*.tmp"))


def test_export_killed_mid_write_leaves_no_bundle_and_reruns(extracted_root, tmp_path):
    from pipeline.inference import bundle as bundles

    root = extracted_root
    out = tmp_path / "ser.safetensors"
    export = ("export", "--run", "fold-0", "--members", "1", "--out", str(out))
    killed(cli(root, *export, fault=f"write:{out.name}", artifacts="base"))
    assert not out.exists()  # never a half-written file under the bundle's name
    ok(cli(root, *export, artifacts="base"))
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = bundles.load(out)
    expected = _weights(root / "base" / "runs" / "fold-0" / "model.pt")
    for name, tensor in expected.items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name
