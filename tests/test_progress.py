"""Tests of pipeline/core/progress.py: the log handler and when bars are drawn."""

from __future__ import annotations

import io
import re
import logging
import sys

import pytest

from pipeline.core import progress


@pytest.fixture
def restored_logger():
    log = logging.getLogger("pipeline")
    saved = (log.handlers[:], log.level, log.propagate)
    yield log
    log.handlers[:] = saved[0]
    log.setLevel(saved[1])
    log.propagate = saved[2]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_messages_go_to_whatever_stderr_is_at_the_time(restored_logger, monkeypatch):
    progress.configure(level="INFO")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    restored_logger.info("one")
    monkeypatch.setattr(sys, "stderr", second)  # e.g. click's CliRunner swapping it
    restored_logger.info("two")
    assert first.getvalue() == "one\n" and second.getvalue() == "two\n"


def test_quiet_keeps_warnings_and_drops_info(restored_logger, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    progress.configure(level="INFO", quiet=True)
    restored_logger.info("detail")
    restored_logger.warning("problem")
    assert stream.getvalue() == "problem\n"


@pytest.mark.parametrize("quiet, bars, terminal, drawn", [
    (False, None, True, True),
    (True, None, True, False),   # --quiet
    (False, False, True, False),  # bars off (the command line, under CI)
    (False, None, False, False),  # a pipe or a file: tqdm's own check
])
def test_a_bar_is_drawn_only_on_a_terminal_when_not_quiet_and_not_turned_off(
        restored_logger, monkeypatch, quiet, bars, terminal, drawn):
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("CI", "true")  # the library never reads it
    progress.configure(level="INFO", quiet=quiet, bars=bars)
    with progress.bar(total=3, desc="work") as bar:
        bar.update(3)
    assert ("work" in stream.getvalue()) == drawn


def test_one_job_bar_counts_every_epoch_still_to_train_with_an_estimate(restored_logger,
                                                                       monkeypatch):
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    progress.configure(level="INFO")
    with progress.JobBar(runs=2, members=2, epochs=10) as job:
        assert job.bar.total == 40
        job.start(run_index=0, run="fold-0", member=0)
        job.finished(cached=True, epochs_run=10)  # already trained: off the total
        job.start(run_index=0, run="fold-0", member=1)
        for epoch in range(4, 11):  # resumed after epoch 3
            job.epoch(epoch, first_epoch=4)
        job.finished(cached=False, epochs_run=10)
        job.start(run_index=1, run="fold-1", member=0)
        for epoch in range(1, 7):  # stopped early at epoch 6
            job.epoch(epoch, first_epoch=1)
        job.finished(cached=False, epochs_run=6)
        assert (job.bar.n, job.bar.total) == (13, 23)
        restored_logger.info("fold-1 epoch 6/10  loss 1.0")  # a log line above the bar
    text = stream.getvalue()
    assert "train fold-1 (run 2/2, member 1/2)" in text and "epoch" in text
    assert "fold-1 epoch 6/10  loss 1.0\n" in text
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", text)  # tqdm's estimate: elapsed<remaining


@pytest.mark.parametrize("ci, bars", [("true", False), ("", None)])
def test_the_command_line_turns_bars_off_under_ci(restored_logger, monkeypatch, ci, bars):
    from click.testing import CliRunner

    from pipeline.cli import cli

    monkeypatch.setattr(progress, "_bars", "unset")
    done = CliRunner().invoke(cli, ["train", "--help"], env={"CI": ci})
    assert done.exit_code == 0
    assert progress._bars is bars
