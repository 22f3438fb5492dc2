"""Tests of pipeline/inference/serve.py against a real server process (``ser serve`` on a free
loopback port, the module's tiny model): every endpoint, and every kind of bad upload
answered with a 4xx and the CLI's message, never a 500."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.core import labels
from test_predict import Trained, corpus_clip, trained  # noqa: F401  (the module's tiny model)

pytest.importorskip("fastapi", reason="the serve extra is not installed")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(bundle: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``ser serve`` in its own process; returns it and its base URL once healthy."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "serve", "--bundle",
                                str(bundle), "--port", str(port), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stdout.read().decode()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if json.load(response)["model_loaded"]:
                    return process, url
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the server did not answer /health within 120 s")


def upload(url: str, data: bytes, *, name: str = "clip.wav", field: str = "file",
           query: str = "") -> tuple[int, dict]:
    """POST ``data`` as a multipart upload; ``(status, JSON body)``."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/predict{query}", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; "
                                                              f"boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def server(trained):  # noqa: F811
    process, url = start_server(trained.bundle_path, "--max-upload-mb", "2",
                                "--max-seconds", "20")
    yield url
    process.terminate()
    process.wait(timeout=30)


def _wav(seconds: float, *, rate: int = 16000, tone: bool = False) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    y = 0.2 * np.sin(2 * np.pi * 220 * t) if tone else np.zeros(t.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, y.astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def test_health_model_and_page(server):
    with urllib.request.urlopen(server + "/health") as response:
        assert json.load(response) == {"status": "ok", "model_loaded": True}
    with urllib.request.urlopen(server + "/model") as response:
        model = json.load(response)
    assert model["labels"] == list(labels.EMOTIONS)
    assert "non-commercial" in model["licence"] and model["provenance"]["run"] == "final"
    with urllib.request.urlopen(server + "/") as response:
        page = response.read().decode()
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="file"' in page and 'id="live"' in page


def test_predict_answers_what_the_cli_scores(server, trained):  # noqa: F811
    from pipeline.inference.predict import predict_files

    clip = corpus_clip(trained, emotion=5, actor=2)
    status, body = upload(server, clip.read_bytes(), name=clip.name)
    assert status == 200
    [expected] = predict_files([clip], trained.bundle)
    assert body["emotion"] == expected.emotion and body["path"] == clip.name
    assert body["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5)
    assert body["speech"]["segments"] == len(body["timeline"]) == 1
    assert set(body["timeline"][0]) >= {"start_s", "end_s", "speech_s", "emotion"}
    status, fast = upload(server, clip.read_bytes(), query="?tta=false")
    assert status == 200 and fast["test_time_views"] == 1


def test_concurrent_requests_are_all_answered_as_one_at_a_time_would_be(server, trained):  # noqa: F811
    """Requests are scored in worker threads; the speech detector is shared by them (a
    crash of the whole service under 4 clients was how this was found)."""
    from concurrent.futures import ThreadPoolExecutor

    clips = [corpus_clip(trained, emotion=e, actor=a).read_bytes()
             for e, a in ((1, 1), (2, 2), (3, 3), (4, 4), (5, 1), (6, 2), (7, 3), (8, 4))]
    alone = [upload(server, clip) for clip in clips]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda clip: upload(server, clip), clips))
    assert [status for status, _ in together] == [200] * len(clips)
    for (_, a), (_, b) in zip(alone, together):
        assert a["emotion"] == b["emotion"]
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-5)


@pytest.mark.parametrize("case, status, message", [
    ("not audio", 415, "notes.txt: not readable audio (Format not recognised.)"),
    ("empty", 400, "empty file (0 bytes)"),
    ("no speech", 422, "no speech detected"),
    ("silent", 422, "silent (peak below -80 dBFS"),
    ("too long", 413, "30 s, more than the 20 s limit"),
    ("too large", 413, "larger than the 2 MB limit"),
    ("no file field", 400, "no 'file' field"),
])
def test_bad_uploads_get_a_4xx_and_the_clis_message(server, case, status, message):
    data, name, field = {
        "not audio": (b"just some text\n" * 20, "notes.txt", "file"),
        "empty": (b"", "empty.wav", "file"),
        "no speech": (_wav(3, tone=True), "tone.wav", "file"),
        "silent": (_wav(3), "hush.wav", "file"),
        "too long": (_wav(30), "long.wav", "file"),
        "too large": (b"\0" * 3_000_000, "big.wav", "file"),
        "no file field": (_wav(1), "clip.wav", "audio"),
    }[case]
    got, body = upload(server, data, name=name, field=field)
    assert got == status, body
    assert message in body["error"]


def test_a_request_without_multipart_is_refused_in_one_line(server):
    request = urllib.request.Request(server + "/predict", data=b"raw", method="POST",
                                     headers={"Content-Type": "audio/wav"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400 and "multipart/form-data" in json.load(caught.value)["error"]


def post_raw(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    """POST ``body`` as it is, with ``content_type``; ``(status, JSON body)``."""
    request = urllib.request.Request(url + "/predict", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _part(disposition: str, *, boundary: str = "xyz") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\nRIFF\r\n"
            f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize("case, content_type, body, status, message", [
    ("no boundary", "multipart/form-data", _part('form-data; name="file"'), 400,
     "no multipart/form-data boundary"),
    ("empty boundary", "multipart/form-data; boundary=", _part('form-data; name="file"',
                                                                boundary=""), 400,
     "boundary in the Content-Type is empty"),
    ("nameless part", "multipart/form-data; boundary=xyz", _part('form-data; filename="a.wav"'),
     400, "not well-formed multipart"),
    ("malformed header line", "multipart/form-data; boundary=xyz",
     b"--xyz\r\nContent-Disposition form-data\r\n\r\nRIFF\r\n--xyz--\r\n", 400,
     "not well-formed multipart"),
    ("100 KB file name", "multipart/form-data; boundary=xyz",
     _part(f'form-data; name="file"; filename="{"a" * 100_000}.wav"'), 431,
     "part headers are too long"),
])
def test_malformed_multipart_gets_a_4xx_and_one_line_never_a_500(server, case, content_type,
                                                                 body, status, message):
    got, answer = post_raw(server, body, content_type)
    assert got == status, (case, answer)
    assert list(answer) == ["error"] and message in answer["error"]
    assert "\n" not in answer["error"]


def test_the_service_binds_to_loopback_by_default():
    from click.testing import CliRunner

    from cli import cli

    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert "127.0.0.1" in help_text and "HTTPS" in help_text
