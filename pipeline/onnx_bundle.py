"""The network as ONNX, for runtimes other than PyTorch: ``export --format onnx`` writes
it, ``predict --bundle model.onnx`` scores through onnxruntime.

The graph is the whole scorer network: the normalisation buffers inside, and for an
ensemble every member with their softmax averaged inside the graph. Input ``features``:
float32 ``(batch, 2, n_mels, num_frames)``, channel 0 the MFCC and 1 the log-mel (dB), both
dynamic in batch and frames; output ``log_probabilities`` ``(batch, classes)``: a softmax
of it gives the class probabilities (for one model it is the logits).

Decoding, conditioning, speech detection and features are not in the graph: they stay
this project's code (``pipeline.frontend``, ``pipeline.features``), and the model's
``metadata_props`` document them for other runtimes:

- ``ser_pipeline_format`` / ``format_version``: what the file is;
- ``labels``: the class order (JSON list);
- ``feature_config``: sample rate, window, STFT, mel and front-end settings (JSON);
- ``test_views``: the test-time views to average over (JSON; ``[{}]``: the window alone);
- ``metadata``: everything the safetensors bundle holds (JSON), provenance included.

Needs the ``onnx`` extra (``onnx``, ``onnxscript`` to export; ``onnxruntime`` to score).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from pipeline.errors import BundleError
from pipeline.scorer import Scorer
from pipeline.stages import atomic_path, hash_file, strict_json

FORMAT = "ser-pipeline-onnx"
FORMAT_VERSION = 1
SUFFIX = ".onnx"
OPSET = 18
INSTALL = "pip install 'ser-pipeline[onnx]'"


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
             "metadata": strict_json(metadata, sort_keys=True)}
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    with atomic_path(Path(path)) as tmp:
        onnx.save(proto, str(tmp))
    return Path(path)


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


def load_onnx(path: Path) -> Scorer:
    """A ``Scorer`` whose network runs in onnxruntime (CPU). Raises ``BundleError``
    naming the file for one that is not this tool's ONNX model, and with the install
    hint when onnxruntime is missing."""
    from pipeline import views as test_views
    from pipeline.features import FeatureConfig

    try:
        import onnxruntime
    except ImportError:
        raise BundleError(f"scoring {path} needs onnxruntime: {INSTALL}") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own types)
        raise BundleError(f"{path} is not a readable ONNX model ({type(exc).__name__}): "
                          "export one with 'ser export --format onnx'") from None
    props = session.get_modelmeta().custom_metadata_map
    if props.get("ser_pipeline_format") != FORMAT:
        raise BundleError(f"{path} is an ONNX model but not one of this tool's: export one "
                          "with 'ser export --format onnx'")
    metadata = json.loads(props["metadata"])
    return Scorer(OnnxNetwork(session), FeatureConfig.from_dict(metadata["feature_config"]),
                  tuple(json.loads(props["labels"])),
                  test_views.from_list(metadata.get("test_views")), metadata, Path(path),
                  fingerprint=hash_file(Path(path)),
                  temperature=float(metadata.get("temperature", 1.0)))
