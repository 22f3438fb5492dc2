"""The ``download`` stage (``pipeline/corpus/download.py``): HTTP fetch with resume and checksum,
safe unpacking of zips, folders used in place, and the CLI command.

No test touches the network: archives are served by ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import write_corpus
from pipeline.core.errors import DownloadError
from pipeline.core.layout import download_manifest as manifest_path
from pipeline.corpus.download import UNPACKED_MARK, Remote, download

ARCHIVE = "corpus.zip"


# --- helpers -------------------------------------------------------------------------

def build_zip(source: Path, *, prefix: str = "") -> bytes:
    """The files under ``source`` as zip bytes (entries ``<prefix>Actor_XX/...``), stored
    uncompressed so that a byte flipped in the middle hits a member's data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                bundle.write(path, prefix + path.relative_to(source).as_posix())
    return buffer.getvalue()


def tree(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != UNPACKED_MARK}


def files_named(root: Path, name: str) -> list[Path]:
    return [p for p in root.rglob(name)]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """2 actors x 2 emotions x 1 take: enough for an archive."""
    root = tmp_path_factory.mktemp("small") / "corpus"
    write_corpus(root, actors=(1, 2), emotions=(1, 3), takes=1)
    return root


@pytest.fixture(scope="module")
def archive(small_corpus) -> bytes:
    return build_zip(small_corpus)


def remote_for(server: "ArchiveServer", payload: bytes, **overrides) -> Remote:
    fields = {"url": server.url, "size": len(payload), "md5": hashlib.md5(payload).hexdigest()}
    return Remote(**{**fields, **overrides})


