"""The ``download`` stage: fetch (or point at) the RAVDESS speech corpus.

Sources:

- default: the official Zenodo archive, streamed to ``<data>/downloads/*.part`` with
  resume (HTTP Range), verified by size and MD5 before anything is unpacked;
- a local zip (a manual download or a Kaggle copy): unpacked safely;
- a local folder holding ``Actor_XX/`` folders of ``.wav`` / ``.flac`` clips: used in place,
  never copied.

The stage writes ``<data>/download.json`` last; it names the corpus root the ``index``
stage walks. A zip is unpacked to a temporary folder and renamed to ``<data>/ravdess``,
so a half-unpacked corpus is never trusted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline import layout
from pipeline.errors import DownloadError
from pipeline.progress import bar, log
from pipeline.stages import manifest, read_json, stable_json, write_json_atomic, write_text_atomic

OFFICIAL_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip"
OFFICIAL_SIZE = 208_468_073
OFFICIAL_MD5 = "bc696df654c87fed845eb13823edef8a"
SOURCE_HINT = ("download the archive by hand from Zenodo record 1188976 (or use a local copy) "
               "and run 'ser download --source PATH' with the zip or a folder of Actor_XX/")
_CHUNK = 1 << 20
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
    """The corpus folder recorded by the last successful download."""
    record = read_json(layout.download_manifest(data_dir))
    if not record or not Path(record.get("root", "")).is_dir():
        raise DownloadError(f"no corpus recorded in {layout.download_manifest(data_dir)}: "
                            "run 'ser download' (or 'ser download --source PATH') first")
    return Path(record["root"])


def download(*, data_dir: Path, source: str | None = None, remote: Remote = Remote(),
             force: bool = False) -> DownloadResult:
    """Make the corpus available under ``data_dir`` and record where it is."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    source_text = str(Path(source).resolve()) if source and not _is_url(source) else (source or remote.url)
    done = read_json(layout.download_manifest(data_dir))
    if (not force and done and done.get("source") == source_text
            and Path(done.get("root", "")).is_dir()):
        log.info("corpus already in place at %s (from %s); nothing to do (--force redoes it)",
                 done["root"], source_text)
        return DownloadResult(Path(done["root"]), source_text, skipped=True)

    if not (source and Path(source).is_dir()):  # a zip or URL unpacks to data_dir/ravdess
        check_replaceable(data_dir / "ravdess", force=force)  # before fetching anything
    if source and not _is_url(source):
        path = Path(source)
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
    write_json_atomic(layout.download_manifest(data_dir),
                      manifest(stage="download", key=source_text, source=source_text,
                               kind=kind, root=str(root.resolve())))
    log.info("corpus ready at %s (%s source)", root, kind)
    return DownloadResult(root.resolve(), source_text, skipped=False)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def find_actor_root(folder: Path) -> Path:
    """The folder that holds ``Actor_XX/`` folders: ``folder`` itself or one below it."""
    for candidate in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if any(child.is_dir() and child.name.startswith("Actor_") for child in candidate.iterdir()):
            return candidate.resolve()
    raise DownloadError(f"{folder}: no Actor_XX/ folders in it or one level below; "
                        "point --source at the folder that holds Actor_01/, Actor_02/, ...")


def fetch(remote: Remote, *, downloads: Path, force: bool = False) -> Path:
    """Stream ``remote`` to ``downloads/<name>``, resuming a ``.part`` file; verify it."""
    downloads.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(remote.url.split("?")[0]).name or "corpus.zip"
    final, part = downloads / name, downloads / f"{name}.part"
    if force:
        final.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    if final.exists():
        return final
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have > remote.size:
        part.unlink()
        have = 0
    if remote.size is None or have < remote.size:
        _stream(remote.url, part, have=have, expected=remote.size)
    verify(part, remote)
    os.replace(part, final)
    return final


def _stream(url: str, part: Path, *, have: int, expected: int | None) -> None:
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked past the end: the part is already whole
            return
        raise DownloadError(f"{url}: server answered HTTP {exc.code}; {SOURCE_HINT}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}): no network? {SOURCE_HINT}") from exc
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("server ignored the resume request; starting %s again", part.name)
            have = 0
        if have:
            log.info("resuming %s at %d bytes", part.name, have)
        length = response.headers.get("Content-Length")
        body_bytes = int(length) if length and length.isdigit() else None
        total = expected or (have + (body_bytes or 0)) or None
        received = 0
        try:
            with open(part, "ab" if resumed else "wb") as out, \
                    bar(total=total, desc="download", unit="B", unit_scale=True) as progress:
                progress.update(have)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DownloadError(f"disk full while writing {part}: free space and rerun "
                                    "'ser download' (it resumes where it stopped)") from exc
            raise DownloadError(f"transfer of {url} broke off ({exc}); rerun 'ser download' "
                                "to resume") from exc
    # http.client ends a body silently when the connection closes early; without a known
    # size or MD5 nothing else would notice, and the short file would become the archive.
    if body_bytes is not None and received < body_bytes:
        raise DownloadError(f"transfer of {url} broke off after {have + received} bytes "
                            f"(of {have + body_bytes}); rerun 'ser download' to resume")


def verify(part: Path, remote: Remote) -> None:
    """Check size and MD5; a wrong file is moved aside so nothing trusts it."""
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(f"{part}: {size} bytes, expected {remote.size}: the transfer was "
                            "cut off; rerun 'ser download' to resume")
    if remote.md5 is None:
        return
    digest = hashlib.md5()
    with open(part, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != remote.md5:
        part.replace(part.with_suffix(".bad"))
        raise DownloadError(f"{part}: MD5 {digest.hexdigest()} does not match {remote.md5}; "
                            f"moved it to {part.with_suffix('.bad').name}. Rerun "
                            f"'ser download' to fetch it again, or {SOURCE_HINT}")


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
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive}: damaged zip ({exc}); {SOURCE_HINT}") from exc
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise DownloadError(f"disk full while unpacking {archive} into {data_dir}: free "
                                "space and rerun 'ser download'") from exc
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    root_inside = find_actor_root(staging).relative_to(staging.resolve())
    write_text_atomic(staging / UNPACKED_MARK, stable_json(
        {"archive": str(archive), "files": _listing(staging)}))
    if is_ours(target):
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():  # only reached with force: kept, aside
        aside = target.with_name(f"{target.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(target, aside)
        log.warning("moved the previous %s aside to %s (nothing was deleted)", target, aside)
    os.replace(staging, target)
    return (target / root_inside).resolve()


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
