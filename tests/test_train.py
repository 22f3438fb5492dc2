"""The train stage on a tiny synthetic feature store (no audio): learning, resume,
determinism, speaker-disjoint splits, stale inputs, NaN guard, caching, metrics, CLI.

The store is written directly with ``pipeline.corpus.store.write_shard`` plus an index and a
features manifest in the formats ``index`` and ``extract`` write, so training runs in
seconds. Each clip's label is easy to see: a bright striped band at mel row ``2 * label``
(striped over time, so a per-clip mean subtraction in the model cannot remove it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import fields, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.core import layout
from pipeline.core.atomic import manifest, read_json, write_json_atomic, write_text_atomic
from pipeline.core.errors import StaleInputError, TrainingError
from pipeline.core.hashing import hash_file
from pipeline.core.labels import EMOTIONS
from pipeline.corpus.extract import ExtractConfig
from pipeline.corpus.index import Clip, clips_hash, load_index
from pipeline.corpus.splits import fold_split
from pipeline.corpus.store import load_store, read_shard, write_shard
from pipeline.inference.scorer import from_run
from pipeline.network.model import Ensemble, ModelConfig, load_model
from pipeline.network.recipe import TrainConfig
from pipeline.signal.augment import AugmentConfig, AugmentParams
from pipeline.signal.features import FEATURES_VERSION, FeatureConfig
from pipeline.training import session as session_module
from pipeline.training import train as train_module
from pipeline.training.train import TrainingInterrupted, train

N_MELS = 16
N_FRAMES = 32  # 1 + window_samples // hop_length for a 0.5 s window at 16 kHz, 256 hop
N_ACTORS = 8
N_FOLDS = 4
TAKES = 2  # clips per actor and emotion
COPIES = 2  # augmented copies besides the clean one
SHARD_CLIPS = 32

# one validation fold, so these runs also exercise picking the best epoch
SMALL = TrainConfig(model=ModelConfig(n_mels=N_MELS, channels=(8, 16, 16), hidden=32),
                    epochs=8, batch_size=16, time_mask_frames=4, freq_mask_bins=2, seed=0,
                    val_folds=1)


def fold_of(actor: int) -> int:
    return (actor - 1) % N_FOLDS


def _clips() -> list[Clip]:
    clips = []
    for actor in range(1, N_ACTORS + 1):
        for label, emotion in enumerate(EMOTIONS):
            for take in range(TAKES):
                statement, repetition = 1 + take % 2, 1 + take // 2 % 2
                clip_id = f"03-01-{label + 1:02d}-01-{statement:02d}-{repetition:02d}-{actor:02d}"
                clips.append(Clip(
                    path=f"/corpus/Actor_{actor:02d}/{clip_id}.wav", corpus="ravdess",
                    clip_id=clip_id, label=f"{label + 1:02d}", emotion=emotion,
                    speaker=f"ravdess:{actor:02d}",
                    gender="male" if actor % 2 else "female", sample_rate=16000, channels=1,
                    num_samples=16000, duration=1.0,
                    content_hash=hashlib.sha256(clip_id.encode()).hexdigest()[:20],
                    duplicate_of="", fold=fold_of(actor)))
    return clips


def _features(clip_number: int, label: int, copy: int, *, seed: int) -> np.ndarray:
    """float32 ``(2, N_MELS, N_FRAMES)``: noise plus a striped band at mel row 2 * label."""
    rng = np.random.default_rng([seed, clip_number, copy])
    x = rng.standard_normal((2, N_MELS, N_FRAMES))
    x[:, 2 * label, ::2] += 4.0
    if copy:  # an "augmented" copy: shifted in time, a little louder or softer
        x = np.roll(x, int(rng.integers(1, 4)), axis=2) * rng.uniform(0.8, 1.2)
    return x.astype(np.float32)


def write_store(root: Path, *, seed: int = 0, poison: float | None = None) -> tuple[Path, Path]:
    """A data folder (``index.csv`` + ``index.json``) and an artifacts folder with a
    feature store of 8 actors in 4 folds x 8 emotions x 2 takes x 3 copies (384 rows).

    ``poison``: a value (NaN, inf) written into one training row of fold 0's split.
    Returns ``(data_dir, artifacts_dir)``.
    """
    data_dir, artifacts_dir = root / "data", root / "artifacts"
    clips = _clips()
    _write_index(data_dir, clips)
    config = ExtractConfig(features=FeatureConfig(n_mels=N_MELS, window_seconds=0.5, hop_length=256),
                           augment=AugmentConfig(copies=COPIES), seed=seed,
                           shard_clips=SHARD_CLIPS)
    assert config.features.shape == (2, N_MELS, N_FRAMES)
    key = config.cache_key(clips_hash(clips))
    layout.features_dir(artifacts_dir).mkdir(parents=True)
    shards, poisoned = [], False
    for number, start in enumerate(range(0, len(clips), SHARD_CLIPS)):
        chunk = clips[start:start + SHARD_CLIPS]
        rows = {k: [] for k in ("features", "copy", "clip_id", "aug_params")}
        for offset, clip in enumerate(chunk):
            for copy in range(COPIES + 1):
                x = _features(start + offset, EMOTIONS.index(clip.emotion), copy, seed=seed)
                if poison is not None and not poisoned and clip.fold == 2 and copy == 1:
                    x[1, 3, 5] = poison  # one augmented training row of fold 0's split
                    poisoned = True
                rows["features"].append(x)
                rows["aug_params"].append(np.zeros(len(AugmentParams.FIELDS)) + copy)
                rows["copy"].append(copy)
                rows["clip_id"].append(clip.clip_id)
        path = layout.shard_file(artifacts_dir, number)
        write_shard(path, rows={**{k: np.asarray(v) for k, v in rows.items()},
                                "clip_id": np.asarray(rows["clip_id"], dtype="S")}, attrs={
            "cache_key": key, "feature_config": config.features.to_dict(), "failures": {},
            "clip_ids": [c.clip_id for c in chunk]})
        shards.append({"file": path.name, "rows": len(rows["copy"]), "clips": len(chunk),
                       "bytes": path.stat().st_size, "sha256": hash_file(path)})
    write_json_atomic(layout.features_manifest(artifacts_dir), manifest(
        stage="extract", key=key, config=config.to_dict(), clips_hash=clips_hash(clips),
        features_version=FEATURES_VERSION, shape=list(config.features.shape),
        rows=sum(s["rows"] for s in shards), clips=len(clips), failures={}, shards=shards))
    return data_dir, artifacts_dir


def _write_index(data_dir: Path, clips: list[Clip], *, split_seed: int = 0) -> None:
    """``index.csv`` and its manifest for ``clips``, as the index stage writes them."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(Clip)], lineterminator="\n")
    writer.writeheader()
    for clip in clips:
        writer.writerow({f.name: getattr(clip, f.name) for f in fields(Clip)})
    text = buffer.getvalue()
    write_text_atomic(layout.index_csv(data_dir), text)
    write_json_atomic(layout.index_manifest(data_dir), manifest(
        stage="index", key="synthetic", index_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
        config={"folds": len({c.fold for c in clips}), "seed": split_seed},
        clips_hash=clips_hash(clips), clips=len(clips),
        speakers=sorted({c.speaker for c in clips})))


