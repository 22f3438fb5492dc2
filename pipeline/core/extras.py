"""Which optional part of the install ("extra") a package comes with, and the one-line
error that names it.

The plain install (``pip install ser-pipeline``) scores: ``predict`` and ``evaluate
--bundle`` with the shipped model's ONNX form, no torch. The stages that train, read the
feature store or write bundles need ``[train]`` (torch, h5py, safetensors); exporting to
ONNX ``[onnx]``; the HTTP service ``[serve]``; a Dask cluster ``[dask]``; plots
``[plot]``. A command that reaches for a package its install lacks stops with
``missing_extra``'s message instead of a traceback."""

from __future__ import annotations

import importlib.util

from pipeline.core.errors import PipelineError

# top-level import name -> the extra that installs it (setup.cfg's extras_require)
EXTRA_OF = {"torch": "train", "h5py": "train", "safetensors": "train",
            "onnx": "onnx", "onnxscript": "onnx",
            "fastapi": "serve", "uvicorn": "serve", "multipart": "serve",
            "python_multipart": "serve", "starlette": "serve",
            "dask": "dask", "distributed": "dask", "matplotlib": "plot"}


def install_hint(extra: str) -> str:
    """The pip command that adds ``extra``: ``pip install 'ser-pipeline[train]'``."""
    return f"pip install 'ser-pipeline[{extra}]'"


def missing_extra(exc: ImportError, what: str) -> PipelineError | None:
    """A ``PipelineError`` saying that ``what`` (e.g. ``"ser train"``) needs the package
    ``exc`` found missing and which extra installs it; ``None`` when the missing module is
    not one an extra provides (a broken install, not a choice: left to surface as is)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRA_OF.get(name)
    if extra is None:
        return None
    return PipelineError(f"{what} needs {name}, which this install leaves out: "
                         f"{install_hint(extra)}")


def first_missing(*modules: str) -> str | None:
    """The first of ``modules`` (top-level import names) that is not installed, or None;
    imports nothing (a lookup)."""
    return next((name for name in modules if importlib.util.find_spec(name) is None), None)


def require(what: str, *modules: str) -> None:
    """Raise ``missing_extra``'s error before any work starts when one of ``modules`` (top
    level import names in ``EXTRA_OF``) is not installed; imports nothing (a lookup)."""
    name = first_missing(*modules)
    if name is not None:
        raise missing_extra(ModuleNotFoundError(name=name), what)
