"""Hostile request bodies against ``POST /predict`` of pipeline/inference/serve.py: malformed
multipart (no or an empty boundary, a part without a name, a broken header line, a cut-off
body), oversized part headers, generated garbage; and the upload limits' agreement. The app
is driven in this process through ASGI (no network, no httpx), with a stand-in scorer:
every answer must be a 2xx or a 4xx with the one-line JSON message, never a 5xx."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("python_multipart", reason="the serve extra is not installed")

from pipeline.inference import serve  # noqa: E402

BOUNDARY = "a1b2c3"
SCORE_UPLOAD = serve.score_upload


def wav(seconds: float, *, rate: int = 16000, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((int(seconds * rate), channels), np.float32), rate,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def multipart(data: bytes, *, boundary: str = BOUNDARY,
              disposition: str = 'form-data; name="file"; filename="clip.wav"') -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data \
        + f"\r\n--{boundary}--\r\n".encode()


class StandIn:
    """What the app's lifespan loads instead of a bundle; scoring it is a test failure."""

    def __getattr__(self, name):
        raise AssertionError(f"the stand-in scorer was used ({name})")


def echo_upload(scorer, data: bytes, *, name: str, limits, tta: bool = True) -> dict:
    """Stands in for ``serve.score_upload``: the parser is under test, not the model."""
    return {"file": name, "bytes": len(data)}


class Client:
    """An app with a stand-in scorer, driven through ASGI on its own event loop; an
    exception escaping the app fails the test."""

    def __init__(self, limits):
        self.app = serve.create_app("stand-in.safetensors", limits)
        self.loop = asyncio.new_event_loop()
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.loop.run_until_complete(self.lifespan.__aenter__())

    def __call__(self, body: bytes, content_type: bytes | str | None, *,
                 chunk_size: int = 65536, query: bytes = b"") -> tuple[int, dict]:
        return self.loop.run_until_complete(asgi_post(self.app, body, content_type,
                                                      chunk_size, query))

    def close(self) -> None:
        self.loop.run_until_complete(self.lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def stand_in_load():
    import pipeline.inference.bundle

    saved = pipeline.inference.bundle.load
    pipeline.inference.bundle.load = lambda path: StandIn()
    yield
    pipeline.inference.bundle.load = saved


@pytest.fixture(scope="module")
def post(stand_in_load):
    """``post(body, content_type, chunk_size=...) -> (status, JSON body)`` against an app
    with a 0.5 MB / 2 s limit."""
    client = Client(serve.Limits(max_seconds=2, max_mb=0.5))
    yield client
    client.close()


async def asgi_post(app, body: bytes, content_type, chunk_size: int,
                    query: bytes) -> tuple[int, dict]:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type if isinstance(content_type, bytes)
                        else content_type.encode("latin-1")))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/predict", "raw_path": b"/predict",
             "query_string": query, "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    chunks = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)] or [b""]
    sent: list[dict] = []

    async def receive() -> dict:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.fixture
def echoing(monkeypatch):
    monkeypatch.setattr(serve, "score_upload", echo_upload)


CT = f"multipart/form-data; boundary={BOUNDARY}"
HUGE_NAME = "a" * 100_000 + ".wav"