class ArchiveServer:
    """Serves ``payload`` at ``/corpus.zip`` on 127.0.0.1 and records every request's
    ``Range`` header.

    ``honour_range=False`` answers 200 with the whole file even when asked to resume;
    ``cuts=(N1, N2, ...)`` closes the connection after ``Nk`` bytes of the k-th answer's
    body (``None``: the whole body; answers past the list are whole): a transfer that
    breaks off. ``cut_first_after=N`` is ``cuts=(N,)``. ``framing`` says how the body's
    end is told: ``"length"`` (Content-Length), ``"chunked"`` (HTTP/1.1
    Transfer-Encoding: chunked) or ``"eof"`` (HTTP/1.0 with no length: the connection's
    close ends the body, so a cut looks like the end). ``statuses=(503, ...)`` answers
    the first requests with those errors; ``honour_range="wrongly"`` answers a resume
    with 206 and the whole file (``Content-Range: bytes 0-...``).
    """

    def __init__(self, payload: bytes, *, honour_range: bool = True,
                 cut_first_after: int | None = None, cuts: tuple[int | None, ...] = (),
                 framing: str = "length", statuses: tuple[int, ...] = ()):
        self.payload = payload
        self.statuses = statuses
        self.honour_range = honour_range
        self.cuts = (cut_first_after,) if cut_first_after is not None else tuple(cuts)
        self.framing = framing
        self.ranges: list[str | None] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection; EOF ends a body without a length
            protocol_version = "HTTP/1.1" if framing == "chunked" else "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner._serve(self)

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{ARCHIVE}"

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path != f"/{ARCHIVE}":
            handler.send_error(404)
            return
        requested = handler.headers.get("Range")
        number = len(self.ranges)
        self.ranges.append(requested)
        total = len(self.payload)
        if number < len(self.statuses):
            handler.send_error(self.statuses[number])
            return
        start = int(requested.removeprefix("bytes=").split("-")[0]) if requested else 0
        if requested and self.honour_range == "wrongly":
            start = 0
        if requested and self.honour_range:
            if start >= total:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{total}")
                handler.end_headers()
                return
            body = self.payload[start:]
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            body = self.payload
            handler.send_response(200)
        if self.framing == "length":
            handler.send_header("Content-Length", str(len(body)))
        elif self.framing == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Content-Type", "application/zip")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        cut = self.cuts[number] if number < len(self.cuts) else None
        if self.framing == "chunked":  # chunks of 1000 bytes; a cut may fall inside one
            framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                              for i in range(0, len(body), 1000))
            if cut is not None:  # the framed offset of body byte ``cut``
                chunks, rest = divmod(cut, 1000)
                head = len(b"%x\r\n" % 1000) + 1000 + 2
                framed = framed[:chunks * head + (len(b"%x\r\n" % 1000) + rest if rest else 0)]
            handler.wfile.write(framed + (b"0\r\n\r\n" if cut is None else b""))
        else:
            handler.wfile.write(body if cut is None else body[:cut])
        handler.wfile.flush()

    def __enter__(self) -> "ArchiveServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch) -> None:
    """A proxy set in the environment must not capture requests to 127.0.0.1."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --- HTTP: full download, resume, checksum ---------------------------------------------

def test_full_download_is_verified_and_unpacked(tmp_path, archive, small_corpus) -> None:
    data_dir = tmp_path / "data"
    with ArchiveServer(archive) as server:
        result = download(data_dir=data_dir, source=None, remote=remote_for(server, archive))
    assert server.ranges == [None]
    assert not result.skipped
    assert (data_dir / "downloads" / ARCHIVE).read_bytes() == archive
    assert not (data_dir / "downloads" / f"{ARCHIVE}.part").exists()
    assert result.root == (data_dir / "ravdess").resolve()
    assert tree(result.root) == tree(small_corpus)
    record = json.loads(manifest_path(data_dir).read_text())
    assert record["root"] == str(result.root)
    assert record["kind"] == "url"
    assert record["source"] == server.url


def test_cut_off_transfer_resumes_with_range(tmp_path, archive, small_corpus) -> None:
    """Each attempt resumes where the last stopped; after three the run gives up and the
    rerun resumes from the bytes kept."""
    data_dir = tmp_path / "data"
    half = len(archive) // 2
    with ArchiveServer(archive, cuts=(half, 100, 100)) as server:
        remote = remote_for(server, archive)
        with pytest.raises(DownloadError, match="broke off 3 times.*rerun 'ser download' to "
                                                "resume"):
            download(data_dir=data_dir, remote=remote)
        part = data_dir / "downloads" / f"{ARCHIVE}.part"
        assert part.read_bytes() == archive[:half + 200]
        assert not manifest_path(data_dir).exists()
        assert not (data_dir / "ravdess").exists()

        result = download(data_dir=data_dir, remote=remote)
    assert server.ranges == [None, f"bytes={half}-", f"bytes={half + 100}-",
                             f"bytes={half + 200}-"]
    assert (data_dir / "downloads" / ARCHIVE).read_bytes() == archive
    assert tree(result.root) == tree(small_corpus)


def test_cut_off_transfer_of_unknown_size_is_not_trusted(tmp_path, archive,
                                                           small_corpus) -> None:
    """A plain URL (no size or MD5 known): a body shorter than Content-Length must not
    become the final archive; the rerun resumes it."""
    data_dir = tmp_path / "data"
    half = len(archive) // 2
    with ArchiveServer(archive, cuts=(half, 0, 0)) as server:
        with pytest.raises(DownloadError, match="rerun"):
            download(data_dir=data_dir, source=server.url)
        assert not (data_dir / "downloads" / ARCHIVE).exists()
        assert not manifest_path(data_dir).exists()
        result = download(data_dir=data_dir, source=server.url)
    assert server.ranges == [None] + [f"bytes={half}-"] * 3
    assert (data_dir / "downloads" / ARCHIVE).read_bytes() == archive
    assert tree(result.root) == tree(small_corpus)


def test_resume_from_existing_part_file(tmp_path, archive) -> None:
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    third = len(archive) // 3
    (downloads / f"{ARCHIVE}.part").write_bytes(archive[:third])
    with ArchiveServer(archive) as server:
        download(data_dir=tmp_path / "data", remote=remote_for(server, archive))
    assert server.ranges == [f"bytes={third}-"]
    assert (downloads / ARCHIVE).read_bytes() == archive


def test_server_that_ignores_range_still_gives_a_correct_file(tmp_path, archive,
                                                              small_corpus) -> None:
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    half = len(archive) // 2
    (downloads / f"{ARCHIVE}.part").write_bytes(archive[:half])
    with ArchiveServer(archive, honour_range=False) as server:
        result = download(data_dir=tmp_path / "data", remote=remote_for(server, archive))
    assert server.ranges == [f"bytes={half}-"]  # asked to resume, got the whole file
    assert (downloads / ARCHIVE).read_bytes() == archive
    assert tree(result.root) == tree(small_corpus)


def test_checksum_mismatch_leaves_nothing_trusted(tmp_path, archive) -> None:
    data_dir = tmp_path / "data"
    downloads = data_dir / "downloads"
    with ArchiveServer(archive) as server:
        wrong = remote_for(server, archive, md5="0" * 32)
        with pytest.raises(DownloadError, match="MD5"):
            download(data_dir=data_dir, remote=wrong)
        assert not (downloads / ARCHIVE).exists()
        assert not (downloads / f"{ARCHIVE}.part").exists()
        assert (downloads / f"{ARCHIVE}.bad").read_bytes() == archive  # moved aside
        assert not manifest_path(data_dir).exists()
        assert not (data_dir / "ravdess").exists()

        # A later run trusts none of it: it fetches from the start and verifies again.
        result = download(data_dir=data_dir, remote=remote_for(server, archive))
    assert server.ranges == [None, None]
    assert not result.skipped
    assert (downloads / ARCHIVE).read_bytes() == archive


def test_wrong_size_is_refused(tmp_path, archive) -> None:
    data_dir = tmp_path / "data"
    with ArchiveServer(archive) as server:
        with pytest.raises(DownloadError, match="expected"):
            download(data_dir=data_dir, remote=remote_for(server, archive, size=len(archive) + 7))
    assert not (data_dir / "downloads" / ARCHIVE).exists()
    assert not manifest_path(data_dir).exists()


def test_rerun_skips_and_force_redoes(tmp_path, archive, small_corpus) -> None:
    data_dir = tmp_path / "data"
    with ArchiveServer(archive) as server:
        remote = remote_for(server, archive)
        first = download(data_dir=data_dir, remote=remote)
        again = download(data_dir=data_dir, remote=remote)
        assert again.skipped and again.root == first.root
        assert len(server.ranges) == 1  # nothing fetched

        victim = next(first.root.rglob("*.wav"))
        victim.unlink()
        forced = download(data_dir=data_dir, remote=remote, force=True)
    assert not forced.skipped
    assert len(server.ranges) == 2
    assert server.ranges[1] is None  # --force starts the transfer over
    assert tree(forced.root) == tree(small_corpus)


def test_unreachable_server_is_a_download_error(tmp_path) -> None:
    with ArchiveServer(b"") as server:
        url = server.url
    # the server is shut down: the port refuses connections
    with pytest.raises(DownloadError, match="cannot reach"):
        download(data_dir=tmp_path / "data", remote=Remote(url=url, size=10, md5=None))


def test_http_error_is_a_download_error(tmp_path, archive) -> None:
    with ArchiveServer(archive) as server:
        missing = server.url.replace(ARCHIVE, "other.zip")
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(data_dir=tmp_path / "data", remote=Remote(url=missing, size=None, md5=None))


# --- local zip sources -----------------------------------------------------------------

def test_zip_source_is_unpacked(tmp_path, archive, small_corpus) -> None:
    zip_path = tmp_path / "manual.zip"
    zip_path.write_bytes(archive)
    data_dir = tmp_path / "data"
    result = download(data_dir=data_dir, source=str(zip_path))
    assert result.root == (data_dir / "ravdess").resolve()
    assert tree(result.root) == tree(small_corpus)
    assert not (data_dir / ".ravdess.unpacking").exists()
    record = json.loads(manifest_path(data_dir).read_text())
    assert record["kind"] == "zip"
    assert record["root"] == str(result.root)
    assert download(data_dir=data_dir, source=str(zip_path)).skipped


def _users_own_corpus(data_dir: Path) -> dict[str, bytes]:
    mine = data_dir / "ravdess"
    (mine / "Actor_01").mkdir(parents=True)
    (mine / "my-notes.txt").write_text("three weeks of labelling")
    (mine / "Actor_01" / "03-01-01-01-01-01-01.wav").write_bytes(b"my own take")
    return tree(mine)


def test_a_folder_the_stage_did_not_create_is_never_replaced(tmp_path, archive) -> None:
    data_dir = tmp_path / "data"
    before = _users_own_corpus(data_dir)
    zip_path = tmp_path / "some-other.zip"
    zip_path.write_bytes(archive)
    with pytest.raises(DownloadError) as caught:
        download(data_dir=data_dir, source=str(zip_path))
    message = str(caught.value)
    assert str(data_dir / "ravdess") in message and "--force" in message
    assert tree(data_dir / "ravdess") == before and (data_dir / "ravdess" / "my-notes.txt").exists()
    assert not manifest_path(data_dir).exists()

    with ArchiveServer(archive) as server:  # nor fetched over: refused before the transfer
        with pytest.raises(DownloadError, match="--force"):
            download(data_dir=data_dir, remote=remote_for(server, archive))
        assert server.ranges == []
    assert tree(data_dir / "ravdess") == before


def test_force_moves_a_foreign_folder_aside_and_an_own_one_is_replaced_freely(
        tmp_path, archive, small_corpus) -> None:
    data_dir = tmp_path / "data"
    before = _users_own_corpus(data_dir)
    zip_path = tmp_path / "corpus.zip"
    zip_path.write_bytes(archive)
    forced = download(data_dir=data_dir, source=str(zip_path), force=True)
    assert tree(forced.root) == tree(small_corpus)
    assert (data_dir / "ravdess" / UNPACKED_MARK).is_file()
    [aside] = data_dir.glob("ravdess.replaced-*")  # nothing of the user's was deleted
    assert tree(aside) == before

    other = tmp_path / "other.zip"  # a second archive over the folder this stage made
    other.write_bytes(build_zip(small_corpus, prefix="top/"))
    again = download(data_dir=data_dir, source=str(other))
    assert again.root == (data_dir / "ravdess" / "top").resolve()
    assert tree(again.root) == tree(small_corpus)


def test_files_added_to_an_unpacked_folder_make_it_the_users(tmp_path, archive) -> None:
    data_dir = tmp_path / "data"
    zip_path = tmp_path / "corpus.zip"
    zip_path.write_bytes(archive)
    first = download(data_dir=data_dir, source=str(zip_path))
    mine = first.root / "Actor_01" / "my-extra-take.wav"
    mine.write_bytes(b"recorded later")
    other = tmp_path / "other.zip"
    other.write_bytes(archive)
    with pytest.raises(DownloadError, match="files added or changed since.*--force"):
        download(data_dir=data_dir, source=str(other))
    assert mine.read_bytes() == b"recorded later"


def test_cli_refusal_is_one_line_with_exit_status_1(tmp_path, archive, runner) -> None:
    from cli import cli

    data_dir = tmp_path / "data"
    before = _users_own_corpus(data_dir)
    zip_path = tmp_path / "some-other.zip"
    zip_path.write_bytes(archive)
    result = runner.invoke(cli, ["--data-dir", str(data_dir), "download", "--source", str(zip_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {data_dir / 'ravdess'} exists and was not unpacked by this tool, or holds "
        "files added or changed since, so it may hold your own work: move it away, or rerun "
        "with --force (it is then moved aside to ravdess.replaced-<date>, not deleted)"]
    assert tree(data_dir / "ravdess") == before


def test_zip_with_a_top_folder_is_found(tmp_path, small_corpus) -> None:
    zip_path = tmp_path / "kaggle.zip"
    zip_path.write_bytes(build_zip(small_corpus, prefix="audio_speech_actors_01-24/"))
    result = download(data_dir=tmp_path / "data", source=str(zip_path))
    assert result.root.name == "audio_speech_actors_01-24"
    assert tree(result.root) == tree(small_corpus)


def _evil_zip(path: Path, evil_name: str, *, symlink: bool = False) -> None:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"RIFF....")
        info = zipfile.ZipInfo(evil_name)
        if symlink:
            info.external_attr = 0o120777 << 16
            bundle.writestr(info, "../../evil.wav")
        else:
            bundle.writestr(info, b"payload outside the target")


@pytest.mark.parametrize("kind", ["parent", "nested-parent", "absolute", "symlink"])
def test_unsafe_zip_entries_are_refused(tmp_path, kind: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    evil_name = {
        "parent": "../evil.wav",
        "nested-parent": "Actor_01/../../../evil.wav",
        "absolute": f"{(outside / 'evil.wav').as_posix()}",
        "symlink": "Actor_01/evil.wav",
    }[kind]
    assert kind != "absolute" or evil_name.startswith("/")
    zip_path = tmp_path / "evil.zip"
    _evil_zip(zip_path, evil_name, symlink=kind == "symlink")
    data_dir = tmp_path / "work" / "data"
    with pytest.raises(DownloadError, match="unsafe entry"):
        download(data_dir=data_dir, source=str(zip_path))
    assert files_named(tmp_path, "evil.wav") == []
    assert not (data_dir / "ravdess").exists()  # refused before anything was unpacked
    assert not (data_dir / ".ravdess.unpacking").exists()
    assert not manifest_path(data_dir).exists()


@pytest.mark.parametrize("damage", ["text", "truncated", "empty", "corrupt-member"])
def test_damaged_zip_source_is_a_clear_error(tmp_path, archive, damage: str) -> None:
    zip_path = tmp_path / "corpus.zip"
    if damage == "text":
        zip_path.write_text("this is not an archive\n")
    elif damage == "truncated":
        zip_path.write_bytes(archive[: len(archive) // 2])
    elif damage == "empty":
        zip_path.write_bytes(b"")
    else:  # the central directory is intact, one member's bytes are not
        broken = bytearray(archive)
        broken[len(archive) // 3] ^= 0xFF
        zip_path.write_bytes(bytes(broken))
    data_dir = tmp_path / "data"
    message = "corrupt" if damage == "corrupt-member" else "not a zip archive"
    with pytest.raises(DownloadError, match=message):
        download(data_dir=data_dir, source=str(zip_path))
    assert not manifest_path(data_dir).exists()
    assert not (data_dir / "ravdess").exists()
    assert not (data_dir / ".ravdess.unpacking").exists()


def test_zip_without_actor_folders_is_refused(tmp_path) -> None:
    zip_path = tmp_path / "other.zip"
    with zipfile.ZipFile(zip_path, "w") as bundle:
        bundle.writestr("music/song.wav", b"RIFF")
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match="no Actor_XX"):
        download(data_dir=data_dir, source=str(zip_path))
    assert not manifest_path(data_dir).exists()
    assert not (data_dir / "ravdess").exists()


# --- folder sources --------------------------------------------------------------------

def test_folder_source_is_used_in_place(tmp_path, corpus) -> None:
    data_dir = tmp_path / "data"
    result = download(data_dir=data_dir, source=str(corpus))
    assert result.root == corpus.resolve()
    record = json.loads(manifest_path(data_dir).read_text())
    assert record["root"] == str(corpus.resolve())
    assert record["kind"] == "folder"
    assert sorted(p.name for p in data_dir.iterdir()) == ["download.json"]  # nothing copied
    assert download(data_dir=data_dir, source=str(corpus)).skipped


def test_folder_with_actors_one_level_below(tmp_path) -> None:
    outer = tmp_path / "Audio_Speech"
    write_corpus(outer / "inner", actors=(3,), emotions=(1,), takes=1)
    (outer / "notes").mkdir()  # a sibling without actors comes first in sorted order
    (outer / "a_readme.txt").write_text("hello")
    result = download(data_dir=tmp_path / "data", source=str(outer))
    assert result.root == (outer / "inner").resolve()


def test_folder_without_actors_is_refused(tmp_path) -> None:
    (tmp_path / "empty" / "one" / "two" / "Actor_01").mkdir(parents=True)  # too deep
    with pytest.raises(DownloadError, match="no Actor_XX"):
        download(data_dir=tmp_path / "data", source=str(tmp_path / "empty"))
    assert not manifest_path(tmp_path / "data").exists()


def test_missing_source_is_refused(tmp_path) -> None:
    with pytest.raises(DownloadError, match="no such file or folder"):
        download(data_dir=tmp_path / "data", source=str(tmp_path / "nowhere.zip"))


def test_changing_source_redoes_the_stage(tmp_path, corpus, archive) -> None:
    data_dir = tmp_path / "data"
    download(data_dir=data_dir, source=str(corpus))
    zip_path = tmp_path / "other.zip"
    zip_path.write_bytes(archive)
    result = download(data_dir=data_dir, source=str(zip_path))
    assert not result.skipped
    assert result.root == (data_dir / "ravdess").resolve()


# --- CLI -------------------------------------------------------------------------------



def test_cli_download_folder_then_rerun(tmp_path, corpus, runner) -> None:
    from cli import cli

    data_dir = tmp_path / "data"
    args = ["--data-dir", str(data_dir), "download", "--source", str(corpus)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert f"corpus at {corpus.resolve()}" in first.output
    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "corpus already at" in second.output
    forced = runner.invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0 and "already" not in forced.output


def test_cli_download_zip(tmp_path, archive, runner) -> None:
    from cli import cli

    zip_path = tmp_path / "c.zip"
    zip_path.write_bytes(archive)
    data_dir = tmp_path / "data"
    result = runner.invoke(cli, ["--data-dir", str(data_dir), "-q", "download",
                                 "--source", str(zip_path)])
    assert result.exit_code == 0, result.output
    assert (data_dir / "ravdess" / "Actor_01").is_dir()


@pytest.mark.parametrize("make_source, message", [
    (lambda tmp: tmp / "missing.zip", "no such file or folder"),
    (lambda tmp: (tmp / "bad.zip").write_text("nope") and tmp / "bad.zip", "not a zip archive"),
])
def test_cli_download_error_is_one_clean_line(tmp_path, runner, make_source, message) -> None:
    from cli import cli

    source = make_source(tmp_path)
    result = runner.invoke(cli, ["--data-dir", str(tmp_path / "data"), "download",
                                 "--source", str(source)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert str(source) in error_lines[0]


# --- hostile servers: a cut transfer is resumed within the run, never kept as finished ---

@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch) -> None:
    """The pause between attempts is for real servers; tests need not wait."""
    monkeypatch.setattr("pipeline.corpus.download.RETRY_PAUSE_S", 0.0, raising=False)


def _cli_download(runner, data_dir: Path, source: str):
    from cli import cli

    return runner.invoke(cli, ["--data-dir", str(data_dir), "download", "--source", source])


def _error_line(result) -> str:
    """The one ``Error:`` line of a CLI run that failed cleanly (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return line


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
def test_a_cut_transfer_is_resumed_within_the_run(tmp_path, runner, archive, small_corpus,
                                                  framing: str) -> None:
    """Content-Length, chunked or no length at all (HTTP/1.0, the close ends the body):
    the cut is noticed, one line says so, and the same run resumes with a Range request."""
    data_dir, half = tmp_path / "data", len(archive) // 2
    with ArchiveServer(archive, cuts=(half,), framing=framing) as server:
        result = _cli_download(runner, data_dir, server.url)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert len(server.ranges) == 2 and server.ranges[1].startswith("bytes=")
    assert 0 < int(server.ranges[1][len("bytes="):-1]) <= half  # resumed, not started over
    [line] = [line for line in result.output.splitlines() if "broke off" in line]
    assert line.startswith(f"transfer of {ARCHIVE} broke off after ")
    assert line.endswith("; resuming (attempt 2 of 3)")
    assert (data_dir / "downloads" / ARCHIVE).read_bytes() == archive
    assert not (data_dir / "downloads" / f"{ARCHIVE}.part").exists()
    assert tree(data_dir / "ravdess") == tree(small_corpus)


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
def test_a_transfer_cut_on_every_attempt_is_one_error_and_the_rerun_resumes(
        tmp_path, runner, archive, small_corpus, framing: str) -> None:
    data_dir, third = tmp_path / "data", len(archive) // 3
    downloads = data_dir / "downloads"
    with ArchiveServer(archive, cuts=(third,) * 3, framing=framing,
                       honour_range=False) as server:
        failed = _cli_download(runner, data_dir, server.url)
    assert len(server.ranges) == 3  # a bounded number of attempts
    error = _error_line(failed)
    assert f"transfer of {server.url} broke off" in error
    assert "rerun 'ser download' to resume" in error
    assert not (downloads / ARCHIVE).exists()  # the cut archive is never kept as finished
    assert not manifest_path(data_dir).exists() and not (data_dir / "ravdess").exists()
    kept = (downloads / f"{ARCHIVE}.part").read_bytes()
    assert 0 < len(kept) <= third and kept == archive[:len(kept)]

    with ArchiveServer(archive, framing=framing) as server:
        again = _cli_download(runner, data_dir, server.url)
    assert again.exit_code == 0, again.output
    assert server.ranges == [f"bytes={len(kept)}-"]
    assert (downloads / ARCHIVE).read_bytes() == archive
    assert tree(data_dir / "ravdess") == tree(small_corpus)


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
def test_a_transfer_cut_before_any_byte_leaves_no_empty_part(tmp_path, archive,
                                                              framing: str) -> None:
    data_dir = tmp_path / "data"
    with ArchiveServer(archive, cuts=(0, 0, 0), framing=framing) as server:
        with pytest.raises(DownloadError, match="rerun 'ser download' to resume"):
            download(data_dir=data_dir, source=server.url)
    assert list((data_dir / "downloads").iterdir()) == []


@pytest.mark.parametrize("framing", ["length", "eof"])
def test_a_whole_answer_that_is_not_a_zip_is_moved_aside(tmp_path, framing: str) -> None:
    page = b"<html>Too many requests; try again later</html>\n" * 20
    downloads = tmp_path / "data" / "downloads"
    with ArchiveServer(page, framing=framing) as server:
        with pytest.raises(DownloadError, match="not a zip archive.*moved it to corpus.zip.bad"):
            download(data_dir=tmp_path / "data", source=server.url)
    assert sorted(p.name for p in downloads.iterdir()) == [f"{ARCHIVE}.bad"]
    assert (downloads / f"{ARCHIVE}.bad").read_bytes() == page


def test_a_truncated_archive_kept_as_finished_is_fetched_again(tmp_path, archive,
                                                                small_corpus) -> None:
    """What an earlier version left after an HTTP/1.0 cut: half an archive under the final
    name. It is not trusted: moved aside, and the archive fetched again."""
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / ARCHIVE).write_bytes(archive[:len(archive) // 2])
    with ArchiveServer(archive) as server:
        result = download(data_dir=tmp_path / "data", source=server.url)
    assert server.ranges == [None]
    assert (downloads / ARCHIVE).read_bytes() == archive
    assert (downloads / f"{ARCHIVE}.bad").read_bytes() == archive[:len(archive) // 2]
    assert tree(result.root) == tree(small_corpus)


# --- the record: the corpus as the user gave it ---------------------------------------------

def test_a_relative_source_is_recorded_as_given_and_found_from_anywhere(
        tmp_path, runner, monkeypatch, small_corpus) -> None:
    from cli import cli
    from pipeline.corpus.download import corpus_root

    work, data_dir = tmp_path / "work", tmp_path / "data"
    shutil.copytree(small_corpus, work / "mine")
    monkeypatch.chdir(work)
    assert _cli_download(runner, data_dir, "mine").exit_code == 0
    record = json.loads(manifest_path(data_dir).read_text())
    assert record["source_given"] == "mine"
    assert record["root"] == str(work / "mine")
    monkeypatch.chdir(tmp_path)
    assert corpus_root(data_dir) == work / "mine"

    (work / "mine").rename(work / "moved")
    error = _error_line(runner.invoke(cli, ["--data-dir", str(data_dir), "index"]))
    date = record["written_at"][:10]
    assert error.startswith(f"Error: the recorded corpus folder {work / 'mine'} no longer "
                            f"exists (recorded by 'ser download' on {date}")
    assert "from mine" in error
    assert error.endswith("restore it or run 'ser download --source PATH' again")
    assert "no corpus recorded" not in error


def test_no_record_at_all_still_says_so(tmp_path) -> None:
    from pipeline.corpus.download import corpus_root

    with pytest.raises(DownloadError, match="no corpus recorded in"):
        corpus_root(tmp_path / "data")


def test_a_source_through_a_link_follows_the_link(tmp_path, small_corpus) -> None:
    """The record keeps the path given, not where it pointed then: a link moved to a new
    copy (a corpus moved to another disk) is followed."""
    from pipeline.corpus.download import corpus_root

    shutil.copytree(small_corpus, tmp_path / "disk1" / "ravdess")
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "disk1" / "ravdess")
    download(data_dir=tmp_path / "data", source=str(link))
    shutil.move(tmp_path / "disk1" / "ravdess", tmp_path / "disk2")
    link.unlink()
    link.symlink_to(tmp_path / "disk2")
    assert corpus_root(tmp_path / "data") == link
    assert tree(corpus_root(tmp_path / "data")) == tree(small_corpus)


def test_an_unpacked_corpus_moves_with_its_data_folder(tmp_path, archive) -> None:
    from pipeline.corpus.download import corpus_root

    zip_path = tmp_path / "corpus.zip"
    zip_path.write_bytes(archive)
    download(data_dir=tmp_path / "data", source=str(zip_path))
    (tmp_path / "data").rename(tmp_path / "moved")
    assert corpus_root(tmp_path / "moved") == tmp_path / "moved" / "ravdess"


def test_a_server_error_is_retried_within_the_run(tmp_path, runner, archive) -> None:
    data_dir = tmp_path / "data"
    with ArchiveServer(archive, statuses=(503,)) as server:
        result = _cli_download(runner, data_dir, server.url)
    assert result.exit_code == 0, result.output
    assert server.ranges == [None, None]
    [line] = [line for line in result.output.splitlines() if "HTTP 503" in line]
    assert line.endswith("starting again (attempt 2 of 3)")
    assert (data_dir / "downloads" / ARCHIVE).read_bytes() == archive


def test_a_resume_answered_with_another_range_starts_over(tmp_path, archive) -> None:
    """A 206 whose Content-Range does not start where the .part ends must not be appended:
    the .part is dropped and the archive fetched from the start."""
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    half = len(archive) // 2
    (downloads / f"{ARCHIVE}.part").write_bytes(archive[:half])
    with ArchiveServer(archive, honour_range="wrongly") as server:
        download(data_dir=tmp_path / "data", source=server.url)
    assert server.ranges == [f"bytes={half}-", None]
    assert (downloads / ARCHIVE).read_bytes() == archive
