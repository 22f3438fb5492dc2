"""Several runs trained as one stacked network (``training.together``, issue 32).

Equality with training each run alone is checked in float64: in float32 the grouped
convolutions round differently from a lone model's, and over a few hundred steps Adam's
per-element scaling grows that rounding into differences of the size a change of thread
count makes (up to ~1e-1 relative in a small weight after 8 epochs); in float64 the same
runs agree within 1e-5 (measured: 2e-6 after 8 epochs with mixup), so any real difference
(a wrong seed, order, mask, weight or state) shows. All but ``attention.2.bias``: a
constant added to every frame's score, which the softmax over frames cannot see, so its
gradient is pure rounding (~1e-17) and Adam's scaling turns that into steps of either sign
in both modes alike; no output depends on its value."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
import torch

from pipeline.core.progress import log
from pipeline.training import together as together_module
from pipeline.training.run import TrainingInterrupted
from pipeline.training.train import train
from pipeline.training.together import train_together
from test_train import SMALL, _assert_same_weights, _metrics, _weights, write_store
from test_train_sync import count_reads

TARGETS = [(0, 0), (0, 1), (1, 0)]  # two members of a fold, and another fold
TOLERANCE = 1e-5


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _together(store, config, targets=TARGETS, **kwargs):
    data_dir, artifacts_dir = store
    return train_together(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config,
                          targets=targets, device="cpu", **kwargs)


def _alone(store, config, targets=TARGETS, **kwargs):
    data_dir, artifacts_dir = store
    return [train(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config, fold=fold,
                  member=member, device="cpu", **kwargs) for fold, member in targets]


def _without_timing(records: list[dict]) -> list[dict]:
    drop = ("seconds", "samples_per_s", "models_in_step")
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_runs_trained_together_equal_the_same_runs_trained_alone(tmp_path, float64):
    config = replace(SMALL, epochs=4, mixup_alpha=0.4)
    alone = _alone(write_store(tmp_path / "alone"), config)
    stacked = _together(write_store(tmp_path / "together"), config)
    for one, other in zip(alone, stacked):
        assert other.run_dir.name == one.run_dir.name
        mine, theirs = _weights(other.run_dir), _weights(one.run_dir)
        assert mine.keys() == theirs.keys()
        for name in set(theirs) - {"attention.2.bias"}:
            error = float((mine[name].double() - theirs[name].double()).abs().max())
            assert error <= TOLERANCE, f"{one.run_dir.name} {name}: off by {error:.2g}"
        assert (other.best_epoch, other.epochs_run, other.val) == (
            one.best_epoch, one.epochs_run, one.val)
        for a, b in zip(_metrics(other.run_dir), _metrics(one.run_dir)):
            assert a["models_in_step"] == len(TARGETS)
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
            assert a["train_acc"] == b["train_acc"] and a["lr"] == b["lr"]
        # the same run: the same key, so either mode's result is the other's cache
        key = json.loads((one.run_dir / "result.json").read_text())["key"]
        assert json.loads((other.run_dir / "result.json").read_text())["key"] == key
        assert (other.run_dir / "checkpoint.pt").exists()


def test_runs_with_other_row_counts_stack_when_their_steps_per_epoch_match(
        tmp_path, monkeypatch, float64):
    """Fold 1 loses 5 training rows (12 steps of 16 still, its last batch 11 rows: that
    step is taken by each model alone), fold 2 loses 20 (11 steps: a stack of its own)."""
    from pipeline.training import run as run_module

    real = run_module._checked_split

    def fewer(store, fold, config, split_seed):
        split = real(store, fold, config, split_seed)
        return replace(split, train=split.train[:len(split.train) - {1: 5, 2: 20}.get(fold, 0)])

    monkeypatch.setattr(run_module, "_checked_split", fewer)
    config, targets = replace(SMALL, epochs=3), [(0, 0), (1, 0), (2, 0)]
    alone = _alone(write_store(tmp_path / "alone"), config, targets)
    stacked = _together(write_store(tmp_path / "together"), config, targets)
    for one, other, count in zip(alone, stacked, (2, 2, 1)):
        mine, theirs = _weights(other.run_dir), _weights(one.run_dir)
        for name in set(theirs) - {"attention.2.bias"}:
            error = float((mine[name].double() - theirs[name].double()).abs().max())
            assert error <= TOLERANCE, f"{one.run_dir.name} {name}: off by {error:.2g}"
        assert torch.equal(mine["conv.1.num_batches_tracked"],
                           theirs["conv.1.num_batches_tracked"])
        records = _metrics(other.run_dir)
        assert {r["models_in_step"] for r in records} == {count}
        assert [r["train_loss"] for r in records] == pytest.approx(
            [r["train_loss"] for r in _metrics(one.run_dir)], abs=1e-6)


def test_a_seed_gives_the_same_weights_every_time(tmp_path):
    config = replace(SMALL, epochs=2)
    first = _together(write_store(tmp_path / "first"), config)
    second = _together(write_store(tmp_path / "second"), config)
    for a, b in zip(first, second):
        _assert_same_weights(_weights(a.run_dir), _weights(b.run_dir))
    assert _weights(first[0].run_dir)["conv.0.weight"].dtype == torch.float32


def _interrupt_at(stop: int, real):
    def epoch(self, epoch_number):
        if epoch_number == stop:
            raise KeyboardInterrupt
        return real(self, epoch_number)
    return epoch


def test_resume_after_a_kill_continues_every_run(tmp_path, monkeypatch):
    config = replace(SMALL, epochs=4)
    whole = _together(write_store(tmp_path / "whole"), config)
    store = write_store(tmp_path / "killed")
    real = together_module.StackedStep.epoch
    monkeypatch.setattr(together_module.StackedStep, "epoch", _interrupt_at(3, real))
    with pytest.raises(TrainingInterrupted, match="--resume") as caught:
        _together(store, config)
    for fold, member in TARGETS:
        name = f"fold-{fold}" + (f".m{member}" if member else "")
        assert name in str(caught.value)
        run_dir = store[1] / "runs" / name
        assert [r["epoch"] for r in _metrics(run_dir)] == [1, 2]
        assert not (run_dir / "model.pt").exists()
    trained = []

    def recording(self, epoch_number):
        trained.append(epoch_number)
        return real(self, epoch_number)

    monkeypatch.setattr(together_module.StackedStep, "epoch", recording)
    resumed = _together(store, config, resume=True)
    assert trained == [3, 4]  # one stack, from the checkpoints, not from scratch
    for a, b in zip(whole, resumed):
        _assert_same_weights(_weights(a.run_dir), _weights(b.run_dir))
        assert _without_timing(_metrics(a.run_dir)) == _without_timing(_metrics(b.run_dir))


def test_a_run_checkpointed_together_resumes_alone(tmp_path, monkeypatch):
    config = replace(SMALL, epochs=3)
    store = write_store(tmp_path)
    real = together_module.StackedStep.epoch
    monkeypatch.setattr(together_module.StackedStep, "epoch", _interrupt_at(2, real))
    with pytest.raises(TrainingInterrupted):
        _together(store, config, targets=[(0, 0), (1, 0)])
    (result,) = _alone(store, config, targets=[(1, 0)], resume=True)
    assert [r["epoch"] for r in _metrics(result.run_dir)] == [1, 2, 3]
    assert [r["models_in_step"] for r in _metrics(result.run_dir)] == [2, 1, 1]


def test_a_run_that_stops_early_leaves_the_stack_and_the_others_go_on(tmp_path, monkeypatch):
    from pipeline.training.session import Session

    config = replace(SMALL, epochs=5, patience=2)
    real = Session.validate

    def validate(self):  # fold 1's validation UA never improves after epoch 1
        metrics = real(self)
        if 1 in self.split.test_folds:
            metrics["ua"] = 0.5 if not hasattr(self, "seen") else 0.1
            self.seen = True
        return metrics

    monkeypatch.setattr(Session, "validate", validate)
    sizes = []
    real_init = together_module.StackedStep.__init__

    def init(self, runs, **kwargs):
        sizes.append(len(runs))
        real_init(self, runs, **kwargs)

    monkeypatch.setattr(together_module.StackedStep, "__init__", init)
    results = _together(write_store(tmp_path / "whole"), config, targets=[(0, 0), (1, 0)])
    assert [r.epochs_run for r in results][1] == 3  # epoch 1, then two without gain
    assert sizes == [2, 1]
    assert (results[1].run_dir / "model.pt").exists()
    # interrupted after fold 1 finished: only fold 0 is left to resume, and said so
    real_epoch = together_module.StackedStep.epoch
    monkeypatch.setattr(together_module.StackedStep, "epoch", _interrupt_at(5, real_epoch))
    with pytest.raises(TrainingInterrupted) as caught:
        _together(write_store(tmp_path / "killed"), config, targets=[(0, 0), (1, 0)])
    assert "epochs up to 4 of fold-0 in" in str(caught.value)
    assert "fold-1" not in str(caught.value)


def test_an_interrupt_before_the_first_epoch_says_nothing_was_saved(tmp_path, monkeypatch):
    real_epoch = together_module.StackedStep.epoch
    monkeypatch.setattr(together_module.StackedStep, "epoch", _interrupt_at(1, real_epoch))
    with pytest.raises(TrainingInterrupted, match=r"interrupted before the first epoch of "
                       r"fold-0, fold-1 was saved: rerun the same command"):
        _together(write_store(tmp_path), replace(SMALL, epochs=2), targets=[(0, 0), (1, 0)])


def test_recipes_that_cannot_be_stacked_train_one_run_at_a_time(tmp_path, caplog):
    config = replace(SMALL, epochs=1, adversary=0.5)
    with caplog.at_level(logging.INFO, logger=log.name):
        results = _together(write_store(tmp_path / "a"), config, targets=[(0, 0), (1, 0)])
    assert "one run at a time: the speaker adversary" in caplog.text
    alone = _alone(write_store(tmp_path / "b"), config, targets=[(0, 0), (1, 0)])
    for a, b in zip(results, alone):
        _assert_same_weights(_weights(a.run_dir), _weights(b.run_dir))


class _FailsBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("the compiled backward failed")


def _broken_compiler(where: str):
    """A stand-in for ``torch.compile`` that fails at ``where``: compile, forward or
    backward (AOTAutograd compiles the backward at the first ``backward()``)."""
    def compile(network):
        if where == "compile":
            raise RuntimeError("no compiler here")

        def compiled(x, masks):
            if where == "forward":
                raise RuntimeError("the compiled forward failed")
            return _FailsBackward.apply(network(x, masks))
        return compiled
    return compile


@pytest.mark.parametrize("where", ["compile", "forward", "backward"])
def test_a_failing_compiler_falls_back_to_eager_mode(tmp_path, monkeypatch, caplog, where):
    config = replace(SMALL, epochs=2)
    eager = _together(write_store(tmp_path / "eager"), config, compiled=False)
    monkeypatch.setattr(torch, "compile", _broken_compiler(where))
    with caplog.at_level(logging.WARNING, logger=log.name):
        compiled = _together(write_store(tmp_path / "compiled"), config, compiled=True)
    assert caplog.text.count("torch.compile failed here (RuntimeError: ") == 1
    for a, b in zip(compiled, eager):  # the failed step redone in eager mode, same draws
        _assert_same_weights(_weights(a.run_dir), _weights(b.run_dir))


def test_an_epochs_reads_do_not_grow_with_its_steps(tmp_path, monkeypatch):
    """No host synchronisation per step in the stacked loop either (test_train_sync)."""
    counted = count_reads(monkeypatch, together_module.StackedStep, "epoch")
    store, counts = write_store(tmp_path), []
    for batch_size in (64, 8):  # then eight times the steps
        counted["reads"] = 0
        _together(store, replace(SMALL, epochs=1, mixup_alpha=0.4, batch_size=batch_size),
                  force=True)
        counts.append(counted["reads"])
    assert counts[0] == counts[1], counts


def test_ser_train_stack_on_trains_every_run_and_member_into_its_own_folder(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    data_dir, artifacts_dir = write_store(tmp_path)
    base = ["--data-dir", str(data_dir), "--artifacts-dir", str(artifacts_dir), "train",
            "--fold", "all", "--epochs", "2", "--members", "2", "--device", "cpu"]
    done = CliRunner().invoke(cli, [*base, "--stack", "on"])
    assert done.exit_code == 0, done.output
    names = [f"fold-{k}{suffix}" for k in range(4) for suffix in ("", ".m1")]
    for name in names:
        assert f"{name}: last epoch 2 kept" in done.output
        run_dir = artifacts_dir / "runs" / name
        assert (run_dir / "model.pt").exists() and (run_dir / "checkpoint.pt").exists()
        assert _metrics(run_dir)[0]["models_in_step"] == 8
    # one at a time finds every run trained: the key is the same in both modes
    again = CliRunner().invoke(cli, [*base, "--stack", "off"])
    assert again.exit_code == 0, again.output
    assert again.output.count("(cached)") == len(names)


def test_bf16_is_asked_for_and_keyed_apart(tmp_path, monkeypatch):
    from pipeline.training.stack import StackedCNN

    seen, real = [], StackedCNN.forward

    def forward(self, x, masks=None):
        logits = real(self, x, masks)
        seen.append(logits.dtype)
        return logits

    monkeypatch.setattr(StackedCNN, "forward", forward)
    store, config = write_store(tmp_path), replace(SMALL, epochs=1)
    plain = _together(store, config, targets=[(0, 0), (1, 0)])
    steps, key = len(seen), json.loads((plain[0].run_dir / "result.json").read_text())["key"]
    bf16 = _together(store, config, targets=[(0, 0), (1, 0)], bf16=True)
    assert set(seen[:steps]) == {torch.float32} and set(seen[steps:]) == {torch.bfloat16}
    assert not any(result.cached for result in bf16)  # another key
    assert json.loads((bf16[0].run_dir / "result.json").read_text())["key"] != key