@pytest.mark.parametrize("case, content_type, body, status, message", [
    ("no boundary", "multipart/form-data", multipart(b"RIFF"), 400,
     "no multipart/form-data boundary in the Content-Type"),
    ("not multipart", "audio/wav", b"RIFF", 400, "no multipart/form-data boundary"),
    ("no content type", None, b"RIFF", 400, "no multipart/form-data boundary"),
    ("empty boundary", "multipart/form-data; boundary=", multipart(b"RIFF", boundary=""), 400,
     "the multipart boundary in the Content-Type is empty"),
    ("empty quoted boundary", 'multipart/form-data; boundary=""',
     multipart(b"RIFF", boundary=""), 400, "boundary in the Content-Type is empty"),
    ("boundary over 256 bytes", "multipart/form-data; boundary=" + "b" * 300,
     multipart(b"RIFF", boundary="b" * 300), 400, "not well-formed multipart (Boundary length"),
    ("nameless part", CT, multipart(b"RIFF", disposition='form-data; filename="clip.wav"'),
     400, "not well-formed multipart (Field name not found"),
    ("no disposition", CT, f"--{BOUNDARY}\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n"
     f"--{BOUNDARY}--\r\n".encode(), 400, "not well-formed multipart"),
    ("malformed header line", CT, f"--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\n"
     f"RIFF\r\n--{BOUNDARY}--\r\n".encode(), 400, "not well-formed multipart"),
    ("bad base64", CT, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
     f"filename=\"a.wav\"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n"
     f"--{BOUNDARY}--\r\n".encode(), 400, "not well-formed multipart"),
    ("cut off", CT, multipart(wav(0.5))[:200], 400, "stops before its closing boundary"),
    ("garbage", CT, bytes(range(256)) * 4, 400, "not well-formed multipart"),
    ("100 KB file name", CT, multipart(b"RIFF", disposition='form-data; name="file"; '
                                       f'filename="{HUGE_NAME}"'), 431,
     "part headers are too long"),
    ("too many part headers", CT, f"--{BOUNDARY}\r\n".encode()
     + b"".join(f"X-H{i}: v\r\n".encode() for i in range(50)) + b"\r\nRIFF\r\n"
     + f"--{BOUNDARY}--\r\n".encode(), 431, "part headers are too long"),
    ("no file field", CT, multipart(b"RIFF", disposition='form-data; name="audio"'), 400,
     "no 'file' field"),
])
@pytest.mark.parametrize("chunk_size", [65536, 7])
def test_malformed_bodies_get_400_or_431_and_one_line(post, case, content_type, body, status,
                                                      message, chunk_size):
    got, answer = post(body, content_type, chunk_size=chunk_size)
    assert got == status, (case, answer)
    assert list(answer) == ["error"] and message in answer["error"]
    assert "\n" not in answer["error"] and len(answer["error"]) < 400
    assert "b'" not in answer["error"]  # the parser's bytes reprs shown as text


def test_a_long_file_name_under_the_header_cap_is_refused_by_the_name_cap(post):
    """A name of 2 KB fits python-multipart's 4 KB header line; the 1 KB name cap holds
    it (and is the only cap under python-multipart versions without header caps)."""
    body = multipart(b"RIFF", disposition=f'form-data; name="file"; filename="{"n" * 2000}"')
    status, answer = post(body, CT)
    assert status == 431 and "2000 bytes long, more than 1024" in answer["error"]


def test_a_well_formed_upload_reaches_the_scorer_with_its_name_and_bytes(post, echoing):
    data = wav(0.5)
    status, answer = post(multipart(data), CT, chunk_size=1000)
    assert (status, answer) == (200, {"file": "clip.wav", "bytes": len(data)})
    plain = multipart(data, disposition='form-data; name="file"')  # a field, no file name
    assert post(plain, CT) == (200, {"file": "upload", "bytes": len(data)})


def test_a_file_name_with_a_path_or_control_characters_is_cut_to_one_printable_name(post,
                                                                                   echoing):
    body = multipart(b"RIFF", disposition='form-data; name="file"; filename="../x/a\tb.wav"')
    assert post(body, CT) == (200, {"file": "a?b.wav", "bytes": 4})


def test_an_upload_just_past_the_byte_limit_is_refused_in_memory(post, monkeypatch):
    """Past the limit by less than the stream's 64 KB allowance: refused with 413 after
    parsing, and python-multipart never spooled it to a temporary file."""
    import tempfile

    def no_disk(*args, **kwargs):
        raise AssertionError("the upload was written to disk")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "mkstemp", no_disk)
    status, answer = post(multipart(b"\0" * 510_000), CT)
    assert status == 413 and "clip.wav: larger than the 0.5 MB limit" in answer["error"]
    status, answer = post(multipart(b"\0" * 700_000), CT)
    assert status == 413 and "the upload is larger than the 0.5 MB limit" in answer["error"]


def test_a_recording_past_the_seconds_limit_is_refused_before_the_scorer_sees_it(post):
    """The real ``score_upload`` with the stand-in scorer: 3 s against the 2 s limit is
    a 413 from the header (the stand-in raises if anything tries to score)."""
    status, answer = post(multipart(wav(3)), CT)
    assert status == 413 and "3 s, more than the 2 s limit" in answer["error"]


# -- generated garbage --------------------------------------------------------------------

def mutate(body: bytes, draw) -> bytes:
    """One of: cut, delete a slice, insert bytes, overwrite bytes, duplicate a slice."""
    kind = draw(st.sampled_from(["cut", "delete", "insert", "overwrite", "duplicate"]))
    at = draw(st.integers(0, len(body)))
    span = draw(st.integers(0, 64))
    if kind == "cut":
        return body[:at]
    if kind == "delete":
        return body[:at] + body[at + span:]
    noise = draw(st.binary(min_size=1, max_size=64))
    if kind == "insert":
        return body[:at] + noise + body[at:]
    if kind == "overwrite":
        return body[:at] + noise + body[at + len(noise):]
    return body[:at] + body[at:at + span] * draw(st.integers(2, 50)) + body[at:]


