"""The ``predict`` stage: score audio files with a bundle.

Per file (in joblib workers): read (any rate, mono or stereo, WAV / FLAC / OGG / MP3),
resample, then

- a recording whose speech (after trimming silence) fits in 1.5 windows is scored as one
  window, computed exactly as ``extract`` computes a clean copy (shorter speech is padded,
  and the result says so);
- a longer one is cut into windows with 50 % overlap; windows more than 30 dB quieter
  than the loudest are dropped (pauses), the rest are scored in batches and their
  probabilities averaged, and each window's result can be reported (a timeline).

Each window is scored in every test-time view the bundle records (``pipeline.views``:
the window itself and mild pitch, shift and speed variants), probabilities averaged.

A file that cannot be scored gets a result with the reason in ``error``; a batch never
stops on one bad file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.audio import load_mono
from pipeline.errors import AudioError, PipelineError
from pipeline.augment import AugmentParams
from pipeline.features import FeatureConfig, speech_bounds
from pipeline.views import CLEAN, window_views

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")
LONG_FACTOR = 1.5
QUIET_WINDOW_DB = 30.0
# Model inputs per forward pass. Small batches stay in the CPU caches: on the 2-core
# development machine 64 at a time ran 2-3x faster than 256 or more at once.
FORWARD_BATCH = 64


@dataclass
class FileFeatures:
    """What a worker returns: windows ``(n, views, 2, n_mels, n_frames)`` float32 and
    their start times in seconds, or an error."""

    path: str
    windows: np.ndarray | None = None
    starts: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class FileResult:
    path: str
    emotion: str = ""
    confidence: float = float("nan")
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str = ""
    notes: list[str] = field(default_factory=list)
    windows: list[dict] = field(default_factory=list)  # per window: start, end, emotion, probs


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, and audio files found recursively under folders, sorted."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*")
                            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(item)  # a missing file gets its error row
    return files


def file_windows(path: Path, config: FeatureConfig,
                 views: tuple[AugmentParams, ...] = CLEAN) -> FileFeatures:
    """Worker: the feature windows of one file, each in every view (see module docstring)."""
    try:
        y = load_mono(path, sample_rate=config.sample_rate)
    except AudioError as exc:
        return FileFeatures(str(path), error=str(exc).removeprefix(f"{path}: "))
    except Exception as exc:  # a batch must never stop on one file
        return FileFeatures(str(path), error=f"{type(exc).__name__}: {exc}")
    offset, end = speech_bounds(y, config)
    speech = y[offset:end]
    size = config.window_samples
    if speech.size <= LONG_FACTOR * size:
        notes = []
        if speech.size < size:
            notes.append(f"padded: {speech.size / config.sample_rate:.2f} s of speech in a "
                         f"{config.window_seconds:.2f} s window")
        start = max(0.0, (offset + (speech.size - size) / 2) / config.sample_rate)
        return FileFeatures(str(path), window_views(speech, config, views)[None],
                            [round(start, 3)], notes)
    hop = size // 2
    starts = list(range(0, speech.size - size + 1, hop))
    if starts[-1] + size < speech.size:
        starts.append(speech.size - size)
    chunks = [speech[s:s + size] for s in starts]
    loudness = np.array([np.sqrt(np.mean(np.square(c, dtype=np.float64))) for c in chunks])
    keep = [i for i, rms in enumerate(loudness) if rms >= loudness.max() * 10 ** (-QUIET_WINDOW_DB / 20)]
    windows = np.stack([window_views(chunks[i], config, views) for i in keep])
    notes = [f"{len(keep)} windows of {config.window_seconds:g} s over "
             f"{speech.size / config.sample_rate:.1f} s of speech"
             + (f" ({len(chunks) - len(keep)} quiet windows skipped)" if len(keep) < len(chunks) else "")]
    return FileFeatures(str(path), windows,
                        [round((offset + starts[i]) / config.sample_rate, 3) for i in keep], notes)


def _featurize(paths: list[Path], config: FeatureConfig, views: tuple[AugmentParams, ...], *,
               jobs: int, progress):
    """Yield ``FileFeatures`` in input order, computed by ``jobs`` processes."""
    if jobs == 1 or len(paths) < 8:
        for path in paths:
            yield file_windows(path, config, views)
            progress.update(1)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=1):
        runner = Parallel(n_jobs=jobs, return_as="generator", batch_size=8)
        for item in runner(delayed(file_windows)(path, config, views) for path in paths):
            progress.update(1)
            yield item


def predict_files(inputs: list[str | Path], bundle, *, jobs: int = 1, tta: bool = True,
                  batch_windows: int = 256) -> list[FileResult]:
    """Score every file with ``bundle`` (its model, feature config, labels and test-time
    views; ``tta=False``: the clean window alone); results in input order, one per file."""
    import torch

    from pipeline.model import for_inference
    from pipeline.progress import bar

    paths = expand_inputs(inputs)
    if not paths:
        raise PipelineError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in "
                            f"{', '.join(map(str, inputs))}")
    labels = bundle.labels
    model = for_inference(bundle.model)
    results: list[FileResult] = []
    pending: list[tuple[FileFeatures, FileResult]] = []

    def flush():
        if not pending:
            return
        stacked = torch.from_numpy(np.concatenate([f.windows for f, _ in pending]))
        n_windows, n_views = stacked.shape[:2]
        with torch.no_grad():
            logits = torch.cat([model(part)
                                for part in stacked.flatten(0, 1).split(FORWARD_BATCH)])
            probs = torch.softmax(logits, dim=1).numpy()
        probs = probs.reshape(n_windows, n_views, -1).mean(axis=1)  # average the views
        position = 0
        for feats, result in pending:
            window_probs = probs[position:position + len(feats.windows)]
            position += len(feats.windows)
            mean = window_probs.mean(axis=0)
            best = int(mean.argmax())
            result.emotion, result.confidence = labels[best], float(mean[best])
            result.probabilities = {label: float(p) for label, p in zip(labels, mean)}
            window_seconds = bundle.feature_config.window_seconds
            result.windows = [{"start": s, "end": round(s + window_seconds, 3),
                               "emotion": labels[int(p.argmax())],
                               "confidence": float(p.max()),
                               "probabilities": {label: float(v) for label, v in zip(labels, p)}}
                              for s, p in zip(feats.starts, window_probs)]
        pending.clear()

    # the feature workers keep ``jobs`` cores busy and the model gets the rest, at least one
    # thread: two model threads beside two workers on two cores ran a batch 1.3x slower
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - jobs))
    with bar(total=len(paths), desc="predict", unit="file") as progress:
        views = bundle.views if tta else CLEAN
        for feats in _featurize(paths, bundle.feature_config, views, jobs=jobs,
                                progress=progress):
            result = FileResult(feats.path, error=feats.error, notes=feats.notes)
            results.append(result)
            if feats.windows is not None:
                pending.append((feats, result))
                queued = sum(f.windows.shape[0] * f.windows.shape[1] for f, _ in pending)
                if queued >= batch_windows:  # windows x views
                    flush()
        flush()
    return results


def result_rows(results: list[FileResult], labels: tuple[str, ...]) -> list[dict]:
    """The CSV contract: path, emotion, confidence, one column per emotion, error."""
    return [{"path": r.path, "emotion": r.emotion,
             "confidence": "" if r.error else f"{r.confidence:.6f}",
             **{label: "" if r.error else f"{r.probabilities[label]:.6f}" for label in labels},
             "error": r.error} for r in results]


def write_results(results: list[FileResult], out: Path, labels: tuple[str, ...], *,
                  windows: bool = False) -> None:
    """``.csv`` (the contract above) or ``.jsonl`` (also notes, and windows on request)."""
    import csv
    import io
    import json

    from pipeline.stages import write_text_atomic

    out = Path(out)
    if out.suffix.lower() == ".jsonl":
        lines = []
        for r in results:
            record = {"path": r.path, "emotion": r.emotion or None,
                      "confidence": None if r.error else r.confidence,
                      "probabilities": r.probabilities or None, "error": r.error, "notes": r.notes}
            if windows:
                record["windows"] = r.windows
            lines.append(json.dumps(record) + "\n")
        write_text_atomic(out, "".join(lines))
    elif out.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["path", "emotion", "confidence", *labels, "error"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(result_rows(results, labels))
        write_text_atomic(out, buffer.getvalue())
    else:
        raise PipelineError(f"--output {out}: use a .csv or .jsonl file name")


def format_single(result: FileResult, labels: tuple[str, ...], *, windows: bool = False) -> str:
    """The original tool's output: the verdict, then every emotion's probability."""
    if result.error:
        return f"{result.path}: error: {result.error}"
    lines = [f"Predicted emotion: {result.emotion} with {result.confidence:.2%} confidence"]
    lines += [f"  {label:<10} {result.probabilities[label]:7.2%}" for label in labels]
    lines += [f"  note: {note}" for note in result.notes]
    if windows:
        lines += [f"  {w['start']:7.2f}-{w['end']:7.2f} s  {w['emotion']:<10} {w['confidence']:.0%}"
                  for w in result.windows]
    return "\n".join(lines)


def format_table(results: list[FileResult]) -> str:
    width = max(len(r.path) for r in results)
    lines = [f"{'path':<{width}}  {'emotion':<10} {'confidence':>10}  error"]
    for r in results:
        confidence = "" if r.error else f"{r.confidence:.2%}"
        lines.append(f"{r.path:<{width}}  {r.emotion:<10} {confidence:>10}  {r.error}")
    return "\n".join(lines)
