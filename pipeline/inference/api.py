"""Scoring from Python: a NumPy array already in memory, or a file, gives the record the
command line and the service give.

    import soundfile
    from pipeline.inference import api

    model = api.load_model()                  # the shipped model; or a bundle's path
    samples, sample_rate = soundfile.read("clip.wav")
    record = api.predict_array(samples, sample_rate, model=model)
    record["emotion"], record["confidence"]   # "angry", 0.83

**The record** (``predict_array``, ``predict_file``; ``POST /predict`` of ``ser
serve`` answers the same) is the file record of every output
(``pipeline.inference.results``; README, "The scoring record"), ``path`` being the name
given, with its ``timeline`` of segment records, plus ``test_time_views`` (how many views
of each window were averaged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import AudioError
from pipeline.inference.results import FileResult, file_record


def load_model(bundle: str | Path = "shipped", *, artifacts_dir: Path = Path("artifacts")):
    """A loaded model (``scorer.Scorer``) to pass to ``predict_array`` many times:
    ``"shipped"`` (the default), ``"latest"`` (the newest export in ``artifacts_dir``) or
    a bundle's path (``.safetensors``, or ``.onnx`` with the ``onnx`` extra). Raises
    ``BundleError`` naming the file and the fix when it is missing or not a bundle."""
    from pipeline.inference.bundle import load
    from pipeline.inference.locate import resolve

    return load(resolve(bundle, artifacts_dir=artifacts_dir))


def predict_array(samples: np.ndarray, sample_rate: int, *, model=None, name: str = "array",
                  tta: bool = True) -> dict:
    """Score one recording held in memory as ``ser predict`` scores a file: the same
    front end (channel mix, resampling to the model's rate, speech detection, loudness
    normalisation), windows, model and test-time views (``tta``).

    ``samples``: float or integer PCM, ``(num_samples,)`` or ``(num_samples, channels)``
    at ``sample_rate`` Hz (any rate). ``model``: from ``load_model`` (default: the shipped
    model, loaded on each call). Returns the record (module docstring). Raises
    ``AudioError`` naming ``name`` when the audio cannot be scored: empty, silent, no
    speech found (``NoSpeechError``), not finite."""
    from pipeline.inference.predict import score_samples

    scorer = model if model is not None else load_model()
    result = score_samples(as_pcm(samples, sample_rate, name=name), int(sample_rate), scorer,
                           name=name, tta=tta)
    if result.error:
        raise AudioError(f"{name}: {result.error}")
    return record_of(result, scorer, tta=tta)


def predict_file(path: str | Path, *, model=None, tta: bool = True) -> dict:
    """Score one file (WAV, FLAC, OGG, MP3; any rate) exactly as ``ser predict`` does,
    through the same path (``predict.iter_predictions``: opened once, streamed block by
    block when it is long): the record of ``predict_array``, ``path`` being the file's
    path. Raises ``AudioError`` naming the file when it is unreadable or holds no speech."""
    from pipeline.inference.predict import iter_predictions

    scorer = model if model is not None else load_model()
    [result] = iter_predictions([Path(path)], scorer, tta=tta)
    if result.error:
        raise AudioError(f"{path}: {result.error}")
    return record_of(result, scorer, tta=tta)


def as_pcm(samples, sample_rate: int, *, name: str) -> np.ndarray:
    """``samples`` as the front end takes them: float32 ``(num_samples, channels)``;
    integer PCM scaled to [-1, 1) by its type's range. Raises ``AudioError`` naming
    ``name`` for another shape or type, a rate or channel count outside the limits, no
    samples, or NaN / infinite values."""
    from pipeline.signal.audio import check_header

    y = np.asarray(samples)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise AudioError(f"{name}: samples must be a 1-D or (num_samples, channels) array of "
                         f"numbers, not {y.dtype} {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        info = np.iinfo(y.dtype)  # signed: full scale is 2^(bits-1); unsigned: offset by it
        half = (info.max + 1) / (1 if info.min < 0 else 2)
        y = (y.astype(np.float64) - (half if info.min == 0 else 0)) / half
    if y.shape[0] <= 32 < y.shape[1]:  # librosa's (channels, num_samples) order
        raise AudioError(f"{name}: samples of shape {y.shape} look like (channels, "
                         "num_samples): pass (num_samples, channels), e.g. samples.T")
    check_header(int(sample_rate), y.shape[1], name=name)
    if y.shape[0] == 0:
        raise AudioError(f"{name}: no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return y.astype(np.float32, copy=False)


def record_of(result: FileResult, scorer, *, tta: bool) -> dict:
    """The file record (``results.file_record``, with its ``timeline``) of one scored
    ``FileResult``, and how many ``test_time_views`` scored it."""
    return {**file_record(result, bundle=scorer.identity, timeline=True),
            "test_time_views": len(scorer.views) if tta else 1}
