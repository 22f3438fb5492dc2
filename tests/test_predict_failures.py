"""predict when one file's scoring fails: an exception, non-finite probabilities, or a
feature worker killed by the operating system. The other files keep their scores, and
nothing ends in a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.inference.predict import predict_files
from pipeline.signal.views import CLEAN
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)


def _with_nan_windows(monkeypatch, bad_name: str):
    """Make the feature worker hand over NaN windows for the file named ``bad_name``."""
    from pipeline.inference import predict as predict_module

    real = predict_module.file_windows

    def poisoned(path, config, views=CLEAN):
        feats = real(path, config, views)
        if Path(path).name == bad_name and feats.windows is not None:
            feats.windows = np.full_like(feats.windows, np.nan)
        return feats
    monkeypatch.setattr(predict_module, "file_windows", poisoned)


@pytest.mark.parametrize("failure", ["non-finite", "raises"])
def test_a_scoring_failure_is_that_files_error_row_alone(trained, monkeypatch, failure):
    from pipeline.inference import predict as predict_module

    files = [corpus_clip(trained, emotion=e, actor=a) for e, a in ((2, 1), (3, 2), (7, 4))]
    expected = predict_files(files, trained.bundle)
    _with_nan_windows(monkeypatch, files[1].name)
    if failure == "raises":
        from pipeline.inference.scorer import Scorer

        real = Scorer.probabilities

        def fragile(scorer, windows):
            if np.isnan(windows).any():
                raise RuntimeError("the model choked")
            return real(scorer, windows)
        monkeypatch.setattr(Scorer, "probabilities", fragile)
    results = predict_files(files, trained.bundle, jobs=1)
    message = {"non-finite": "scoring gave non-finite probabilities",
               "raises": "scoring failed: RuntimeError: the model choked"}[failure]
    assert message in results[1].error and results[1].emotion == ""
    for index in (0, 2):
        assert results[index].error == ""
        assert results[index].probabilities == pytest.approx(expected[index].probabilities, abs=1e-6)


def test_a_killed_feature_worker_is_one_line_naming_the_files(trained, monkeypatch, tmp_path):
    from pipeline.inference import predict as predict_module

    real = predict_module.file_windows

    def dying(path, config, views=CLEAN):  # shipped to the workers by value (cloudpickle)
        if Path(path).name.startswith("03-01-03"):
            os._exit(9)  # what the kernel's out-of-memory killer does to a worker
        return real(path, config, views)
    files = sorted(trained.corpus.rglob("*.wav"))[:12]
    assert any(p.name.startswith("03-01-03") for p in files)
    monkeypatch.setattr(predict_module, "file_windows", dying)
    with pytest.raises(PipelineError, match=r"a worker process was killed \(out of memory\?\) "
                                            r"while reading one of"):
        predict_files(files, trained.bundle, jobs=2)


def test_scoring_leaves_the_callers_torch_threads_alone(trained):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predict_files([corpus_clip(trained, emotion=2, actor=1)], trained.bundle, jobs=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
