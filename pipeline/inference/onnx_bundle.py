"""The network as ONNX, for runtimes other than PyTorch: ``export --format onnx`` writes
it, ``predict --bundle model.onnx`` scores through onnxruntime.

The graph is the whole scorer network: the normalisation buffers inside, and for an
ensemble every member with their softmax averaged inside the graph. Input ``features``:
float32 ``(batch, 2, n_mels, num_frames)``, channel 0 the MFCC and 1 the log-mel (dB), both
dynamic in batch and frames; output ``log_probabilities`` ``(batch, classes)``: a softmax
of it gives the class probabilities (for one model it is the logits).

Decoding, conditioning, speech detection and features are not in the graph: they stay
this project's code (``pipeline.signal.frontend``, ``pipeline.signal.features``), and the model's
``metadata_props`` document them for other runtimes:

- ``ser_pipeline_format`` / ``format_version``: what the file is;
- ``labels``: the class order (JSON list);
- ``feature_config``: sample rate, window, STFT, mel and front-end settings (JSON);
- ``test_views``: the test-time views to average over (JSON; ``[{}]``: the window alone);
- ``metadata``: everything the safetensors bundle holds (JSON), provenance included;
- ``checksum``: SHA-256 (hex) of the whole file as written, with this value's 64
  characters replaced by zeros.

The checksum covers every byte: the weights (initializers), the graph's nodes and
attributes, and the metadata (a damaged ``labels`` would mislabel every clip). It is
computed over the bytes actually written, so verifying needs neither the ``onnx`` package
nor a re-serialization: hashing a re-serialized graph would depend on protobuf's byte
order, which is not guaranteed across versions and implementations, and could refuse an
intact file after an upgrade; hashing only the initializers would miss the rest. The
checksum's entry is located by its exact protobuf bytes (key ``checksum``, a 64-byte
value), which must occur once. Any rewrite of the file (re-saving it with another tool)
therefore invalidates it, as an edit does: like the safetensors bundle's, it is an
integrity check, not a signature. Format 1 (no checksum) is refused with the fix:
re-export, as ``pipeline.inference.bundle`` refuses its older formats.

Exporting needs the ``onnx`` extra (torch, ``onnx``, ``onnxscript``); scoring needs only
``onnxruntime``, which the plain install has: the shipped model is scored in this form
(``pipeline.inference.locate``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.core.atomic import atomic_path, strict_json
from pipeline.core.errors import BundleError
from pipeline.inference.scorer import Scorer

FORMAT = "ser-pipeline-onnx"
FORMAT_VERSION = 2  # 1: no checksum (versions before it was added)
CHECKSUM_KEY = "checksum"
PLACEHOLDER = "0" * 64
REEXPORT = ("re-export it with 'ser export --format onnx' (or 'ser export --bundle B "
            "--format onnx' from its .safetensors bundle)")
SUFFIX = ".onnx"
OPSET = 18
INSTALL = "pip install 'ser-pipeline[onnx]'"  # the exporter's packages
RUNTIME = "pip install onnxruntime"  # a dependency of the plain install, if it was removed


class OnnxNetwork:
    """An onnxruntime session that stands where the torch network does in a ``Scorer``:
    called with float32 ``(batch, 2, n_mels, num_frames)``, returns ``(batch, classes)``."""

    def __init__(self, session):
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(features,
                                                                        dtype=np.float32)})[0]


def export_onnx(scorer: Scorer, path: Path, metadata: dict) -> Path:
    """Write ``scorer``'s network to ``path`` as ONNX (opset ``OPSET``) with ``metadata``
    (a bundle's) in its ``metadata_props``; atomically. Raises ``BundleError`` with the
    install hint when the exporter's packages are missing."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
        import torch
    except ImportError:
        raise BundleError(f"--format onnx needs the onnx packages: {INSTALL}") from None
    model = scorer.model.eval()
    example = torch.zeros(2, 2, scorer.feature_config.n_mels, scorer.feature_config.num_frames)
    batch, frames = torch.export.Dim("batch", min=1), torch.export.Dim("frames", min=8)
    with _quiet_exporter():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["features"],
                                    output_names=["log_probabilities"],
                                    dynamic_shapes={"features": {0: batch, 3: frames}},
                                    verbose=False)
    proto = program.model_proto
    props = {"ser_pipeline_format": FORMAT, "format_version": str(FORMAT_VERSION),
             "labels": json.dumps(list(scorer.labels)),
             "feature_config": strict_json(metadata["feature_config"], sort_keys=True),
             "test_views": strict_json(metadata.get("test_views") or [{}]),
             "metadata": strict_json(metadata, sort_keys=True), CHECKSUM_KEY: PLACEHOLDER}
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    at = _checksum_at(data)
    if at is None:  # a weight holding the entry's exact bytes: never seen, but never guessed
        raise BundleError(f"cannot place the checksum in {path}: export again")
    data = data[:at] + _digest(data, at).encode() + data[at + len(PLACEHOLDER):]
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# the protobuf bytes of a metadata_props entry up to its value: field 1 (the key:
# tag 0x0a, length, bytes), then field 2's tag (0x12) and length (64)
_CHECKSUM_PREFIX = (b"\x0a" + bytes([len(CHECKSUM_KEY)]) + CHECKSUM_KEY.encode()
                    + b"\x12" + bytes([len(PLACEHOLDER)]))


