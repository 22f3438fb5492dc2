"""The ``download`` stage: fetch (or point at) the RAVDESS speech corpus.

Sources:

- default: the official Zenodo archive (or a URL), streamed to ``<data>/downloads/*.part``
  with resume (HTTP Range, see ``fetch``), verified before anything is unpacked;
- a local zip (a manual download or a Kaggle copy): unpacked safely;
- a folder holding ``Actor_XX/`` folders of ``.wav`` / ``.flac`` clips: used in place.

The stage writes ``<data>/download.json`` last, naming the corpus root (``corpus_root``)
as given and absolute. A zip is unpacked to a temporary folder and renamed to
``<data>/ravdess``, so a half-unpacked corpus is never trusted.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.core import layout
from pipeline.core.atomic import manifest, read_json, write_json_atomic, write_text_atomic
from pipeline.core.errors import DownloadError
from pipeline.core.hashing import hash_file, stable_json
from pipeline.core.progress import bar, log

OFFICIAL_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip"
OFFICIAL_SIZE = 208_468_073
OFFICIAL_MD5 = "bc696df654c87fed845eb13823edef8a"
SOURCE_HINT = ("download the archive by hand from Zenodo record 1188976 (or use a local copy) "
               "and run 'ser download --source PATH' with the zip or a folder of Actor_XX/")
_CHUNK = 1 << 20
RETRY_ATTEMPTS = 3  # attempts per run at a transfer that breaks off (pip retries alike)
RETRY_PAUSE_S = 2.0  # pause before attempt k+1: k times this
# Written into every folder ``unpack`` creates, listing the files it unpacked: only such
# a folder, unchanged, is ever replaced (a stage may only remove what it created itself).
UNPACKED_MARK = ".ser-pipeline-unpacked"


@dataclass(frozen=True)
class Remote:
    """An archive to fetch: where it is and what it must be."""

    url: str = OFFICIAL_URL
    size: int | None = OFFICIAL_SIZE
    md5: str | None = OFFICIAL_MD5


@dataclass(frozen=True)
class DownloadResult:
    root: Path
    source: str
    skipped: bool


def corpus_root(data_dir: Path) -> Path:
    """The corpus folder recorded by the last successful download (absolute). Raises
    ``DownloadError``: "no corpus recorded" without a readable ``<data>/download.json``;
    "the recorded corpus folder X no longer exists (...)" when that folder has gone."""
    record = read_json(layout.download_manifest(data_dir))
    root = _recorded_root(record, Path(data_dir)) if isinstance(record, dict) else None
    if root is None:
        raise DownloadError(f"no corpus recorded in {layout.download_manifest(data_dir)}: "
                            "run 'ser download' (or 'ser download --source PATH') first")
    if not root.is_dir():
        when = str(record.get("written_at", "an unknown date"))[:16].replace("T", " ")
        given = record.get("source_given") or record.get("source")
        again = "'ser download'" if given == OFFICIAL_URL else "'ser download --source PATH'"
        raise DownloadError(f"the recorded corpus folder {root} no longer exists (recorded by "
                            f"'ser download' on {when} from {given}): restore it or run "
                            f"{again} again")
    return root


def _recorded_root(record: dict, data_dir: Path) -> Path | None:
    """The corpus by ``record``: under ``data_dir`` if unpacked there, else as given."""
    if record.get("root_in_data"):
        return _absolute(data_dir) / record["root_in_data"]
    return Path(record["root"]) if record.get("root") else None


def _absolute(path: Path | str) -> Path:
    """``path`` made absolute against the current folder, links left as they are."""
    return Path(os.path.abspath(path))


def download(*, data_dir: Path, source: str | None = None, remote: Remote = Remote(),
             force: bool = False) -> DownloadResult:
    """Make the corpus available under ``data_dir`` and record where it is: ``source_given``
    as typed, ``source`` absolute (the rerun key), ``root`` the absolute corpus folder (and
    ``root_in_data`` when under ``data_dir``). Raises ``DownloadError`` naming the fix."""
    data_dir = _absolute(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    source_text = str(_absolute(source)) if source and not _is_url(source) else source or remote.url
    done = read_json(layout.download_manifest(data_dir))
    recorded = _recorded_root(done, data_dir) if isinstance(done, dict) else None
    if not force and recorded and done.get("source") == source_text and recorded.is_dir():
        log.info("corpus already in place at %s (from %s); nothing to do (--force redoes it)",
                 recorded, source_text)
        return DownloadResult(recorded, source_text, skipped=True)

    if not (source and Path(source).is_dir()):  # a zip or URL unpacks to data_dir/ravdess
        check_replaceable(data_dir / "ravdess", force=force)  # before fetching anything
    if source and not _is_url(source):
        path = _absolute(source)
        if path.is_dir():
            root = find_actor_root(path)
            kind = "folder"
        elif path.is_file():
            root = unpack(path, data_dir=data_dir, force=force)
            kind = "zip"
        else:
            raise DownloadError(f"--source {source}: no such file or folder; {SOURCE_HINT}")
    else:
        if source:
            remote = Remote(url=source, size=None, md5=None) if source != remote.url else remote
        archive = fetch(remote, downloads=data_dir / "downloads", force=force)
        root = unpack(archive, data_dir=data_dir, force=force)
        kind = "url"
    inside = {"root_in_data": root.relative_to(data_dir).as_posix()} if kind != "folder" else {}
    write_json_atomic(layout.download_manifest(data_dir),
                      manifest(stage="download", key=source_text, source=source_text,
                               source_given=source or remote.url, kind=kind, root=str(root),
                               **inside))
    log.info("corpus ready at %s (%s source)", root, kind)
    return DownloadResult(root, source_text, skipped=False)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def find_actor_root(folder: Path) -> Path:
    """The folder (absolute) that holds ``Actor_XX/`` folders: ``folder`` or one below."""
    for candidate in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if any(child.is_dir() and child.name.startswith("Actor_") for child in candidate.iterdir()):
            return _absolute(candidate)
    raise DownloadError(f"{folder}: no Actor_XX/ folders in it or one level below; "
                        "point --source at the folder that holds Actor_01/, Actor_02/, ...")


class _BrokeOff(Exception):
    """One attempt ended before the archive was whole; the message says how."""


def fetch(remote: Remote, *, downloads: Path, force: bool = False) -> Path:
    """Stream ``remote`` to ``downloads/<name>`` through ``<name>.part``; the final path.
    A transfer that breaks off (closed before its length, a chunked stream cut, a read
    error, HTTP 5xx, no length told and no whole zip) is resumed by HTTP Range (started
    over on a 200) up to ``RETRY_ATTEMPTS`` times, a warning each; then ``DownloadError``
    says a rerun resumes the ``.part``. Only a ``verify``-ed ``.part`` is renamed; a final
    file that is no zip of the right size (an older version's cut) is set aside, refetched."""
    downloads.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(remote.url.split("?")[0]).name or "corpus.zip"
    final, part = downloads / name, downloads / f"{name}.part"
    if force:
        final.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    if final.exists() and zipfile.is_zipfile(final) and remote.size in (None, _size(final)):
        return final
    if final.exists():
        os.replace(final, downloads / f"{name}.bad")
        log.warning("%s was no whole zip: moved it to %s.bad; fetching it again", final, name)
    if remote.size is not None and _size(part) > remote.size:
        part.unlink()
    try:
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                _attempt(remote, part, first=attempt == 1)
                break
            except _BrokeOff as cut:
                have = _size(part)
                if attempt == RETRY_ATTEMPTS:
                    kept = f"{have} bytes kept in {part}" if have else "nothing kept"
                    raise DownloadError(f"transfer of {remote.url} broke off {attempt} times "
                                        f"(last: {cut}; {kept}); rerun 'ser download' to "
                                        "resume where it stopped") from None
                log.warning("transfer of %s broke off after %d bytes (%s); %s (attempt %d of "
                            "%d)", name, have, cut, "resuming" if have else "starting again",
                            attempt + 1, RETRY_ATTEMPTS)
                time.sleep(RETRY_PAUSE_S * attempt)
    finally:  # an empty .part helps no rerun
        if _size(part) == 0:
            part.unlink(missing_ok=True)
    verify(part, remote)
    os.replace(part, final)
    return final


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _attempt(remote: Remote, part: Path, *, first: bool) -> None:
    """One request for what ``part`` lacks; ``_BrokeOff`` when it ends short."""
    have = _size(part)
    whole = remote.size is not None and have >= remote.size
    response = None if whole else _open(remote.url, have, first=first)
    if response is None:  # whole already, or 416 to a resume: verify decides
        return
    with response:
        start, end = _resume_point(response, part, have)
        if first and start:  # later attempts already said so in their one line
            log.info("resuming %s at %d bytes", part.name, have)
        received = _stream(response, part, start=start, end=end)
    if end is not None and start + received < end:
        raise _BrokeOff(f"the connection closed at byte {start + received} of {end}")
    if end is None and not response.chunked and not zipfile.is_zipfile(part):
        raise _BrokeOff("no length was announced and the connection closed before the "
                        "archive was whole")


def _open(url: str, have: int, *, first: bool):
    """The response to a GET of ``url`` from byte ``have``; None for 416 to a resume."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return None
        if exc.code >= 500 or exc.code == 429:
            raise _BrokeOff(f"the server answered HTTP {exc.code}") from None
        raise DownloadError(f"{url}: server answered HTTP {exc.code}; {SOURCE_HINT}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if not first:  # it answered a moment ago: worth another attempt
            raise _BrokeOff(f"cannot reach the server: {reason}") from None
        raise DownloadError(f"cannot reach {url} ({reason}): no network? {SOURCE_HINT}") from exc


def _resume_point(response, part: Path, have: int) -> tuple[int, int | None]:
    """(byte the body starts at, bytes the file has when the body is whole, if told)."""
    length = response.headers.get("Content-Length", "")
    if response.status == 206:
        told = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)",
                            response.headers.get("Content-Range", "").strip())
        if not told or int(told[1]) != have:  # a range we did not ask for: start over
            part.unlink(missing_ok=True)
            raise _BrokeOff(f"asked from byte {have}, sent {response.headers['Content-Range']}")
        return have, (int(told[2]) if told[2].isdigit()
                      else have + int(length) if length.isdigit() else None)
    if have:
        log.info("server ignored the resume request; starting %s again", part.name)
    return 0, int(length) if length.isdigit() else None


def _stream(response, part: Path, *, start: int, end: int | None) -> int:
    """Write the body to ``part`` after its first ``start`` bytes; the bytes written. A
    failed read raises ``_BrokeOff`` once what did arrive (``read1``: even cut chunks) is in."""
    received, cut = 0, None
    try:
        with open(part, "ab" if start else "wb") as out, \
                bar(total=end, desc="download", unit="B", unit_scale=True) as progress:
            progress.update(start)
            while cut is None:
                try:
                    piece = response.read1(_CHUNK)
                except http.client.IncompleteRead as exc:
                    piece, cut = exc.partial, "the stream was cut mid-chunk"
                except (http.client.HTTPException, OSError) as exc:
                    piece, cut = b"", f"{type(exc).__name__}: {exc}"
                if not piece and cut is None:
                    break
                out.write(piece)
                received += len(piece)
                progress.update(len(piece))
    except OSError as exc:
        problem = "disk full" if exc.errno == errno.ENOSPC else f"cannot write ({exc})"
        raise DownloadError(f"{problem} while writing {part}: free space or fix it and rerun "
                            "'ser download' (it resumes where it stopped)") from exc
    if cut is not None:
        raise _BrokeOff(cut)
    return received


def verify(part: Path, remote: Remote) -> None:
    """Check size and MD5 (when known) and that it is a readable zip; a file that fails
    is moved aside to ``<name>.bad`` (``DownloadError`` names both) so nothing trusts it."""
    size, bad = part.stat().st_size, part.with_suffix(".bad")
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"{size} bytes, expected {remote.size}"
    elif remote.md5 is not None and (digest := hash_file(part, algorithm="md5")) != remote.md5:
        problem = f"MD5 {digest} does not match {remote.md5}"
    elif not _readable_zip(part):
        problem = "not a zip archive (truncated, damaged or another format)"
    if problem is None:
        return
    part.replace(bad)
    raise DownloadError(f"{part}: {problem}; moved it to {bad.name}. Rerun 'ser download' "
                        f"to fetch it again, or {SOURCE_HINT}")


def _readable_zip(path: Path) -> bool:
    """A zip (what ``zipfile.is_zipfile`` checks) whose every member's CRC holds."""
    try:
        with zipfile.ZipFile(path) as bundle:
            return bundle.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def unpack(archive: Path, *, data_dir: Path, force: bool = False) -> Path:
    """Unpack a zip into ``data_dir/ravdess`` safely; returns the folder holding Actor_XX/.

    Every entry is checked before anything is written: an absolute path, a ``..`` part
    or a symbolic link refuses the whole archive. An existing ``data_dir/ravdess`` is
    replaced only when this stage unpacked it and nothing in it changed (``is_ours``);
    with ``force`` a foreign one is moved aside (``<name>.replaced-<date>``), never
    deleted; otherwise ``DownloadError`` names it and ``--force``, before any work.
    """
    if not zipfile.is_zipfile(archive):
        raise DownloadError(f"{archive}: not a zip archive (truncated or another format); "
                            f"{SOURCE_HINT}")
    target = data_dir / "ravdess"
    check_replaceable(target, force=force)
    staging = data_dir / ".ravdess.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            for member in members:
                _check_member(member, archive)
            bad = bundle.testzip()
            if bad is not None:
                raise DownloadError(f"{archive}: entry {bad} is corrupt; fetch the archive again")
            staging.mkdir(parents=True)
            with bar(total=len(members), desc="unpack", unit="file") as progress:
                for member in members:
                    bundle.extract(member, staging)
                    progress.update(1)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, zipfile.BadZipFile):
            raise DownloadError(f"{archive}: damaged zip ({exc}); {SOURCE_HINT}") from exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DownloadError(f"disk full while unpacking {archive} into {data_dir}: free "
                                "space and rerun 'ser download'") from exc
        raise
    root_inside = find_actor_root(staging).relative_to(_absolute(staging))
    write_text_atomic(staging / UNPACKED_MARK, stable_json(
        {"archive": str(archive), "files": _listing(staging)}))
    if is_ours(target):
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():  # only reached with force: kept, aside
        aside = target.with_name(f"{target.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(target, aside)
        log.warning("moved the previous %s aside to %s (nothing was deleted)", target, aside)
    os.replace(staging, target)
    return _absolute(target / root_inside)


def _listing(folder: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``folder`` but the marker."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != UNPACKED_MARK}


def is_ours(target: Path) -> bool:
    """Whether ``target`` is a folder this stage unpacked and nobody changed since: its
    ``UNPACKED_MARK`` lists exactly the files (and sizes) it holds."""
    if target.is_symlink() or not target.is_dir():
        return False
    record = read_json(target / UNPACKED_MARK)
    return bool(record) and record.get("files") == _listing(target)


def check_replaceable(target: Path, *, force: bool) -> None:
    """Raise ``DownloadError`` naming ``target`` and ``--force`` when it exists and is not
    ours (``is_ours``), unless ``force`` (then ``unpack`` moves it aside, never deletes)."""
    if (target.exists() or target.is_symlink()) and not force and not is_ours(target):
        raise DownloadError(f"{target} exists and was not unpacked by this tool, or holds "
                            "files added or changed since, so it may hold your own work: move "
                            "it away, or rerun with --force (it is then moved aside to "
                            f"{target.name}.replaced-<date>, not deleted)")


def _check_member(member: zipfile.ZipInfo, archive: Path) -> None:
    name = member.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]) or is_link:
        raise DownloadError(f"{archive}: refused unsafe entry {name!r} (it would land outside "
                            "the target folder); use an archive from a trusted source")
