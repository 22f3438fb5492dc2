"""The ``serve`` stage: an HTTP service (FastAPI under uvicorn) and the page at ``/``.

- ``POST /predict``: a multipart upload (field ``file``) -> JSON: the emotion, its
  confidence, the eight probabilities, the speech found (seconds, segments) and the
  timeline (one record per segment, ``pipeline.results``). ``?tta=false`` scores the
  window alone (what the page's live mode uses: 7x less work).
- ``GET /health``; ``GET /model``: the bundle's provenance and figures, what they were
  measured on, and the licence of the weights.
- ``GET /``: the page (``pipeline/web/index.html``): upload, record, live mode.

Uploads are read into memory, never written to disk nor logged; one larger than
``Limits.max_mb`` is refused while it streams in (413), one longer than
``Limits.max_seconds`` before it is decoded (413). Every bad upload gets a 4xx with the
message the CLI gives: not audio (415), empty or no ``file`` field (400), no speech or
silent (422). The scorer is loaded once per worker process, at start-up; requests are
scored in a worker thread, never on the event loop. The service binds to 127.0.0.1
unless told otherwise (browsers allow the microphone only on localhost or over HTTPS).
"""

import dataclasses  # no "from __future__ import annotations": FastAPI reads the handlers'
# annotations at run time, and Request is imported inside create_app
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import (AudioError, NoSpeechError, PipelineError, SilentError,
                             TooLongError, UnreadableAudioError)

PAGE = Path(__file__).parent / "web" / "index.html"
BUNDLE_ENV = "SER_SERVE_BUNDLE"  # how the worker processes learn which bundle to load
LICENCE = ("The weights were trained on RAVDESS (CC BY-NC-SA 4.0): research and "
           "non-commercial use only.")
INSTALL = "pip install 'ser-pipeline[serve]'"


@dataclass(frozen=True)
class Limits:
    max_mb: float = 20.0  # upload size
    max_seconds: float = 600.0  # recording length


class UploadRefused(PipelineError):
    """A bad upload; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def status_of(error: AudioError) -> int:
    """The HTTP status of an upload the front end refused."""
    if isinstance(error, UnreadableAudioError):
        return 415
    if isinstance(error, TooLongError):
        return 413
    return 422 if isinstance(error, (NoSpeechError, SilentError)) else 400


def create_app(bundle: Path, limits: Limits = Limits()):
    """The FastAPI application serving ``bundle``; the scorer is loaded at start-up.
    Raises ``PipelineError`` with the install hint when FastAPI is missing."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse
        from starlette.concurrency import run_in_threadpool
    except ImportError:
        raise PipelineError(f"serve needs FastAPI and uvicorn: {INSTALL}") from None
    import contextlib

    from pipeline.bundle import load

    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["scorer"] = load(bundle)  # once per worker process
        yield

    app = FastAPI(title="Speech emotion recognition", lifespan=lifespan)

    @app.exception_handler(UploadRefused)
    async def refused(request, error: UploadRefused):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model_loaded": "scorer" in state}

    @app.get("/model")
    async def model():
        return describe(state["scorer"])

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    @app.post("/predict")
    async def predict(request: Request, tta: bool = True):
        name, data = await read_upload(request, limits)
        return await run_in_threadpool(score_upload, state["scorer"], data, name=name,
                                       limits=limits, tta=tta)

    return app


async def read_upload(request, limits: Limits) -> tuple[str, bytes]:
    """``(file name, bytes)`` of the multipart field ``file``, kept in memory while it
    streams in. Raises ``UploadRefused``: 400 without a ``file`` field or for an empty
    one, 413 past ``limits.max_mb``."""
    from python_multipart import FormParser
    from python_multipart.multipart import parse_options_header

    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused("send the recording as a multipart/form-data upload in the "
                            "field 'file'", 400)
    limit = int(limits.max_mb * 1e6)
    files: list = []
    parser = FormParser("multipart/form-data", None, files.append, boundary=options[b"boundary"],
                        config={"MAX_MEMORY_FILE_SIZE": limit + 1})  # never spooled to disk
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + 65536:  # the file, and room for the form's own headers
            raise UploadRefused(f"the upload is larger than the {limits.max_mb:g} MB limit", 413)
        parser.write(chunk)
    parser.finalize()
    upload = next((f for f in files if f.field_name == b"file"), None)
    if upload is None:
        raise UploadRefused("no 'file' field in the upload: send the recording as 'file'", 400)
    upload.file_object.seek(0)
    data = upload.file_object.read()
    name = (upload.file_name or b"upload").decode("utf-8", "replace")
    if len(data) > limit:
        raise UploadRefused(f"{name}: larger than the {limits.max_mb:g} MB limit", 413)
    return os.path.basename(name) or "upload", data


def score_upload(scorer, data: bytes, *, name: str, limits: Limits, tta: bool = True) -> dict:
    """The JSON answer for one uploaded recording (see module docstring); raises
    ``UploadRefused`` with the CLI's message and the status of ``status_of``."""
    from pipeline.api import record_of
    from pipeline.audio import read_bytes
    from pipeline.predict import score_samples

    try:
        samples, rate = read_bytes(data, name=name, max_seconds=limits.max_seconds)
        result = score_samples(samples, rate, scorer, name=name, tta=tta)
    except AudioError as error:
        raise UploadRefused(str(error), status_of(error)) from None
    if result.error:  # scoring itself failed: a bug, reported as the CLI reports it
        raise UploadRefused(f"{name}: {result.error}", 500)
    return record_of(result, scorer, tta=tta)


def describe(scorer) -> dict:
    """``GET /model``: labels, members, views, provenance with its figures, the licence."""
    metadata = scorer.metadata
    provenance = metadata.get("provenance", {})
    test = provenance.get("test") or {}
    ua = test.get("ua", {})
    statement = (f"Cross-validated UA {ua['mean']:.1%} ± {ua['std']:.1%} on actors the model "
                 "never heard (5-fold, RAVDESS); expect less on other speakers, languages and "
                 "microphones." if isinstance(ua, dict) and "mean" in ua else
                 "No test figures were stamped into this model.")
    return {"labels": list(scorer.labels), "members": metadata.get("members", 1),
            "test_views": metadata.get("test_views"), "accuracy": statement,
            "licence": LICENCE, "bundle": scorer.path.name if scorer.path else None,
            "identity": scorer.identity,
            "provenance": provenance}


def serve(bundle: Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          limits: Limits = Limits()) -> None:
    """Run the service under uvicorn until interrupted; ``workers`` processes, each
    loading the scorer once. Raises ``PipelineError`` with the install hint when
    uvicorn or FastAPI is missing, ``BundleError`` for a bundle that does not load."""
    try:
        import uvicorn
    except ImportError:
        raise PipelineError(f"serve needs FastAPI and uvicorn: {INSTALL}") from None
    from pipeline.bundle import load

    load(bundle)  # a bad bundle is one line here, not a traceback in each worker
    os.environ[BUNDLE_ENV] = str(Path(bundle).resolve())
    os.environ[BUNDLE_ENV + "_LIMITS"] = f"{limits.max_mb},{limits.max_seconds}"
    uvicorn.run("pipeline.serve:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="warning")


def app_from_environment():
    """The app a uvicorn worker process builds (``serve`` passes the bundle and limits
    through the environment, which worker processes inherit)."""
    max_mb, max_seconds = os.environ.get(BUNDLE_ENV + "_LIMITS", "20,600").split(",")
    limits = dataclasses.replace(Limits(), max_mb=float(max_mb), max_seconds=float(max_seconds))
    return create_app(Path(os.environ[BUNDLE_ENV]), limits)