@pytest.fixture
def store(tmp_path) -> tuple[Path, Path]:
    return write_store(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fold-0 run of SMALL on the store, shared by the read-only tests."""
    data_dir, artifacts_dir = write_store(tmp_path_factory.mktemp("trained"))
    result = train(data_dir=data_dir, artifacts_dir=artifacts_dir, config=SMALL, fold=0,
                   device="cpu")
    return data_dir, artifacts_dir, result


def _run(store, config=SMALL, **kwargs):
    data_dir, artifacts_dir = store
    return train(data_dir=data_dir, artifacts_dir=artifacts_dir, config=config,
                 device="cpu", **kwargs)


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["state_dict"]


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"weights differ: {different}"


# --- the store helper itself --------------------------------------------------------------


def test_synthetic_store_loads_like_an_extracted_one(store):
    data_dir, artifacts_dir = store
    loaded = load_store(artifacts_dir, clips=load_index(data_dir))
    assert loaded.features.shape == (N_ACTORS * 8 * TAKES * (COPIES + 1), 2, N_MELS, N_FRAMES)
    assert loaded.features.dtype == np.float16
    assert sorted(set(loaded.fold.tolist())) == list(range(N_FOLDS))
    assert len(load_index(data_dir)) == N_ACTORS * 8 * TAKES


# --- learning -----------------------------------------------------------------------------


def test_learns_the_separable_problem(trained):
    _, _, result = trained
    assert not result.cached
    assert result.epochs_run == SMALL.epochs
    assert result.val["ua"] >= 0.9, result.val
    assert result.val["n"] == 2 * 8 * TAKES  # fold 1's two actors, clean copies only
    model, meta = load_model(result.run_dir / "model.pt")
    assert meta["label_map"] == list(EMOTIONS)
    assert meta["info"]["val"]["ua"] == pytest.approx(result.val["ua"])
    # the model file carries the statistics of the training rows, not the defaults
    assert not torch.all(model.feature_mean == 0)
    assert not torch.all(model.feature_std == 1)


def test_balanced_loss_uses_training_rows_and_reaches_the_optimiser(store, monkeypatch):
    data_dir, artifacts_dir = store
    seen = []

    def skewed(labels, n_classes):  # the synthetic store is balanced: skew to see an effect
        seen.append(labels.copy())
        return np.linspace(0.2, 2.0, n_classes, dtype=np.float32)

    monkeypatch.setattr(session_module, "balanced_weights", skewed)
    weights = {}
    for balanced in (False, True):
        result = train(data_dir=data_dir, artifacts_dir=artifacts_dir,
                       config=replace(SMALL, epochs=2, balanced=balanced), fold=0, force=True)
        weights[balanced] = load_model(result.run_dir / "model.pt")[0].state_dict()
    assert len(seen) == 1
    assert len(seen[0]) == 4 * 8 * TAKES * (1 + COPIES)  # 4 training actors, every copy
    assert any(not torch.equal(weights[False][k], weights[True][k]) for k in weights[False]
               if weights[False][k].is_floating_point())


def test_metrics_has_one_line_per_epoch(trained):
    _, _, result = trained
    records = _metrics(result.run_dir)
    assert [r["epoch"] for r in records] == list(range(1, SMALL.epochs + 1))
    for record in records:
        assert {"train_loss", "val_ua", "samples_per_s"} <= record.keys()
        assert np.isfinite(record["train_loss"]) and record["train_loss"] > 0
        assert 0.0 <= record["val_ua"] <= 1.0
        assert record["samples_per_s"] > 0
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    result_json = read_json(result.run_dir / "result.json")
    assert result_json["best_epoch"] == result.best_epoch
    best = max(records, key=lambda r: r["val_ua"])  # first epoch with the best UA
    assert result.best_epoch == best["epoch"]


# --- speaker-disjoint roles ---------------------------------------------------------------


def test_test_fold_actors_never_trained_or_validated_on(trained):
    data_dir, artifacts_dir, result = trained
    name = "ravdess:{:02d}".format
    test_actors = sorted(name(a) for a in range(1, N_ACTORS + 1) if fold_of(a) == 0)
    val_actors = sorted(name(a) for a in range(1, N_ACTORS + 1) if fold_of(a) == 1)
    for info in (read_json(result.run_dir / "result.json"),
                 load_model(result.run_dir / "model.pt")[1]["info"]):
        actors = info["actors"]
        assert actors["test"] == test_actors
        assert actors["val"] == val_actors
        assert not set(actors["train"]) & set(actors["test"])
        assert not set(actors["train"]) & set(actors["val"])
        assert sorted(actors["train"] + actors["val"] + actors["test"]) == [
            name(a) for a in range(1, N_ACTORS + 1)]
        assert info["corpora"] == ["ravdess"]
        assert info["test_folds"] == [0] and info["val_folds"] == [1]


def test_split_rows_keep_test_clips_out_of_training(store):
    data_dir, artifacts_dir = store
    loaded = load_store(artifacts_dir, clips=load_index(data_dir))
    split = fold_split(fold=loaded.fold, copy=loaded.copy, test_fold=0, val_folds=1)
    assert np.all(loaded.copy[split.test] == 0)
    assert np.all(loaded.copy[split.val] == 0)
    assert set(loaded.copy[split.train].tolist()) == set(range(COPIES + 1))
    test_clips = set(loaded.clip_id[split.test])
    val_clips = set(loaded.clip_id[split.val])
    train_clips = set(loaded.clip_id[split.train])
    assert test_clips and val_clips and train_clips
    assert not test_clips & train_clips  # no copy of a test clip reaches training
    assert not val_clips & train_clips
    # every copy of a training clip is trained on
    assert len(split.train) == len(train_clips) * (COPIES + 1)


def test_without_validation_a_fold_trains_on_every_other_actor_and_keeps_the_last_epoch(store):
    result = _run(store, replace(SMALL, epochs=2, val_folds=0), fold=0, force=True)
    assert result.val is None and result.best_epoch == result.epochs_run == 2
    info = read_json(result.run_dir / "result.json")
    name = "ravdess:{:02d}".format
    test_actors = [name(a) for a in range(1, N_ACTORS + 1) if fold_of(a) == 0]
    assert info["actors"] == {"train": [name(a) for a in range(1, N_ACTORS + 1)
                                        if name(a) not in test_actors],
                              "val": [], "test": test_actors}
    kept = load_model(result.run_dir / "model.pt")[0].state_dict()
    last = torch.load(result.run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(kept[k], last[k]) for k in kept)
    assert all("val_ua" not in record for record in _metrics(result.run_dir))


def test_ensemble_members_train_from_consecutive_seeds_on_the_same_split(store):
    config = replace(SMALL, epochs=1, val_folds=0)
    first = _run(store, config, fold=0)
    second = _run(store, config, fold=0, member=1)
    assert (first.run_dir.name, second.run_dir.name) == ("fold-0", "fold-0.m1")
    infos = [read_json(r.run_dir / "result.json") for r in (first, second)]
    assert [i["seed"] for i in infos] == [0, 1] and [i["member"] for i in infos] == [0, 1]
    assert infos[0]["split_seed"] == infos[1]["split_seed"] == 0
    assert infos[0]["actors"] == infos[1]["actors"]
    a, b = _weights(first.run_dir), _weights(second.run_dir)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    # member 0 is the plain run: the same key as training without members
    assert _run(store, config, fold=0).cached

    scorer = from_run(store[1], "fold-0", 2)
    model = scorer.model
    assert isinstance(model, Ensemble) and len(model.members) == 2 and not model.training
    assert [s["info"]["seed"] for s in scorer.saved] == [0, 1]
    with pytest.raises(TrainingError, match=r"member 3 of 3\): run 'ser train --fold 0 --members 3'"):
        from_run(store[1], "fold-0", 3)


def test_members_trained_with_other_settings_are_refused(store):
    _run(store, replace(SMALL, epochs=1, val_folds=0), fold=0)
    _run(store, replace(SMALL, epochs=2, val_folds=0), fold=0, member=1)
    with pytest.raises(TrainingError, match="different settings or features.*--members 2 --force"):
        from_run(store[1], "fold-0", 2)


def test_patience_without_validation_actors_names_the_fix(store):
    with pytest.raises(TrainingError, match="set val_folds to 1 or more, or patience to 0"):
        _run(store, replace(SMALL, epochs=2, val_folds=0, patience=2), fold=0, force=True)


def test_final_model_trains_on_every_actor(store):
    result = _run(store, replace(SMALL, epochs=1), fold=None)
    assert result.run_dir.name == "final"
    assert result.val is None
    info = read_json(result.run_dir / "result.json")
    assert info["actors"] == {"train": [f"ravdess:{a:02d}" for a in range(1, N_ACTORS + 1)],
                              "val": [], "test": []}


def test_new_folds_retrain_fold_runs_but_not_the_final_model(store):
    """A run's key holds its split: reassigning folds (ser index --folds / --seed)
    makes fold runs stale, while the final model, which uses every actor, stays cached."""
    config = replace(SMALL, epochs=1, val_folds=0)
    _run(store, config, fold=0)
    _run(store, config, fold=None)
    clips = load_index(store[0])
    _write_index(store[0], [replace(c, fold=(int(c.speaker[-2:]) * 3) % N_FOLDS) for c in clips])
    assert not _run(store, config, fold=0).cached
    assert _run(store, config, fold=None).cached


def test_a_relabelled_clip_retrains_every_run_and_evaluate_refuses_the_old_one(store):
    """Labels are joined from the index, not stored with the features: a fixed manifest
    row (or a changed label map) changes no feature key, but it is in every run's key."""
    from pipeline.evaluation.evaluate import evaluate_folds

    config = replace(SMALL, epochs=1, val_folds=0)
    _run(store, config, fold=0)
    _run(store, config, fold=None)
    clips = load_index(store[0])
    relabelled = replace(clips[0], emotion="sad" if clips[0].emotion != "sad" else "angry")
    _write_index(store[0], [relabelled, *clips[1:]])
    with pytest.raises(StaleInputError, match=r"runs/fold-0 was trained on other labels .*"
                                              r"rerun 'ser train --fold 0'"):
        evaluate_folds(data_dir=store[0], artifacts_dir=store[1], folds=[0])
    assert not _run(store, config, fold=0).cached
    assert not _run(store, config, fold=None).cached


def test_training_on_some_corpora_validates_on_every_corpus(store):
    """train_corpora keeps the other corpora's rows out of training only; each epoch's
    validation UA is reported per corpus as well as pooled."""
    clips = load_index(store[0])
    other = {c.clip_id for c in clips if int(c.speaker[-2:]) > 4}  # actors 5-8: "other"
    _write_index(store[0], [replace(c, corpus="other", speaker=c.speaker.replace(
        "ravdess", "other")) if c.clip_id in other else c for c in clips])
    config = replace(SMALL, epochs=2, val_folds=1, train_corpora=("ravdess",))
    result = _run(store, config, fold=0)
    info = read_json(result.run_dir / "result.json")
    assert info["corpora"] == ["ravdess"]
    assert info["actors"]["train"] == ["ravdess:03", "ravdess:04"]  # not other:07, other:08
    assert info["train_clips"] == {"ravdess": 2 * 8 * TAKES}  # clips, not their copies
    assert info["actors"]["val"] == ["other:06", "ravdess:02"]
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text()
               .splitlines()]
    assert all(set(r["val_ua_by_corpus"]) == {"other", "ravdess"} for r in records)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert "train_corpora" not in SMALL.to_dict()  # earlier runs keep their keys


