"""Tests of pipeline/core/engines.py: the same outputs here, in joblib workers and on a real
Dask cluster (started in-process: ``LocalCluster`` with 2 worker processes), and clear
errors when the cluster cannot be used."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipeline.core import engines
from pipeline.core.errors import PipelineError
from test_extract import CONFIG, _assert_same_shards, _run
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


@pytest.fixture(scope="module")
def cluster():
    """A real local Dask cluster: 2 worker processes, one thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local:
        with Client(local, set_as_default=False) as client:  # as a user process has none
            yield local, client


def _ran_on_workers(task_stream: list[dict], name: str, workers: set[str]) -> list[str]:
    """The workers that ran the tasks whose key starts with ``name``."""
    ran = [task["worker"] for task in task_stream if task["key"].startswith(name)]
    assert ran and set(ran) <= workers, (ran, workers)
    return ran


def test_extract_on_the_cluster_writes_the_local_runs_shards(indexed, tmp_path, cluster):
    from distributed import get_task_stream

    local, client = cluster
    reference = _run(indexed, tmp_path / "local", jobs=1)
    with get_task_stream(client) as stream:
        on_dask = _run(indexed, tmp_path / "dask", scheduler=local.scheduler_address)
    ran = _ran_on_workers(stream.data, "build_shard", set(client.scheduler_info()["workers"]))
    assert len(ran) == len(list(reference.features_dir.glob("shard-*.h5")))
    assert not on_dask.cached and on_dask.rows == reference.rows
    _assert_same_shards(reference.features_dir, on_dask.features_dir)


def test_predict_on_the_cluster_gives_the_local_rows(trained, cluster):  # noqa: F811
    from distributed import get_task_stream

    from pipeline.inference.predict import predict_files

    local, client = cluster
    files = [corpus_clip(trained, emotion=e, actor=a) for e, a in ((1, 1), (4, 2), (6, 3), (8, 4))]
    here = predict_files(files, trained.bundle, jobs=1)
    with get_task_stream(client) as stream:
        there = predict_files(files, trained.bundle, scheduler=local.scheduler_address)
    _ran_on_workers(stream.data, "file_windows", set(client.scheduler_info()["workers"]))
    assert [r.path for r in there] == [str(f) for f in files]  # as given, not resolved
    for a, b in zip(here, there):
        assert (a.emotion, a.error, a.segments) == (b.emotion, b.error, b.segments)
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_results_come_back_in_order_or_as_done_and_equal_everywhere(cluster):
    local, _ = cluster
    items = list(range(12))
    expected = [np.sqrt(i) for i in items]
    assert list(engines.run(np.sqrt, items)) == expected
    assert list(engines.run(np.sqrt, items, jobs=2)) == expected
    assert list(engines.run(np.sqrt, items, scheduler=local.scheduler_address)) == expected
    unordered = engines.run(np.sqrt, items, scheduler=local.scheduler_address, ordered=False)
    assert sorted(unordered) == expected


def test_an_unreachable_scheduler_names_the_address_and_the_fix():
    with pytest.raises(PipelineError, match=r"cannot reach the Dask scheduler at "
                                            r"tcp://127.0.0.1:1 .*dask scheduler"):
        list(engines.run(abs, [1], scheduler="tcp://127.0.0.1:1"))


def test_without_dask_the_message_says_how_to_install_it(hide_module):
    hide_module("distributed")
    with pytest.raises(PipelineError, match=r"pip install 'ser-pipeline\[dask\]'"):
        list(engines.run(abs, [1], scheduler="tcp://127.0.0.1:8786"))


def test_a_folder_the_workers_cannot_see_is_refused_before_any_task(cluster, tmp_path):
    local, _ = cluster
    missing = tmp_path / "not-shared"
    with pytest.raises(PipelineError, match=r"cannot see .*not-shared.*shared with this machine"):
        list(engines.run(abs, [1], scheduler=local.scheduler_address, shared_path=missing))


def test_the_cli_takes_the_scheduler_from_the_environment(indexed, tmp_path, cluster, runner):
    from cli import cli

    local, _ = cluster
    result = runner.invoke(cli, ["--data-dir", str(indexed), "--artifacts-dir",
                                 str(tmp_path / "art"), "extract", "--copies", "1"],
                           env={"SER_DASK_SCHEDULER": local.scheduler_address})
    assert result.exit_code == 0, result.output
    assert "features: 128 rows from 64 clips" in result.output
    assert os.listdir(tmp_path / "art" / "features")


def test_without_a_scheduler_dask_is_never_imported():
    import subprocess
    import sys

    program = ("import sys; from pipeline.core import engines; "
               "assert list(engines.run(abs, [-1, -2], jobs=1)) == [1, 2]; "
               "import cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
               "('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.stdout.strip() == "[]"