def _checksum_at(data: bytes) -> int | None:
    """Offset in ``data`` of the checksum's 64 characters, or None unless its entry
    occurs exactly once."""
    if data.count(_CHECKSUM_PREFIX) != 1:
        return None
    at = data.find(_CHECKSUM_PREFIX) + len(_CHECKSUM_PREFIX)
    return at if at + len(PLACEHOLDER) <= len(data) else None


def _digest(data: bytes, at: int) -> str:
    """SHA-256 (hex) of ``data`` with the 64 characters at ``at`` read as zeros."""
    digest = hashlib.sha256(data[:at])
    digest.update(PLACEHOLDER.encode())
    digest.update(data[at + len(PLACEHOLDER):])
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_exporter():
    """torch's exporter logs and warns about things that do not concern this model
    (torchvision's ops, deprecations): silenced while it runs, restored after."""
    import logging
    import warnings

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def load_onnx(path: Path, *, threads: int | None = None) -> Scorer:
    """A ``Scorer`` whose network runs in onnxruntime (CPU) on ``threads`` intra-op
    threads (``None``: one per core), from a file whose checksum holds. Raises
    ``BundleError`` naming the file and the fix for one that is not this tool's ONNX model,
    is of format 1 (no checksum), or is damaged or edited (its checksum does not match),
    and with the install hint when onnxruntime is missing."""
    from pipeline.signal import views as test_views
    from pipeline.signal.features import FeatureConfig

    try:
        import onnxruntime
    except ImportError:
        raise BundleError(f"scoring {path} needs onnxruntime: {RUNTIME}") from None
    data = Path(path).read_bytes()
    at = _checksum_at(data)
    intact = at is not None and data[at:at + len(PLACEHOLDER)] == _digest(data, at).encode()
    corrupt = (f"{path} is corrupt: its weights, graph or metadata do not match the checksum "
               f"written with them (damaged in transit, or edited); {REEXPORT}")
    try:
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own types)
        if at is not None and not intact:
            raise BundleError(corrupt) from None
        raise BundleError(f"{path} is not a readable ONNX model ({type(exc).__name__}): "
                          "export one with 'ser export --format onnx'") from None
    props = session.get_modelmeta().custom_metadata_map
    if props.get("ser_pipeline_format") != FORMAT:
        raise BundleError(f"{path} is an ONNX model but not one of this tool's: export one "
                          "with 'ser export --format onnx'")
    if props.get("format_version") != str(FORMAT_VERSION):
        written_by = _written_by(props.get("metadata"))
        raise BundleError(f"{path} is a format-{props.get('format_version')} ONNX model "
                          f"(written by version {written_by}, without a checksum of its "
                          f"weights); this version ({__version__}) reads format "
                          f"{FORMAT_VERSION}: {REEXPORT}")
    if not intact:
        raise BundleError(corrupt)
    metadata = json.loads(props["metadata"])
    return Scorer(OnnxNetwork(session), FeatureConfig.from_dict(metadata["feature_config"]),
                  tuple(json.loads(props["labels"])),
                  test_views.from_list(metadata.get("test_views")), metadata, Path(path),
                  fingerprint=hashlib.sha256(data).hexdigest(),
                  temperature=float(metadata.get("temperature", 1.0)))


def _written_by(metadata_text: str | None) -> str:
    """The code version in a model's metadata provenance, or ``?``."""
    try:
        return str(json.loads(metadata_text)["provenance"]["code_version"])
    except (TypeError, ValueError, KeyError):
        return "?"