def test_balancing_corpora_weights_rows_by_corpus_and_emotion(store, monkeypatch):
    """balance_corpora hands each training row its (corpus, emotion) cell's weight in
    place of class weights, changes the weights trained, and keys the run apart."""
    clips = load_index(store[0])
    other = {c.clip_id for c in clips if int(c.speaker[-2:]) > 4}
    _write_index(store[0], [replace(c, corpus="other", speaker=c.speaker.replace(
        "ravdess", "other")) if c.clip_id in other else c for c in clips])
    seen = []

    def spy(labels, corpora):
        seen.append(set(corpora.tolist()))
        return np.linspace(0.5, 1.5, len(labels), dtype=np.float32)  # skewed, to see an effect

    monkeypatch.setattr(session_module, "cell_weights", spy)
    plain = replace(SMALL, epochs=2, val_folds=0)
    weights = {}
    for config in (plain, replace(plain, balance_corpora=True)):
        result = _run(store, config, fold=0)
        assert not result.cached  # a run key of its own
        weights[config.balance_corpora] = load_model(result.run_dir / "model.pt")[0].state_dict()
    assert seen == [{"ravdess", "other"}]
    assert any(not torch.equal(weights[False][k], weights[True][k]) for k in weights[False]
               if weights[False][k].is_floating_point())
    assert "balance_corpora" not in plain.to_dict()  # earlier runs keep their keys
    assert TrainConfig.from_dict(replace(plain, balance_corpora=True).to_dict()).balance_corpora


