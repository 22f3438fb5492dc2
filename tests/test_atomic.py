"""Tests of pipeline/core/atomic.py's writers: strict JSON (null, never NaN) and lossless text."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pipeline.core.atomic import (
    finite_or_null,
    strict_json,
    write_json_atomic,
    write_text_atomic,
)


def _strict_load(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_undefined_values_become_null_at_any_depth():
    report = {"ua": float("nan"), "recall": [1.0, np.float32("nan"), np.float64(np.inf)],
              "nested": {"f1": -float("inf"), "n": 3, "ok": True, "pair": (0.5, np.nan)}}
    assert finite_or_null(report) == {"ua": None, "recall": [1.0, None, None],
                                      "nested": {"f1": None, "n": 3, "ok": True,
                                                 "pair": [0.5, None]}}
    assert _strict_load(strict_json(report))["nested"]["pair"] == [0.5, None]


def test_written_json_is_strict(tmp_path):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"ua": np.float32(0.25), "wa": float("nan")})
    assert _strict_load(path.read_text()) == {"ua": 0.25, "wa": None}


@pytest.mark.skipif(os.name != "posix", reason="raw-byte file names are a POSIX thing")
def test_a_non_utf8_file_name_is_written_back_byte_for_byte(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.wav"  # Latin-1, not UTF-8
    name = os.fsdecode(raw)  # how Python holds it: a surrogate escape
    out = tmp_path / "rows.csv"
    write_text_atomic(out, f"path\n{name}\n")
    assert out.read_bytes().splitlines()[1] == raw
    assert _strict_load(strict_json({"path": name}))["path"] == name  # JSON escapes it: lossless


def test_only_temporaries_nobody_holds_are_removed(tmp_path):
    import fcntl

    from pipeline.core.atomic import atomic_path, remove_stale_temporaries

    final = tmp_path / "report.json"
    dead = tmp_path / ".report.json.999999.abc.tmp"  # a writer killed mid-write
    dead.write_text("half")
    live = tmp_path / ".report.json.1.def.tmp"  # held: a writer still at work (any pid)
    live.write_text("busy")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        remove_stale_temporaries(final)
        assert not dead.exists() and live.exists()
        with atomic_path(final) as tmp:  # a write clears the dead ones itself
            tmp.write_text("{}")
        assert final.read_text() == "{}" and live.exists()
    finally:
        os.close(fd)
    remove_stale_temporaries(final)
    assert not live.exists()
