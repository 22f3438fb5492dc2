"""Where the model a command names is: ``shipped`` (the model in this package), ``latest``
(the newest export) or a path. The shipped model is kept in two forms: the safetensors
bundle training wrote (scored with torch) and its ONNX conversion (scored with
onnxruntime alone, what the plain install has)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipeline.core import layout
from pipeline.core.errors import BundleError

SHIPPED = Path(__file__).parent / "shipped" / f"ravdess-cnn{layout.BUNDLE_SUFFIX}"
# the same model converted with 'ser export --format onnx --bundle shipped' (the same
# metadata; probabilities within 1e-4 on real speech, tests/test_locate.py): what
# 'shipped' scores wherever onnxruntime is installed, so every install scores it alike
SHIPPED_ONNX = SHIPPED.with_suffix(".onnx")


def resolve(bundle: str | Path | None, *, artifacts_dir: Path = Path("artifacts"),
            onnx: bool = True) -> Path:
    """``None`` or ``shipped`` -> the shipped model (``SHIPPED_ONNX`` where onnxruntime is
    installed and ``onnx``, else the ``SHIPPED`` bundle, which needs torch); ``latest`` ->
    the newest export; else a path."""
    if bundle is None or str(bundle) == "shipped":
        if onnx and SHIPPED_ONNX.exists() and importlib.util.find_spec("onnxruntime"):
            return SHIPPED_ONNX
        if not SHIPPED.exists():
            raise BundleError(f"no shipped bundle at {SHIPPED}: pass --bundle PATH or run "
                              "'ser export' and use --bundle latest")
        return SHIPPED
    if str(bundle) == "latest":
        exports = sorted(layout.bundles_dir(artifacts_dir).glob(f"*{layout.BUNDLE_SUFFIX}"),
                         key=lambda p: p.stat().st_mtime)
        if not exports:
            raise BundleError(f"no exported bundle in {layout.bundles_dir(artifacts_dir)}: "
                              "run 'ser export' first")
        return exports[-1]
    return Path(bundle)
