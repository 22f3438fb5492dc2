"""The ``serve`` stage: an HTTP service (FastAPI under uvicorn) and the page at ``/``.

- ``POST /predict``: a multipart upload (field ``file``) -> JSON: the emotion, its
  confidence, the eight probabilities, the speech found (seconds, segments) and the
  timeline (one record per segment, ``pipeline.inference.results``). ``?tta=false`` scores the
  window alone (what the page's live mode uses: 7x less work).
- ``GET /health``; ``GET /model``: the bundle's provenance and figures, what they were
  measured on, and the licence of the weights.
- ``GET /``: the page (``pipeline/inference/web/index.html``): upload, record, live mode.

Uploads are read into memory, never written to disk nor logged; one larger than
``Limits.max_mb`` is refused while it streams in (413), one longer than
``Limits.max_seconds`` before it is decoded (413). Every bad upload gets a 4xx with the
message the CLI gives: not audio (415), empty or no ``file`` field (400), no speech or
silent (422); a body that is not well-formed multipart (no or an empty boundary, a part
without a name, a broken header line, cut off before its end) 400, part headers past
python-multipart's caps or a file name over 1 KB 431: never a 500. The scorer is loaded
once per worker process, at start-up; requests are scored in a worker thread, never on
the event loop. The service binds to 127.0.0.1
unless told otherwise (browsers allow the microphone only on localhost or over HTTPS).
"""

# no "from __future__ import annotations": FastAPI reads the handlers' annotations at run
# time, and Request is imported inside create_app
import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import (
    AudioError,
    NoSpeechError,
    PipelineError,
    SilentError,
    TooLongError,
    UnreadableAudioError,
)

PAGE = Path(__file__).parent / "web" / "index.html"
WORKER_SETTINGS = "SER_SERVE_WORKER"  # how uvicorn's worker processes get their settings
INSTALL = "pip install 'ser-pipeline[serve]'"
WAV_BYTES_PER_SECOND = 48_000 * 2 * 2  # 16-bit stereo at 48 kHz: the largest ordinary WAV
HEADROOM_MB = 1.0  # the WAV header, metadata chunks and the form's own part headers
HOW_TO_SEND = ("send the recording as multipart/form-data in the field 'file' "
               "(curl -F file=@clip.wav http://HOST:PORT/predict)")
MAX_PART_HEADER_BYTES = 4096 + 128  # one header line of a part (python-multipart's default)
MAX_PART_HEADERS = 8  # header lines in one part
MAX_NAME_BYTES = 1024  # an uploaded file's name


def mb_for(seconds: float) -> float:
    """The upload size (MB, 10**6 bytes) that ``seconds`` of 16-bit stereo 48 kHz WAV
    takes, plus ``HEADROOM_MB``: 116.2 MB for 600 s."""
    return seconds * WAV_BYTES_PER_SECOND / 1e6 + HEADROOM_MB


@dataclass(frozen=True)
class Limits:
    """What one upload may be: ``max_seconds`` of recording (413 before it is decoded)
    and ``max_mb`` MB (10**6 bytes; 413 while it streams in). The two agree: by default
    ``max_mb = mb_for(max_seconds) = max_seconds * 0.192 + 1`` (116.2 MB for 600 s), so
    no 16-bit stereo 48 kHz WAV under the seconds limit is refused for its size; a
    ``max_mb`` given explicitly is kept as given."""

    max_seconds: float = 600.0  # recording length
    max_mb: float | None = None  # upload size; None: mb_for(max_seconds)

    def __post_init__(self):
        if self.max_mb is None:
            object.__setattr__(self, "max_mb", mb_for(self.max_seconds))


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

    from pipeline.inference.bundle import load

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
    streams in. Raises ``UploadRefused``: 400 for a body that is not well-formed
    multipart/form-data (every python-multipart error, caught as its base class
    ``FormParserError``), without a ``file`` field or for an empty one; 413 past
    ``limits.max_mb``; 431 for part headers past ``MAX_PART_HEADER_BYTES`` per line or
    ``MAX_PART_HEADERS`` lines, or a file name over ``MAX_NAME_BYTES``."""
    from python_multipart.exceptions import FormParserError
    from starlette.requests import ClientDisconnect

    boundary = boundary_of(request.headers.get("content-type", ""))
    limit = int(limits.max_mb * 1e6)
    parts: list = []  # Field and File objects, in the order they end
    ended: list = []  # the closing boundary was seen
    try:
        parser = _form_parser(boundary, parts, ended)
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + 65536:  # the file, and room for the form's own headers
                raise UploadRefused(f"the upload is larger than the {limits.max_mb:g} MB "
                                    "limit", 413)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        raise malformed(error) from None
    except ClientDisconnect:
        raise UploadRefused("the upload was cut off by the client: send it again", 400) from None
    return file_of(parts, ended=bool(ended), limits=limits)


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a request's Content-Type header; raises
    ``UploadRefused`` (400) when it is not multipart/form-data or has no boundary."""
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused(f"no multipart/form-data boundary in the Content-Type: "
                            f"{HOW_TO_SEND}", 400)
    if not options[b"boundary"]:
        raise UploadRefused(f"the multipart boundary in the Content-Type is empty: "
                            f"{HOW_TO_SEND}", 400)
    return options[b"boundary"]


