"""A bundle's header read without loading it: the safetensors layout puts an 8-byte
little-endian length and a JSON header before the tensors, so the metadata (and the
identity every output names) is read without torch or the weights: what ``ser
--version`` and ``export``'s "is this export current?" need."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.inference.scorer import bundle_identity


def header_strings(path: Path) -> dict:
    """A safetensors file's string metadata, read from its header alone (an 8-byte
    little-endian length, then JSON). Raises ``OSError`` / ``ValueError`` / ``KeyError``."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        return json.loads(handle.read(min(size, 1 << 24)))["__metadata__"]


def header_identity(path: Path) -> str:
    """``Scorer.identity`` of a bundle read from its header alone (no torch, no
    weights; the safetensors layout: an 8-byte little-endian length, then JSON), or a
    phrase saying why there is none."""
    try:
        strings = header_strings(path)
        return bundle_identity(path, json.loads(strings["metadata"]), strings["checksum"])
    except FileNotFoundError:
        return f"missing (no file at {Path(path).resolve()})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable ({Path(path).resolve()} is not a bundle of this tool)"
