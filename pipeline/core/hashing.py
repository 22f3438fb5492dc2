"""Cache keys: short sha256 hashes of objects (their stable JSON), of files, and of the
source code a stage's output depends on (``code_hash``: editing that code makes the output
stale, as DVC keys a stage by its command and dependencies)."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline import __version__

CODE_VERSION = __version__

# Modules that move files, lock, log and report, but compute nothing a stage's output
# holds: left out of code hashes, so rewording a message re-extracts and retrains nothing.
# What download and index decide (which clips, their labels and audio) is keyed by
# content instead (``pipeline.corpus.index.clips_hash``).
NO_EFFECT = frozenset((
    "pipeline.training.devices", "pipeline.corpus.download", "pipeline.core.errors",
    "pipeline.core.faults", "pipeline.corpus.index", "pipeline.core.layout",
    "pipeline.core.locks", "pipeline.cli.options", "pipeline.core.progress",
    "pipeline.corpus.scan", "pipeline.core.atomic", "pipeline.core.hashing"))


def stable_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that cache keys hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_obj(obj: Any) -> str:
    """Short sha256 of an object's stable JSON form."""
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()[:16]


@functools.cache
def code_hash(module: str) -> str:
    """A short sha256 over the source of ``module`` (``pipeline.training.train``, say) and
    of every module ``code_modules`` finds it depends on. Part of every stage's cache key: editing
    the code that produced an output makes it stale."""
    digest = hashlib.sha256()
    for name, source in sorted(code_modules(module).items()):
        digest.update(name.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()[:16]


def code_modules(module: str) -> dict[str, bytes]:
    """``{name: source bytes}`` of ``module`` and every ``pipeline`` module it imports,
    directly or through others, at any level of the file (imports are read statically,
    not run), except those in ``NO_EFFECT``."""
    package = Path(__file__).parents[1]
    seen: dict[str, bytes] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = package.joinpath(*name.split(".")[1:]).with_suffix(".py")
        if name in seen or not path.is_file():
            continue
        seen[name] = path.read_bytes()
        todo += [dep for dep in _pipeline_imports(seen[name]) if dep not in NO_EFFECT]
    return seen


def _pipeline_imports(source: bytes) -> set[str]:
    """Names of the ``pipeline`` modules a source file imports (``from pipeline.core import
    x`` counts ``pipeline.core`` and ``pipeline.core.x``; a name that is not a module's file
    is dropped by the caller)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "pipeline" or node.module.startswith("pipeline."):
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def hash_file(path: Path, *, algorithm: str = "sha256", chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