def _form_parser(boundary: bytes, parts: list, ended: list):
    from python_multipart import FormParser

    return FormParser("multipart/form-data", parts.append, parts.append,
                      on_end=lambda: ended.append(True), boundary=boundary,
                      config={"MAX_MEMORY_FILE_SIZE": float("inf"),  # never spooled to disk:
                              # the stream is capped in read_upload
                              "MAX_HEADER_SIZE": MAX_PART_HEADER_BYTES,
                              "MAX_HEADER_COUNT": MAX_PART_HEADERS,
                              "UPLOAD_ERROR_ON_BAD_CTE": True})


def malformed(error: Exception) -> UploadRefused:
    """The refusal of a body python-multipart could not parse: 431 for its header
    caps, 400 otherwise, its reason cut to one short line."""
    # python-multipart quotes header values as bytes reprs (b'...'): show them as text
    reason = re.sub(r"""\bb(['"])(.*?)\1""", r"\1\2\1", " ".join(str(error).split()))[:200]
    if "header size" in reason.lower() or "header count" in reason.lower():
        return UploadRefused(f"the upload's part headers are too long ({reason}; at most "
                             f"{MAX_PART_HEADERS} lines of {MAX_PART_HEADER_BYTES} bytes): "
                             f"send a shorter file name", 431)
    return UploadRefused(f"the upload is not well-formed multipart ({reason}): "
                         f"{HOW_TO_SEND}", 400)


def file_of(parts: list, *, ended: bool, limits: Limits) -> tuple[str, bytes]:
    """``(file name, bytes)`` of the first part named ``file`` (a file, or a plain field
    sent without a file name); raises ``UploadRefused`` as ``read_upload`` does."""
    upload = next((part for part in parts if part.field_name == b"file"), None)
    if upload is None and not ended:
        raise UploadRefused("the upload stops before its closing boundary (cut off, or not "
                            f"multipart): {HOW_TO_SEND}", 400)
    if upload is None:
        raise UploadRefused("no 'file' field in the upload: send the recording as 'file'", 400)
    raw_name = getattr(upload, "file_name", None) or b"upload"
    if len(raw_name) > MAX_NAME_BYTES:
        raise UploadRefused(f"the upload's file name is {len(raw_name)} bytes long, more than "
                            f"{MAX_NAME_BYTES}: send it under a shorter name", 431)
    name = "".join(c if c.isprintable() else "?"  # the name goes into one-line messages
                   for c in os.path.basename(raw_name.decode("utf-8", "replace"))) or "upload"
    if hasattr(upload, "file_object"):
        data = upload.file_object.getvalue()  # the BytesIO's own buffer, not a copy
    else:
        data = upload.value or b""
    for part in parts:  # the parser's closures form cycles: free the buffers now, not at
        part.close()  # the next garbage collection
    if len(data) > int(limits.max_mb * 1e6):
        raise UploadRefused(f"{name}: larger than the {limits.max_mb:g} MB limit", 413)
    return name, data


def score_upload(scorer, data: bytes, *, name: str, limits: Limits, tta: bool = True) -> dict:
    """The JSON answer for one uploaded recording (see module docstring); raises
    ``UploadRefused`` with the CLI's message and the status of ``status_of``."""
    from pipeline.inference.api import record_of
    from pipeline.inference.predict import score_samples
    from pipeline.signal.audio import read_bytes

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
    from pipeline.corpus.card import accuracy_statement, licence_notice

    metadata = scorer.metadata
    provenance = metadata.get("provenance", {})
    card = metadata.get("corpora")
    return {"labels": list(scorer.labels), "members": metadata.get("members", 1),
            "test_views": metadata.get("test_views"),
            "accuracy": accuracy_statement(card, provenance),
            "licence": licence_notice(card), "corpora": card,
            "bundle": scorer.path.name if scorer.path else None,
            "identity": scorer.identity,
            "provenance": provenance}


def serve(bundle: Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          limits: Limits = Limits()) -> None:
    """Run the service under uvicorn until interrupted; ``workers`` processes, each
    loading the scorer once. One worker serves the app built here; several build their
    own from ``WORKER_SETTINGS``, set for their start and put back after (uvicorn hands
    its worker processes nothing else). Raises ``PipelineError`` with the install hint
    when uvicorn or FastAPI is missing, ``BundleError`` for a bundle that does not load."""
    try:
        import uvicorn
    except ImportError:
        raise PipelineError(f"serve needs FastAPI and uvicorn: {INSTALL}") from None
    if workers == 1:
        uvicorn.run(create_app(Path(bundle), limits), host=host, port=port,
                    log_level="warning")
        return
    from pipeline.inference.bundle import load

    load(bundle)  # a bad bundle is one line here, not a traceback in each worker
    settings = json.dumps({"bundle": str(Path(bundle).resolve()), "max_mb": limits.max_mb,
                           "max_seconds": limits.max_seconds})
    with _environment(WORKER_SETTINGS, settings):
        uvicorn.run("pipeline.inference.serve:app_for_worker", factory=True, host=host,
                    port=port, workers=workers, log_level="warning")


@contextlib.contextmanager
def _environment(name: str, value: str):
    """``os.environ[name] = value`` inside the block, the previous state put back after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def app_for_worker():
    """The app a uvicorn worker process builds from the settings ``serve`` gave it
    (``WORKER_SETTINGS``: JSON with the bundle's path and the limits)."""
    settings = json.loads(os.environ[WORKER_SETTINGS])
    return create_app(Path(settings["bundle"]),
                      Limits(max_seconds=settings["max_seconds"], max_mb=settings["max_mb"]))