def test_the_split_seed_and_the_training_seed_are_separate(store):
    """The training seed changes the weights, never the actors; the split seed (the
    index's) drives the random clip-level split, and the training seed does not."""
    config = replace(SMALL, epochs=1, val_folds=0)
    runs = {seed: _run(store, replace(config, seed=seed), fold="random", force=True)
            for seed in (0, 1)}
    infos = {seed: read_json(r.run_dir / "result.json") for seed, r in runs.items()}
    assert infos[0]["actors"] == infos[1]["actors"] and infos[0]["split_seed"] == 0
    _write_index(store[0], load_index(store[0]), split_seed=5)
    reseeded = _run(store, replace(config, seed=1), fold="random")
    assert not reseeded.cached  # the split changed, so the run is stale
    assert read_json(reseeded.run_dir / "result.json")["split_seed"] == 5


def test_training_leaves_the_global_torch_generator_alone(store):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    _run(store, replace(SMALL, epochs=1, val_folds=0), fold=0)
    assert torch.equal(torch.rand(3), expected)


# --- resume and determinism ---------------------------------------------------------------


def _interrupt_at(stop_epoch: int, epoch_function):
    """A stand-in for ``train_epoch`` that presses Ctrl-C when epoch ``stop_epoch`` starts."""
    def interrupted(*args, epoch, **kwargs):
        if epoch == stop_epoch:
            raise KeyboardInterrupt
        return epoch_function(*args, epoch=epoch, **kwargs)
    return interrupted


