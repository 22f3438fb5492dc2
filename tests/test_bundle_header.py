"""pipeline/inference/bundle_header.py: a bundle's identity from its header alone."""

from __future__ import annotations

from pipeline.inference.bundle import load
from pipeline.inference.locate import SHIPPED
from pipeline.inference.bundle_header import header_identity


def test_the_shipped_bundles_identity_from_its_header_is_the_loaded_ones(tmp_path):
    assert header_identity(SHIPPED) == load(SHIPPED).identity
    assert header_identity(SHIPPED).startswith("ravdess-cnn@")
    (tmp_path / "x.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    assert header_identity(tmp_path / "x.safetensors").startswith("unreadable")
    assert header_identity(tmp_path / "none.safetensors").startswith("missing")
