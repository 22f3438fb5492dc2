#!/usr/bin/env python3
"""Status and peak memory of a real ``ser serve`` process (the shipped model, one worker,
127.0.0.1 on a free port, ``--max-seconds 600``) for hostile uploads posted one at a time:
the server's resident memory (its whole process tree) is sampled every 20 ms with psutil
while each request runs. Target: the server below 1 GB under the hostile uploads (a)-(d);
the ordinary recording at the limits (e) is reported beside it.

    python benchmarks/bench_serve_hostile.py [--max-upload-mb 116.2]

Uploads: (a) ~200 KB of FLAC, 8 channels at 384 kHz, 60 s of digital silence (737 MB
once decoded to float32); (b) a 2 s MP3 whose Xing header claims 26.7 h; (c) the same MP3
claiming one frame; (d) malformed multipart bodies (no boundary, an empty boundary, a part
without a name, a malformed header line, a 100 KB file name); (e) an ordinary recording at
the limit: 600 s of 16-bit stereo 48 kHz WAV (115 MB) of digital silence.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
TARGET_BYTES = 1024 ** 3
BOUNDARY = "benchboundary"
MP3_SAMPLES_PER_FRAME = 1152  # MPEG-1 layer III
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_hostile import tree_rss  # noqa: E402  (benchmarks/, on the path above)


def flac_bomb() -> bytes:
    """60 s of silence, 8 channels at 384 kHz, written a second at a time (~200 KB)."""
    import soundfile

    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", samplerate=384_000, channels=8, format="FLAC",
                             subtype="PCM_16") as handle:
        second = np.zeros((384_000, 8), np.int16)
        for _ in range(60):
            handle.write(second)
    return buffer.getvalue()


def mp3_claiming(frames: int) -> bytes | None:
    """A 2 s 48 kHz mono MP3 (a 220 Hz tone) whose Xing/Info header claims ``frames``
    frames; None when libsndfile cannot write MP3 or wrote no such header."""
    import soundfile

    if "MP3" not in soundfile.available_formats():
        return None
    rate = 48_000
    buffer = io.BytesIO()
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(2 * rate) / rate)
    soundfile.write(buffer, tone.astype(np.float32), rate, format="MP3")
    data = bytearray(buffer.getvalue())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    if at < 0 or not int.from_bytes(data[at + 4:at + 8], "big") & 1:  # bit 0: frame count
        return None
    data[at + 8:at + 12] = frames.to_bytes(4, "big")
    return bytes(data)


def silent_wav(seconds: float) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((int(seconds * 48_000), 2), np.int16), 48_000,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def form(data: bytes, *, disposition: str = 'form-data; name="file"; filename="clip"',
         boundary: str = BOUNDARY) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data \
        + f"\r\n--{boundary}--\r\n".encode()


def uploads() -> list[tuple[str, str, bytes]]:
    """``(label, Content-Type, body)`` of every hostile upload."""
    multipart = f"multipart/form-data; boundary={BOUNDARY}"
    hours = 26.7
    long_frames = int(hours * 3600 * 48_000 / MP3_SAMPLES_PER_FRAME)
    cases = [("(a) FLAC 8 ch 384 kHz 60 s silence", multipart,
              form(flac_bomb(), disposition='form-data; name="file"; filename="bomb.flac"'))]
    for label, frames in ((f"(b) MP3 claiming {hours} h", long_frames),
                          ("(c) MP3 claiming 1 frame", 1)):
        data = mp3_claiming(frames)
        if data is None:
            print(f"{label}: skipped (libsndfile writes no MP3 with a Xing header here)")
            continue
        cases.append((label, multipart,
                      form(data, disposition='form-data; name="file"; filename="claim.mp3"')))
    cases += [
        ("(d) no boundary", "multipart/form-data", form(b"RIFF")),
        ("(d) empty boundary", "multipart/form-data; boundary=", form(b"RIFF", boundary="")),
        ("(d) nameless part", multipart, form(b"RIFF", disposition='form-data; filename="a"')),
        ("(d) malformed header line", multipart,
         f"--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nRIFF\r\n--{BOUNDARY}--\r\n"
         .encode()),
        ("(d) 100 KB file name", multipart,
         form(b"RIFF", disposition=f'form-data; name="file"; filename="{"a" * 100_000}"')),
        ("(e) 600 s 16-bit stereo 48 kHz WAV", multipart,
         form(silent_wav(600), disposition='form-data; name="file"; filename="ten.wav"')),
    ]
    return cases


def post(port: int, content_type: str, body: bytes, *, timeout: float) -> tuple[str, str]:
    """``(status, first 110 characters of the answer)``; a dropped connection is a status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            connection.request("POST", "/predict", body=body,
                               headers={"Content-Type": content_type})
        except OSError:  # refused while it streamed in: the answer may still be there
            pass
        response = connection.getresponse()
        answer = response.read().decode("utf-8", "replace")
        try:
            answer = json.loads(answer).get("error", answer)
        except (ValueError, AttributeError):
            pass
        return str(response.status), " ".join(str(answer).split())[:110]
    except (OSError, http.client.HTTPException) as error:
        return "no answer", f"{type(error).__name__}: {error}"[:110]
    finally:
        connection.close()


def start_server(port: int, *extra: str) -> subprocess.Popen:
    """``ser serve`` on ``port``, returned once /health says the model is loaded."""
    child = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port),
                              "--max-seconds", "600", *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and child.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if json.loads(connection.getresponse().read()).get("model_loaded"):
                return child
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.3)
    child.kill()
    raise SystemExit("the server did not become healthy within 180 s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measured(process: psutil.Process, call) -> tuple[object, int]:
    """``call()``'s result and the peak resident bytes of ``process`` while it ran."""
    peak, done = [tree_rss(process)], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(process))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return call(), peak[0]
    finally:
        done.set()
        sampler.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=180, help="seconds per request")
    parser.add_argument("--max-upload-mb", type=float, default=None,
                        help="passed to ser serve (default: the CLI's own)")
    args = parser.parse_args()
    cases = uploads()
    port = free_port()
    child = start_server(port, *(() if args.max_upload_mb is None
                                 else ("--max-upload-mb", str(args.max_upload_mb))))
    process = psutil.Process(child.pid)
    hostile = ordinary = idle = tree_rss(process)
    try:
        print(f"server idle, model loaded: {idle / 1024 ** 2:.0f} MiB")
        print(f"{'upload':<38} {'body':>9} {'status':>9} {'peak MiB':>9}  answer")
        for label, content_type, body in cases:
            (status, answer), peak = measured(
                process, lambda: post(port, content_type, body, timeout=args.timeout))
            if label.startswith("(e)"):
                ordinary = max(ordinary, peak)
            else:
                hostile = max(hostile, peak)
            print(f"{label:<38} {len(body) / 1e6:8.2f}M {status:>9} {peak / 1024 ** 2:9.0f}  "
                  f"{answer}")
            if child.poll() is not None:
                print(f"the server exited (status {child.returncode})")
                break
    finally:
        child.terminate()
        child.wait(timeout=30)
    print(f"peak memory of the server under the hostile uploads (a)-(d): "
          f"{hostile / 1024 ** 2:.0f} MiB (target below {TARGET_BYTES / 1024 ** 3:.0f} GiB: "
          f"{'met' if hostile < TARGET_BYTES else 'NOT met'}); with the ordinary recording at "
          f"the limits (e): {ordinary / 1024 ** 2:.0f} MiB (no target: it is what the limits "
          "admit)")


if __name__ == "__main__":
    main()
