"""The scorer: everything needed to turn feature windows into emotion probabilities, in
one typed object that ``predict``, ``evaluate`` and every later consumer use. It is built
from a bundle (``pipeline.inference.bundle.load``) or from trained runs (``from_run``), so a fold's
model is scored exactly as a shipped one is.

A scorer holds the model (one ``EmotionCNN`` or an ``Ensemble`` whose probabilities are
averaged), the feature config (front end and conditioning included: how audio becomes
windows), the label order and the test-time views (``pipeline.signal.views``) each window is
scored in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from pipeline.core import layout
from pipeline.core.errors import TrainingError
from pipeline.inference.calibration import WEAK_BELOW, apply_temperature
from pipeline.signal import views as test_views
from pipeline.signal.augment import AugmentParams
from pipeline.signal.features import FeatureConfig

# Model inputs per forward pass. Small batches stay in the CPU caches: on the 2-core
# development machine 64 at a time ran 2-3x faster than 256 or more at once.
FORWARD_BATCH = 64


@dataclass
class Scorer:
    model: "torch.nn.Module"  # eval mode, CPU: EmotionCNN or Ensemble
    feature_config: FeatureConfig
    labels: tuple[str, ...]
    views: tuple[AugmentParams, ...] = test_views.CLEAN  # test-time views of each window
    metadata: dict = field(default_factory=dict)  # a bundle's metadata; {} for runs
    path: Path | None = None  # the bundle file, if any
    saved: tuple[dict, ...] = ()  # each member's model.pt fields (scorers from runs only)
    fingerprint: str = ""  # a bundle's checksum (its weights and metadata), hex
    # applied to each window's averaged probabilities (inference.calibration); 1: as trained
    temperature: float = 1.0

    @property
    def weak_below(self) -> float:
        """The confidence below which this model's verdict is weak (more likely wrong than
        right): its bundle's fitted ``weak_below``, else ``calibration.WEAK_BELOW``."""
        return float(self.metadata.get("weak_below", WEAK_BELOW))

    @property
    def identity(self) -> str:
        """Which model this is, as every output names it: ``NAME@VERSION+SUM`` for a
        bundle (file stem, the code version that exported it, the first 8 characters of
        its checksum), ``runs:fold-0,fold-0.m1`` for trained runs."""
        if self.metadata:
            return bundle_identity(self.path, self.metadata, self.fingerprint)
        return "runs:" + ",".join(layout.member_run(layout.run_name(s["info"]["fold"]),
                                                    s["info"].get("member", 0))
                                  for s in self.saved)

    @cached_property
    def inference_model(self):
        """The model with batch norms folded into the convolutions (``for_inference``)."""
        from pipeline.network.model import for_inference

        return for_inference(self.model)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Mean softmax over the views, then the scorer's temperature: ``windows`` float32
        ``(n, views, 2, n_mels, num_frames)`` -> ``(n, len(labels))``. The network is
        torch's, or any callable from float32 arrays to logits
        (``onnx_bundle.OnnxNetwork``), which is scored without importing torch."""
        n_windows, n_views = windows.shape[:2]
        flat = windows.reshape(n_windows * n_views, *windows.shape[2:])
        parts = [flat[start:start + FORWARD_BATCH] for start in range(0, len(flat), FORWARD_BATCH)]
        torch = sys.modules.get("torch")  # a torch network means torch is loaded already
        if torch is not None and isinstance(self.model, torch.nn.Module):
            with torch.no_grad():
                logits = torch.cat([self.inference_model(torch.from_numpy(part))
                                    for part in parts])
                probs = torch.softmax(logits, dim=1).numpy()
        else:
            probs = softmax(np.concatenate([self.model(part) for part in parts]))
        averaged = probs.reshape(n_windows, n_views, -1).mean(axis=1)
        return apply_temperature(averaged, self.temperature)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` ``(n, classes)``, in their dtype, the maximum taken
    out first (as torch does), so no exp overflows."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def bundle_identity(path: Path | None, metadata: dict, fingerprint: str) -> str:
    """``NAME@VERSION+SUM`` of a bundle (``Scorer.identity``) from its file, metadata and
    checksum."""
    provenance = metadata.get("provenance") or {}
    name = Path(path).stem if path else "bundle"
    return f"{name}@{provenance.get('code_version', '?')}+{fingerprint[:8] or 'unknown'}"


def from_run(artifacts_dir: Path, run: str, members: int,
             views: tuple[AugmentParams, ...] = test_views.TEST_VIEWS) -> Scorer:
    """The scorer of trained run ``run`` (``fold-K``, ``final``, ``random``): its first
    ``members`` members (their ``model.pt``), averaged when more than one. Raises
    ``TrainingError`` naming the missing member and the command that trains it, or when
    the members were trained with different settings or features."""
    from pipeline.network.model import Ensemble, load_model
    from pipeline.network.recipe import recipe_of

    loaded = []
    for member, folder in enumerate(layout.member_runs(run, members)):
        path = layout.model_file(artifacts_dir, folder)
        if not path.exists():
            target = {"final": "--final", "random": "--fold random"}.get(
                run, f"--fold {run.removeprefix('fold-')}")
            raise TrainingError(f"no trained model at {path} (ensemble member {member + 1} of "
                                f"{members}): run 'ser train {target} --members {members}'")
        loaded.append(load_model(path))
    first = loaded[0][1]
    for _, saved in loaded[1:]:
        if (recipe_of(saved["train_config"]) != recipe_of(first["train_config"])
                or saved["info"]["features_key"] != first["info"]["features_key"]):
            raise TrainingError(f"the members of {run} were trained with different settings or "
                                f"features: retrain them with 'ser train --members {members} "
                                "--force'")
    models = [model for model, _ in loaded]
    model = (models[0] if members == 1 else Ensemble(models)).eval()
    return Scorer(model, FeatureConfig.from_dict(first["feature_config"]),
                  tuple(first["label_map"]), tuple(views),
                  saved=tuple(saved for _, saved in loaded))