@pytest.mark.parametrize("recipe", [{}, {"adversary": 0.5}], ids=["plain", "adversary"])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, monkeypatch, recipe):
    config = replace(SMALL, epochs=4, **recipe)  # the adversary's head is checkpointed too
    whole = _run(write_store(tmp_path / "whole"), config, fold=0)

    interrupted_store = write_store(tmp_path / "interrupted")
    real_epoch = train_module.train_epoch
    monkeypatch.setattr(train_module, "train_epoch", _interrupt_at(3, real_epoch))
    with pytest.raises(TrainingInterrupted, match="--resume"):
        _run(interrupted_store, config, fold=0)
    run_dir = interrupted_store[1] / "runs" / "fold-0"
    assert not (run_dir / "model.pt").exists()
    assert not (run_dir / "result.json").exists()
    assert [r["epoch"] for r in _metrics(run_dir)] == [1, 2]
    trained_epochs = []

    def recording_epoch(*args, epoch, **kwargs):
        trained_epochs.append(epoch)
        return real_epoch(*args, epoch=epoch, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", recording_epoch)
    resumed = _run(interrupted_store, config, fold=0, resume=True)
    assert trained_epochs == [3, 4]  # continued from the checkpoint, not from scratch
    assert resumed.epochs_run == whole.epochs_run == 4
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.val == whole.val
    _assert_same_weights(_weights(whole.run_dir), _weights(resumed.run_dir))
    drop = ("seconds", "samples_per_s")
    assert ([{k: v for k, v in r.items() if k not in drop} for r in _metrics(whole.run_dir)]
            == [{k: v for k, v in r.items() if k not in drop} for r in _metrics(resumed.run_dir)])


def test_resume_keeps_early_stopping_count(store, tmp_path, monkeypatch):
    """With ``patience``, a resumed run stops at the same epoch as an uninterrupted one.

    Validation UA is scripted per epoch (0.5, 0.4, 0.3, ...: never better after epoch
    1), so with patience 2 an uninterrupted run stops after epoch 3.
    """
    config = replace(SMALL, epochs=6, patience=2)
    current = {"epoch": 0}
    real_epoch = train_module.train_epoch

    def counting_epoch(*args, epoch, **kwargs):
        current["epoch"] = epoch
        return real_epoch(*args, epoch=epoch, **kwargs)

    def scripted_val(*args, **kwargs):
        return {"wa": 0.6 - 0.1 * current["epoch"], "ua": 0.6 - 0.1 * current["epoch"]}

    monkeypatch.setattr(train_module, "train_epoch", counting_epoch)
    monkeypatch.setattr(session_module, "summarise", scripted_val)  # the validation metrics
    whole = _run(write_store(tmp_path / "whole"), config, fold=0)
    assert whole.epochs_run == 3 and whole.best_epoch == 1

    monkeypatch.setattr(train_module, "train_epoch", _interrupt_at(3, counting_epoch))
    with pytest.raises(TrainingInterrupted):
        _run(store, config, fold=0)
    monkeypatch.setattr(train_module, "train_epoch", counting_epoch)
    resumed = _run(store, config, fold=0, resume=True)
    assert (resumed.epochs_run, resumed.best_epoch) == (whole.epochs_run, whole.best_epoch)


def test_resume_refuses_a_checkpoint_of_another_config(store, monkeypatch):
    real_epoch = train_module.train_epoch
    monkeypatch.setattr(train_module, "train_epoch", _interrupt_at(2, real_epoch))
    with pytest.raises(TrainingInterrupted):
        _run(store, replace(SMALL, epochs=3), fold=0)
    monkeypatch.setattr(train_module, "train_epoch", real_epoch)
    with pytest.raises(TrainingError, match="another config"):
        _run(store, replace(SMALL, epochs=3, lr=1e-3), fold=0, resume=True)


def test_same_seed_gives_identical_weights(tmp_path):
    config = replace(SMALL, epochs=2)
    first = _run(write_store(tmp_path / "a"), config, fold=0)
    second = _run(write_store(tmp_path / "b"), config, fold=0)
    _assert_same_weights(_weights(first.run_dir), _weights(second.run_dir))
    assert ([r["train_loss"] for r in _metrics(first.run_dir)]
            == [r["train_loss"] for r in _metrics(second.run_dir)])
    other = _run(write_store(tmp_path / "c"), replace(config, seed=1), fold=0)
    assert not torch.equal(_weights(first.run_dir)["head.5.weight"],
                           _weights(other.run_dir)["head.5.weight"])


def test_gradient_clipping_records_the_norm_before_clipping_and_changes_the_steps(tmp_path):
    config = replace(SMALL, epochs=2, grad_clip=1e-3)
    clipped = _run(write_store(tmp_path / "a"), config, fold=0)
    records = _metrics(clipped.run_dir)
    # recorded before clipping: far above the 1e-3 bound the steps were taken with
    assert all(r["grad_norm_max"] >= r["grad_norm_median"] > 1e-3 for r in records)
    free = _run(write_store(tmp_path / "b"), replace(config, grad_clip=0.0), fold=0)
    assert "grad_norm_max" not in _metrics(free.run_dir)[0]
    a, b = _weights(clipped.run_dir), _weights(free.run_dir)
    assert all(torch.isfinite(v.float()).all() for v in a.values())
    assert not torch.equal(a["head.5.weight"], b["head.5.weight"])


def test_configs_saved_before_gradient_clipping_read_as_unclipped():
    saved = SMALL.to_dict()
    del saved["grad_clip"]
    assert TrainConfig.from_dict(saved).grad_clip == 0.0
    assert TrainConfig.from_dict(SMALL.to_dict()) == SMALL


# --- stale inputs -------------------------------------------------------------------------


def _change_one_clip(data_dir: Path) -> None:
    """Rewrite the index as if the first clip's audio had changed since extraction."""
    clips = load_index(data_dir)
    _write_index(data_dir, [replace(clips[0], content_hash="0" * 20), *clips[1:]])


def test_refuses_features_of_other_clips_than_the_index(store):
    _change_one_clip(store[0])
    with pytest.raises(StaleInputError, match="other clips.*extract"):
        _run(store, replace(SMALL, epochs=1), fold=0)


def test_refuses_a_truncated_shard(store):
    shard = layout.shard_file(store[1], 1)
    data = shard.read_bytes()
    shard.write_bytes(data[:len(data) // 2])
    with pytest.raises(StaleInputError, match="extract"):
        _run(store, replace(SMALL, epochs=1), fold=0)


def test_refuses_a_missing_shard(store):
    layout.shard_file(store[1], 2).unlink()
    with pytest.raises(StaleInputError, match="extract"):
        _run(store, replace(SMALL, epochs=1), fold=0)


def test_refuses_a_shard_changed_in_place(store):
    """Same size, different feature values (a bit rot or a stray write): the manifest's
    sha256 no longer matches, so the store is not the one that was extracted."""
    shard = layout.shard_file(store[1], 1)
    before = read_shard(shard)["features"]
    with h5py.File(shard, "r") as handle:
        offset = handle["features"].id.get_offset()
    size = shard.stat().st_size
    with open(shard, "r+b") as handle:
        handle.seek(offset + 100)
        handle.write(b"\x00\x3c" * 16)  # 16 feature values become float16 1.0
    assert shard.stat().st_size == size
    assert not np.array_equal(read_shard(shard)["features"], before)  # still a readable shard
    with pytest.raises(StaleInputError, match="extract"):
        _run(store, replace(SMALL, epochs=1), fold=0)


def test_refuses_a_shard_of_another_feature_config(store):
    shard = layout.shard_file(store[1], 0)
    with h5py.File(shard, "r+") as handle:
        handle.attrs["cache_key"] = "f" * 16  # same length: the file size stays the same
    record = read_json(layout.features_manifest(store[1]))
    record["shards"][0].update(bytes=shard.stat().st_size, sha256=hash_file(shard))
    write_json_atomic(layout.features_manifest(store[1]), record)
    with pytest.raises(StaleInputError, match="another feature config"):
        _run(store, replace(SMALL, epochs=1), fold=0)


# --- NaN guard ----------------------------------------------------------------------------


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_nan_or_inf_features_stop_training(tmp_path, poison):
    poisoned = write_store(tmp_path, poison=poison)
    with pytest.raises(TrainingError, match="NaN or inf"):
        _run(poisoned, replace(SMALL, epochs=2), fold=0)
    run_dir = poisoned[1] / "runs" / "fold-0"
    assert not (run_dir / "model.pt").exists()
    assert not (run_dir / "result.json").exists()


def test_diverging_learning_rate_stops_training(store):
    with pytest.raises(TrainingError, match=r"lower --lr"):
        _run(store, replace(SMALL, epochs=3, lr=1e30), fold=0)
    assert not (store[1] / "runs" / "fold-0" / "result.json").exists()


# --- caching ------------------------------------------------------------------------------


def test_second_run_is_a_cache_hit_and_force_retrains(store, monkeypatch):
    config = replace(SMALL, epochs=1)
    first = _run(store, config, fold=0)
    assert not first.cached
    model_path = first.run_dir / "model.pt"
    stamp = model_path.stat().st_mtime_ns

    calls = []
    real_epoch = train_module.train_epoch
    monkeypatch.setattr(train_module, "train_epoch",
                        lambda *a, **k: calls.append(k["epoch"]) or real_epoch(*a, **k))
    again = _run(store, config, fold=0)
    assert again.cached
    assert calls == []
    assert (again.best_epoch, again.epochs_run) == (first.best_epoch, first.epochs_run)
    assert again.val == first.val
    assert model_path.stat().st_mtime_ns == stamp

    forced = _run(store, config, fold=0, force=True)
    assert not forced.cached
    assert calls == [1]
    assert model_path.stat().st_mtime_ns != stamp
    _assert_same_weights(_weights(first.run_dir), _weights(forced.run_dir))

    changed = _run(store, replace(config, seed=3), fold=0)
    assert not changed.cached
    assert calls == [1, 1]


def test_no_cache_hit_without_the_model_file(store):
    config = replace(SMALL, epochs=1)
    first = _run(store, config, fold=0)
    (first.run_dir / "model.pt").unlink()
    again = _run(store, config, fold=0)
    assert not again.cached
    assert (first.run_dir / "model.pt").exists()


def test_key_covers_features_and_fold(store):
    config = replace(SMALL, epochs=1)
    first = _run(store, config, fold=0)
    other_fold = _run(store, config, fold=1)
    assert not other_fold.cached and other_fold.run_dir.name == "fold-1"
    assert read_json(first.run_dir / "result.json")["key"] != read_json(
        other_fold.run_dir / "result.json")["key"]


# --- CLI ----------------------------------------------------------------------------------


def _cli(store, *args):
    import sys

    from click.testing import CliRunner

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # cli.py sits beside pipeline/, not inside the package
        sys.path.insert(0, root)
    from cli import cli

    data_dir, artifacts_dir = store
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--artifacts-dir",
                                    str(artifacts_dir), "-q", "train", "--device", "cpu", *args])


def test_cli_train_one_fold(store):
    result = _cli(store, "--fold", "0", "--epochs", "1", "--val-folds", "1")
    assert result.exit_code == 0, result.output
    assert "fold-0: best epoch 1 of 1, validation UA" in result.output
    run_dir = store[1] / "runs" / "fold-0"
    assert (run_dir / "model.pt").exists() and len(_metrics(run_dir)) == 1
    again = _cli(store, "--fold", "0", "--epochs", "1", "--val-folds", "1")
    assert again.exit_code == 0, again.output
    assert "(cached)" in again.output


def test_cli_train_all_folds(store):
    result = _cli(store, "--fold", "all", "--epochs", "1")
    assert result.exit_code == 0, result.output
    for fold in range(N_FOLDS):
        assert f"fold-{fold}: last epoch 1 kept (no validation actors)" in result.output
        info = read_json(store[1] / "runs" / f"fold-{fold}" / "result.json")
        assert info["fold"] == fold
        assert info["actors"]["test"] == [f"ravdess:{a:02d}" for a in range(1, N_ACTORS + 1)
                                          if fold_of(a) == fold]


def test_cli_reports_a_bad_fold_in_one_line(store):
    result = _cli(store, "--fold", "7", "--epochs", "1")
    assert result.exit_code == 2  # a usage error, caught before any work
    assert "Invalid value for --fold: 7: the index has folds 0 to 3" in result.output
    assert "Traceback" not in result.output
    result = _cli(store, "--fold", "seven")
    assert result.exit_code == 2
    assert "'seven': give a fold number, 'all', or 'random'" in result.output


def test_cli_reports_stale_features_in_one_line(store):
    _change_one_clip(store[0])
    result = _cli(store, "--fold", "0", "--epochs", "1")
    assert result.exit_code == 1
    assert "rerun 'ser extract'" in result.output
    assert "Traceback" not in result.output


def test_the_gpu_path_runs_on_cpu_with_resident_data_and_bf16_autocast(store, monkeypatch):
    """What CUDA runs (every row moved to the device once; bf16 autocast when asked for),
    exercised here on CPU: it trains, is keyed apart from the float32 run, and autocast
    is really on with bf16 and off without."""
    from pipeline.network import model as model_module

    seen = []

    class Recording(model_module.EmotionCNN):
        def forward(self, features, *, normalised=False):
            logits = super().forward(features, normalised=normalised)
            if self.training:
                seen.append(logits.dtype)
            return logits

    monkeypatch.setattr(model_module, "EmotionCNN", Recording)
    config = replace(SMALL, epochs=2, val_folds=0)
    plain = _run(store, config, fold=0)
    steps = len(seen)
    resident = _run(store, config, fold=0, accelerated=True)
    assert not resident.cached and set(seen) == {torch.float32}  # bf16 off by default
    gpu_path = _run(store, config, fold=0, accelerated=True, bf16=True)
    assert not gpu_path.cached  # another key: bf16 changes the arithmetic
    assert len(seen) == 3 * steps
    assert set(seen[2 * steps:]) == {torch.bfloat16}  # autocast really on
    record = _metrics(gpu_path.run_dir)[-1]
    assert np.isfinite(record["train_loss"]) and record["epoch"] == 2
    assert plain.run_dir == gpu_path.run_dir and read_json(
        gpu_path.run_dir / "result.json")["epochs_run"] == 2


def test_the_actor_adversary_changes_training_but_not_the_saved_model(store, tmp_path):
    plain = _run(store, replace(SMALL, epochs=2), fold=0)
    adversarial = _run(write_store(tmp_path / "adv"), replace(SMALL, epochs=2, adversary=1.0),
                       fold=0)
    a, b = _weights(plain.run_dir), _weights(adversarial.run_dir)
    assert a.keys() == b.keys()  # no actor head in model.pt: predict is unchanged
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_each_epoch_is_reported_as_k_of_n_and_to_the_progress_callback(store, caplog):
    calls = []
    with caplog.at_level("INFO", logger="pipeline"):
        _run(store, replace(SMALL, epochs=3), fold=0,
             on_epoch=lambda epoch, first: calls.append((epoch, first)))
    assert calls == [(1, 1), (2, 1), (3, 1)]
    assert [m.split("  ")[0] for m in caplog.messages if " epoch " in m] == [
        "fold-0 epoch 1/3", "fold-0 epoch 2/3", "fold-0 epoch 3/3"]
