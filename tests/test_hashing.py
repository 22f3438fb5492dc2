"""Tests of pipeline/core/hashing.py: cache keys hold the code that produced an output."""

from __future__ import annotations

import json
import os

_KEYS = """
import json
from pipeline.core.hashing import code_hash
from pipeline.corpus.extract import ExtractConfig
from pipeline.network.recipe import TrainConfig
from pipeline.training.train import run_key
features_key = ExtractConfig().cache_key("clips")  # what extract writes in its manifest
print(json.dumps({
    "extract": features_key,
    "train": run_key(TrainConfig(), features_key=features_key, fold=0, split=None),
    "index": code_hash("pipeline.corpus.index"),
}))
"""


def _keys(package_parent) -> dict:
    """The stage keys computed by the ``pipeline`` package under ``package_parent``, in a
    fresh process (so nothing is shared with this one's imported modules)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KEYS], cwd=package_parent, check=True,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(package_parent)})
    return json.loads(done.stdout)


def test_editing_the_model_changes_the_train_key_but_not_the_extract_key(tmp_path):
    """Cache keys include the code that produced the output: a copy of the package with
    one real edit to the model's source makes every training run stale, while features
    (which the model cannot affect) stay cached."""
    import shutil
    from pathlib import Path

    import pipeline

    source = Path(pipeline.__file__).parent
    shutil.copytree(source, tmp_path / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    before = _keys(tmp_path)
    model = tmp_path / "pipeline" / "network" / "model.py"
    text = model.read_text()
    assert "hidden: int = 128" in text
    model.write_text(text.replace("hidden: int = 128", "hidden: int = 128  # edited"))
    after = _keys(tmp_path)
    assert after["train"] != before["train"]
    assert after["extract"] == before["extract"]
    assert after["index"] == before["index"]
    # an edit to the front end makes both stale: a run's key holds the features' key
    frontend = tmp_path / "pipeline" / "signal" / "frontend.py"
    frontend.write_text(frontend.read_text() + "\n# edited\n")
    edited = _keys(tmp_path)
    assert edited["extract"] != after["extract"] and edited["train"] != after["train"]


def test_imports_of_subpackage_modules_are_followed():
    """``from pipeline.core import layout`` and ``from pipeline.signal.vad import x`` both
    count the module imported, so its source is part of the importer's code hash."""
    from pipeline.core.hashing import _pipeline_imports, code_modules

    source = b"from pipeline.core import layout, errors\nfrom pipeline.signal.vad import x\n"
    assert {"pipeline.core.layout", "pipeline.core.errors",
            "pipeline.signal.vad"} <= _pipeline_imports(source)
    assert "pipeline.network.model" in code_modules("pipeline.training.train")
    extract = code_modules("pipeline.corpus.extract")
    assert "pipeline.signal.frontend" in extract and "pipeline.signal.vad" in extract
    assert "pipeline.core.layout" not in extract  # NO_EFFECT: paths compute nothing
