"""The ``predict`` stage: score audio files with a bundle.

Per file (in joblib workers): the front end (``pipeline.signal.frontend``: decode any rate, mono
or stereo, WAV / FLAC / OGG / MP3; channel mix, DC removal, Silero VAD, loudness per
segment), then every speech segment is scored in one window, computed exactly as
``extract`` computes a clean copy (a recording that is one segment, as every RAVDESS
clip is, gives exactly its stored clean copy). Each window is scored in every test-time
view the bundle records (``pipeline.signal.views``: the window itself and mild pitch, shift
and speed variants), probabilities averaged. The file's verdict weights its segments by
their seconds of speech, and each segment's timeline record can be reported
(``pipeline.inference.results``).

A file that cannot be scored (unreadable, silent, no speech detected) gets a result with
the reason in ``error``; a batch never stops on one bad file.

One way to score, whatever holds the audio (as audinterface's ``Process`` gives signal,
file, files and folder over one segmenting rule): ``score_samples`` (an array),
``score_bytes`` (file bytes: standard input, an upload), ``iter_predictions`` /
``predict_files`` (files and folders; long ones streamed, ``score_long_file``) all end in
the same segments, windows, views and verdict, and give a ``FileResult`` whose record
(``results.file_record``) every output writes; ``api``, ``serve`` and ``sink`` only call
these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.core.errors import AudioError, PipelineError
from pipeline.core.progress import log
from pipeline.corpus.scan import audio_suffixes, scan
from pipeline.inference.results import FileResult, timeline_record, verdict
from pipeline.signal import frontend
from pipeline.signal.audio import audio_sha256, decode_opened, open_file
from pipeline.signal.augment import AugmentParams
from pipeline.signal.features import FeatureConfig
from pipeline.signal.views import CLEAN, window_views

@dataclass
class FileFeatures:
    """What a worker returns: one window per segment, ``(n_segments, views, 2, n_mels,
    num_frames)`` float32, and each segment's ``(start_s, end_s, speech_s)``; or an error."""

    path: str
    windows: np.ndarray | None = None
    segments: list[tuple[float, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    audio_sha256: str = ""
    streamed: bool = False  # too long to decode whole: the caller streams it (stream.is_long)


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, and audio files found recursively under folders (``pipeline.corpus.scan``:
    the formats libsndfile reads, hidden files skipped); the skipped files are counted in
    one warning line."""
    found = scan(inputs)
    if found.skipped:  # a warning, so that -q still says what was left out
        log.warning("%s", found.summary())
    return found.files


def file_windows(path: Path, config: FeatureConfig,
                 views: tuple[AugmentParams, ...] = CLEAN) -> FileFeatures:
    """Worker: the feature window of every speech segment of one file, each in every view
    (see module docstring); a file that cannot be scored gets its reason in ``error``, one
    too long to decode whole comes back ``streamed``. The file is opened and its header
    read once."""
    from pipeline.signal.stream import is_long

    try:
        with open_file(path) as opened:
            if is_long(opened):
                return FileFeatures(str(path), streamed=True)
            samples, file_rate = decode_opened(opened, name=str(path))
        return samples_windows(samples, file_rate, config, views, name=str(path),
                               check_header=False)
    except AudioError as exc:
        return FileFeatures(str(path), error=str(exc).removeprefix(f"{path}: "))
    except Exception as exc:  # a batch must never stop on one file
        return FileFeatures(str(path), error=f"{type(exc).__name__}: {exc} (a bug: please "
                                              "report it with this file)")


def samples_windows(samples: np.ndarray, file_rate: int, config: FeatureConfig,
                    views: tuple[AugmentParams, ...], *, name: str,
                    check_header: bool = True) -> FileFeatures:
    """The windows of decoded ``samples`` (float32 ``(num_samples, channels)`` at
    ``file_rate``), as ``file_windows`` computes them; raises ``AudioError`` (a silent
    recording, ``NoSpeechError``) naming ``name``."""
    digest = audio_sha256(samples, file_rate)
    speech = frontend.from_samples(samples, file_rate=file_rate, features=config, name=name,
                                   check_header=check_header)
    windows = np.stack([window_views(speech.segment_audio(s), config, views)
                        for s in speech.segments])
    rate = config.sample_rate
    bounds = [(s.start / rate, s.end / rate, s.speech_samples / rate) for s in speech.segments]
    count = len(speech.segments)
    note = f"{speech.speech_seconds:.2f} s of speech" + (f" in {count} segments" if count > 1 else "")
    return FileFeatures(name, windows, bounds, [note], audio_sha256=digest)


def score_samples(samples: np.ndarray, file_rate: int, scorer, *, name: str,
                  tta: bool = True) -> FileResult:
    """One recording already decoded (an upload, an array in memory) scored as
    ``predict`` scores a file. Raises ``AudioError`` (``NoSpeechError`` among them)
    naming ``name`` when it cannot be scored."""
    feats = samples_windows(samples, file_rate, scorer.feature_config,
                            scorer.views if tta else CLEAN, name=name)
    result = FileResult(name, notes=feats.notes, audio_sha256=feats.audio_sha256)
    _score_pending(scorer, [(feats, result)])
    return result


def _featurize(paths: list[Path], config: FeatureConfig, views: tuple[AugmentParams, ...], *,
               jobs: int, scheduler: str | None, progress):
    """Yield ``FileFeatures`` in input order, computed here, by ``jobs`` local processes
    or on the Dask cluster at ``scheduler`` (``pipeline.core.engines``)."""
    from pipeline.core.engines import WorkerKilled, bind, run

    task = bind(file_windows, config=config, views=views)
    if scheduler:  # workers may start elsewhere: absolute paths, reported as given
        items = [Path(p).resolve() for p in paths]
    else:
        items = paths
        jobs = 1 if len(paths) < 8 else jobs
    done = 0
    try:
        for path, feats in zip(paths, run(task, items, jobs=jobs, scheduler=scheduler,
                                          batch_size=8, shared_path=Path(items[0]).parent)):
            feats.path = str(path)
            if progress is not None:
                progress.update(1)
            done += 1
            yield feats
    except WorkerKilled as exc:
        # most likely killed for memory: one of the next batch's files decodes to more
        # than this machine holds
        raise PipelineError(f"{exc} while reading one of "
                            f"{', '.join(map(str, paths[done:done + 8 * max(jobs, 1)]))}: score "
                            "long recordings on their own with --jobs 1, or split them") from None


def _score_pending(scorer, pending: list) -> None:
    """Fill each pending ``FileResult`` from its windows, all files in one batch; if the
    batch fails, file by file, so a failure becomes that file's error row alone."""
    if not pending:
        return
    try:
        probs = scorer.probabilities(np.concatenate([f.windows for f, _ in pending]))
        per_file = np.split(probs, np.cumsum([len(f.windows) for f, _ in pending])[:-1])
    except Exception:  # noqa: BLE001  (retried per file just below)
        per_file = []
        for feats, result in pending:
            try:
                per_file.append(scorer.probabilities(feats.windows))
            except Exception as exc:  # noqa: BLE001  (a batch never stops on one file)
                per_file.append(None)
                result.error = f"scoring failed: {type(exc).__name__}: {exc} (a bug: please " \
                               "report it with this file)"
    labels = scorer.labels
    for (feats, result), segment_probs in zip(pending, per_file):
        if segment_probs is None:
            continue
        if not np.all(np.isfinite(segment_probs)):
            result.error = ("scoring gave non-finite probabilities (a bug: please report it "
                            "with this file)")
            continue
        _decide(result, verdict(segment_probs, [speech_s for _, _, speech_s in feats.segments]),
                scorer)
        result.segments = [timeline_record(result.path, start_s=start, end_s=end,
                                           speech_s=speech_s, probabilities=p, labels=labels)
                           for (start, end, speech_s), p in zip(feats.segments, segment_probs)]


def _decide(result: FileResult, mean: np.ndarray, scorer) -> None:
    """Set ``result``'s verdict from the file's probabilities ``mean`` ``(classes,)``: its
    emotion, confidence, probabilities and whether it is weak (``Scorer.weak_below``)."""
    best = int(mean.argmax())
    result.emotion, result.confidence = scorer.labels[best], float(mean[best])
    result.weak = result.confidence < scorer.weak_below
    result.probabilities = {label: float(p) for label, p in zip(scorer.labels, mean)}


def is_stream(item: str | Path) -> bool:
    """``-`` (standard input) or a pipe or device such as ``/dev/stdin``: read once, in
    this process (a worker process would not see it)."""
    import stat

    if str(item) == "-":
        return True
    try:
        mode = Path(item).stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def score_bytes(data: bytes, scorer, *, name: str, tta: bool = True) -> FileResult:
    """A recording held in memory as file bytes (standard input, an upload) scored as
    ``predict`` scores a file; a recording that cannot be scored gets its reason in
    ``error``, as a file's does."""
    from pipeline.signal.audio import read_bytes

    try:
        samples, rate = read_bytes(data, name=name)
        return score_samples(samples, rate, scorer, name=name, tta=tta)
    except AudioError as exc:
        return FileResult(name, error=str(exc).removeprefix(f"{name}: "))
    except Exception as exc:  # noqa: BLE001  (as file_windows: one line, never a traceback)
        return FileResult(name, error=f"{type(exc).__name__}: {exc} (a bug: please report it "
                                      "with this recording)")


def predict_files(inputs: list[str | Path], scorer, *, jobs: int = 1, tta: bool = True,
                  batch_windows: int = 256, scheduler: str | None = None) -> list[FileResult]:
    """Score every file with ``scorer`` (``pipeline.inference.scorer.Scorer``: its model, feature
    config, labels and test-time views; ``tta=False``: the clean window alone); results
    in input order, one per file (``iter_predictions``). Raises ``PipelineError`` when
    ``inputs`` hold no audio."""
    from pipeline.core.progress import bar

    paths = audio_files(inputs)
    with bar(total=len(paths), desc="predict", unit="file") as progress:
        return list(iter_predictions(paths, scorer, jobs=jobs, tta=tta, scheduler=scheduler,
                                     batch_windows=batch_windows, progress=progress))


def audio_files(inputs: list[str | Path]) -> list[Path]:
    """``expand_inputs``, refusing inputs that hold no audio with ``PipelineError``."""
    paths = expand_inputs(inputs)
    if not paths:
        raise PipelineError(f"no audio files in {', '.join(map(str, inputs))} (formats: "
                            f"{', '.join(sorted(audio_suffixes()))}; hidden files are skipped)")
    return paths


def iter_predictions(paths: list[Path], scorer, *, jobs: int = 1, tta: bool = True,
                     batch_windows: int = 256, scheduler: str | None = None, progress=None,
                     on_segment=None) -> Iterator[FileResult]:
    """Yield each file's ``FileResult`` in input order as soon as it is scored. Files
    longer than ``stream.STREAM_SECONDS`` are decoded and scored block by block here, in
    bounded memory, each timeline record passed to ``on_segment`` as it is scored; the
    others get their features from ``jobs`` local processes or the Dask cluster at
    ``scheduler``. The model always runs here, with torch's threads as the caller set
    them (the CLI sets them from ``jobs``)."""
    views = scorer.views if tta else CLEAN
    yield from _score_files(list(paths), scorer, views, jobs=jobs, scheduler=scheduler,
                            batch_windows=batch_windows, progress=progress,
                            on_segment=on_segment)


def _score_files(paths: list[Path], scorer, views, *, jobs: int, scheduler: str | None,
                 batch_windows: int, progress, on_segment=None) -> Iterator[FileResult]:
    """Features in workers, the model here in batches of about ``batch_windows`` windows x
    views; a file the worker found too long is streamed here (``score_long_file``) once
    the files before it are out. Results yielded in order once scored."""
    waiting: list[FileResult] = []  # in order, not yet yielded
    pending: list[tuple[FileFeatures, FileResult]] = []
    for feats in _featurize(paths, scorer.feature_config, views, jobs=jobs,
                            scheduler=scheduler, progress=progress):
        if feats.streamed:
            _score_pending(scorer, pending)
            pending.clear()
            yield from waiting
            waiting.clear()
            yield score_long_file(feats.path, scorer, views=views, on_segment=on_segment)
            continue
        result = FileResult(feats.path, error=feats.error, notes=feats.notes,
                            audio_sha256=feats.audio_sha256)
        waiting.append(result)
        if feats.windows is not None:
            pending.append((feats, result))
        if sum(f.windows.shape[0] * f.windows.shape[1] for f, _ in pending) >= batch_windows \
                or not pending:
            _score_pending(scorer, pending)
            pending.clear()
            yield from waiting
            waiting.clear()
    _score_pending(scorer, pending)
    yield from waiting


def score_long_file(path: Path, scorer, *, views, on_segment=None) -> FileResult:
    """Score one long file block by block (``pipeline.signal.stream``), in bounded memory; each
    segment's timeline record goes to ``on_segment`` as soon as it is scored. The
    verdict weights the segments by their seconds of speech, as for any file."""
    from pipeline.signal import stream

    result, bounds, probabilities = FileResult(str(path)), [], []
    batch: list = []

    def score(batch: list) -> None:
        windows = np.stack([window_views(s.audio, scorer.feature_config, views) for s in batch])
        for segment, p in zip(batch, scorer.probabilities(windows)):
            record = timeline_record(str(path), start_s=segment.start_s, end_s=segment.end_s,
                                     speech_s=segment.speech_s, probabilities=p,
                                     labels=scorer.labels)
            result.segments.append(record)
            bounds.append(segment.speech_s)
            probabilities.append(p)
            if on_segment is not None:
                on_segment(record)
        batch.clear()

    try:
        for segment in stream.segments(Path(path), scorer.feature_config):
            batch.append(segment)
            if len(batch) * len(views) >= 64:
                score(batch)
        if batch:
            score(batch)
    except AudioError as exc:
        result.error = str(exc).removeprefix(f"{path}: ")
        return result
    _decide(result, verdict(np.array(probabilities), bounds), scorer)
    result.notes = [f"{sum(bounds):.2f} s of speech in {len(bounds)} segments (streamed in "
                    f"{stream.BLOCK_SECONDS:.0f} s blocks)"]
    return result