@st.composite
def hostile_requests(draw) -> tuple[bytes, bytes, int]:
    boundary = draw(st.one_of(st.just(BOUNDARY.encode()),
                              st.binary(max_size=300).filter(lambda b: b"\r" not in b
                                                             and b"\n" not in b)))
    content_type = draw(st.one_of(
        st.just(b"multipart/form-data; boundary=" + boundary),
        st.just(b'multipart/form-data; boundary="' + boundary + b'"'),
        st.binary(max_size=120),
        st.sampled_from([b"multipart/form-data", b"multipart/form-data; boundary",
                         b"multipart/mixed; boundary=x", b"text/plain",
                         b"multipart/form-data; boundary=a; boundary=b"])))
    name = draw(st.one_of(st.just("clip.wav"), st.text(max_size=40)))
    valid = multipart(draw(st.sampled_from([b"", b"RIFF", wav(0.1)])), boundary=boundary
                      .decode("latin-1"), disposition=f'form-data; name="file"; filename="{name}"')
    body = draw(st.one_of(st.binary(max_size=2000), st.just(valid)))
    for _ in range(draw(st.integers(0, 3))):
        body = mutate(body, draw)
    return content_type, body, draw(st.integers(1, 4096))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=hostile_requests())
def test_generated_bodies_and_headers_never_get_a_5xx(post, echoing, request):
    content_type, body, chunk_size = request
    status, answer = post(body, content_type, chunk_size=chunk_size)
    assert 200 <= status < 500, answer
    if status >= 300:
        assert list(answer) == ["error"] and "\n" not in answer["error"]


# -- the limits agree ---------------------------------------------------------------------

def test_the_byte_limit_holds_every_16_bit_stereo_48_khz_wav_under_the_seconds_limit():
    for seconds in (1.0, 20.0, 600.0, 3600.0):
        limits = serve.Limits(max_seconds=seconds)
        wav_bytes = 44 + seconds * 48_000 * 2 * 2  # the canonical header and the samples
        assert wav_bytes + 65536 < limits.max_mb * 1e6, seconds
    assert serve.Limits().max_seconds == 600 and serve.Limits().max_mb == pytest.approx(116.2)
    assert serve.Limits(max_seconds=60, max_mb=5).max_mb == 5  # an explicit size is kept


def test_a_real_wav_just_under_the_seconds_limit_passes_the_byte_limit(stand_in_load,
                                                                        monkeypatch):
    """1.99 s of 16-bit stereo 48 kHz (764 KB) under a 2 s limit: the byte limit derived
    for 2 s (1.384 MB) takes it; 2.5 s is refused for its length, not its size."""
    client = Client(serve.Limits(max_seconds=2))
    monkeypatch.setattr(serve, "score_upload", echo_upload)
    try:
        data = wav(1.99, rate=48000, channels=2)
        assert client(multipart(data), CT) == (200, {"file": "clip.wav", "bytes": len(data)})
        monkeypatch.setattr(serve, "score_upload", SCORE_UPLOAD)  # it checks the length
        status, answer = client(multipart(wav(2.5, rate=48000, channels=2)), CT)
        assert status == 413 and "more than the 2 s limit" in answer["error"]
    finally:
        client.close()


def test_serve_passes_its_settings_as_arguments_and_leaves_the_environment_alone(monkeypatch):
    """One worker: the app is built here from the arguments. Several: uvicorn's worker
    processes get the bundle and limits as JSON in ``WORKER_SETTINGS`` while uvicorn runs,
    and the variable is gone again afterwards."""
    import os

    import uvicorn

    import pipeline.inference.bundle

    made, seen = [], []
    monkeypatch.setattr(pipeline.inference.bundle, "load", lambda path: StandIn())
    monkeypatch.setattr(serve, "create_app", lambda bundle, limits: made.append(limits))
    monkeypatch.delenv(serve.WORKER_SETTINGS, raising=False)

    def run(app, **kwargs):
        if kwargs.get("workers", 1) > 1:
            seen.append(os.environ.get(serve.WORKER_SETTINGS))
            serve.app_for_worker()  # what each worker process does

    monkeypatch.setattr(uvicorn, "run", run)
    for limits in (serve.Limits(max_seconds=30), serve.Limits(max_seconds=30, max_mb=0.25),
                   serve.Limits()):
        serve.serve("x.safetensors", limits=limits)
        assert made.pop() == limits and seen == []
        serve.serve("x.safetensors", limits=limits, workers=2)
        assert made.pop() == limits and seen.pop()
        assert serve.WORKER_SETTINGS not in os.environ
