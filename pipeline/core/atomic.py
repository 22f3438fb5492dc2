"""Writing outputs so that a crash never leaves a half-written file under its final name
(``atomic_path``: a locked temporary beside it, renamed into place), strict JSON (no NaN),
and the ``stage.json``-style manifest a stage writes last and a rerun compares against
(DVC lock file, lhotse ``.completed``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import numbers
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from pipeline.core import faults
from pipeline.core.hashing import CODE_VERSION

def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (also in nested dicts, lists, tuples and
    numpy scalars) replaced by None, so that it serialises as strict JSON ``null``: a
    value that is undefined (the recall of an emotion with no clips, say) is not a number."""
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(value) for value in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):
        return float(obj) if math.isfinite(obj) else None
    return obj


def strict_json(obj: Any, **kwargs: Any) -> str:
    """JSON that strict readers accept: no ``NaN`` / ``Infinity`` (they become ``null``,
    see ``finite_or_null``); raises ``ValueError`` if one slips through."""
    return json.dumps(finite_or_null(obj), allow_nan=False, default=str, **kwargs)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success rename it into place.

    The temporary file is removed if the block raises, so a crash never leaves a file
    under the final name that a later run would trust.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=final.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)  # marks it live for remove_stale_temporaries; held to the end
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        faults.point(f"write:{final.name}")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def remove_stale_temporaries(final: Path) -> None:
    """Remove ``atomic_path`` temporaries of ``final`` (``.<name>.<pid>.<random>.tmp``)
    left by a writer that died mid-write. A live writer holds an ``flock`` on its
    temporary, so only files nobody holds are removed (pids are not trusted: a pid can be
    reused, or belong to another host or container sharing the folder)."""
    for leftover in Path(final).parent.glob(f".{Path(final).name}.*.tmp"):
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            leftover.unlink(missing_ok=True)
        except OSError:
            pass  # held: a live writer's
        finally:
            os.close(fd)


def check_writable(path: Path, *, option: str = "--output") -> None:
    """Raise ``PipelineError`` naming ``path`` and ``option`` unless a file can be written
    beside it (its folder is created if missing; ``layout.check_output_folder``): checked
    before long work, so the work is not lost when the result cannot be saved."""
    from pipeline.core.layout import check_output_folder

    check_output_folder(Path(path).parent, option=option, given=Path(path))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically. A file name read from a non-UTF-8 path (Python holds
    its raw bytes as surrogate escapes) is written back as those same bytes: lossless."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Strict JSON (``strict_json``: ``null`` for NaN / infinity), written atomically."""
    write_text_atomic(path, strict_json(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict | None:
    """The JSON object at ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def manifest(*, stage: str, key: str, **fields: Any) -> dict:
    """A manifest dict with the fields every stage records."""
    return {
        "stage": stage,
        "key": key,
        "code_version": CODE_VERSION,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }
