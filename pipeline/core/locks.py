"""One job at a time per output: a lock file that names its holder.

``job_lock(folder, job)`` takes an exclusive ``flock`` on ``<folder>/.lock`` for the
duration of the block and writes the holder's pid, host, command and start time into
it. A second process asking for the same lock is refused at once with ``LockedError``,
naming the lock file and the holder. The kernel drops an ``flock`` when its process dies
(even by ``kill -9``), so a lock left by a dead process is simply taken over: no stale
locks, no timeouts to guess.

The lock is per job: in a ``torchrun`` job only rank 0 takes it (``RANK`` / ``LOCAL_RANK``
unset or 0), and the other ranks of the same job work under it.

Used by ``extract`` (the feature store) and ``train`` (each run folder); ``output_lock``
holds a file's own lock the same way (``predict --output``: ``pipeline.inference.sink``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from pipeline.core.errors import PipelineError

LOCK_NAME = ".lock"


class LockedError(PipelineError):
    """Another live process holds the lock of the same job."""


def _rank() -> int:
    """This process's torchrun rank (0 outside torchrun)."""
    value = os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "0"
    if not value.isdigit():
        raise PipelineError(f"RANK={value!r} is not a process rank: unset it, or run under "
                            "torchrun, which sets it")
    return int(value)


@contextlib.contextmanager
def job_lock(folder: Path, job: str) -> Iterator[Path | None]:
    """Hold ``<folder>/.lock`` for the block (see module docstring); yields its path (None
    on a non-zero torchrun rank). Raises ``LockedError`` naming the lock and its holder."""
    if _rank() != 0:
        yield None
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = _take(path, lambda holder: (
        f"{path} is held by {holder}: another {job} is writing here; wait for it to finish "
        "or stop it (a lock left by a dead process is taken over by itself)"))
    try:
        yield path
    finally:
        handle.close()  # releases the flock


@contextlib.contextmanager
def output_lock(output: Path, option: str = "--output") -> Iterator[Path]:
    """Hold ``.<name>.lock`` beside the file ``output`` for the block, so that one process
    at a time writes it; the lock file is removed on the way out. Raises ``LockedError``
    naming ``output``, the holder (pid, host, command, start) and the fix."""
    output = Path(output)
    path = output.with_name(f".{output.name}.lock")
    handle = _take(path, lambda holder: (
        f"{option} {output} is being written by {holder}: wait for that run to finish, stop "
        f"it, or choose another {option}"))
    try:
        yield path
    finally:
        try:
            path.unlink()  # while still held: a waiting process retries on the new file
        except OSError:
            pass
        handle.close()


def _take(path: Path, refusal):
    """The open lock file at ``path``, its ``flock`` taken and its holder written; raises
    ``LockedError(refusal(holder))`` when another process holds it. A lock file removed by
    its last holder between our open and our flock is opened again."""
    import fcntl

    while True:
        try:
            handle = open(path, "a+")
        except OSError as exc:
            raise LockedError(f"cannot open the lock {path} ({exc.strerror or exc}): another "
                              "user's job may own this folder; use your own folder") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise LockedError(refusal(holder)) from None
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # we locked a file its holder had just removed: take the new one
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()} "
                 f"('{' '.join(sys.argv)[:200]}', since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    handle.flush()
    return handle
