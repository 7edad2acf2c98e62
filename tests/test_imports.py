"""Which modules load TensorFlow: never pipeline/ (Dask workers stay light), nor scoring and tiling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("modules", [
    ["pipeline.config", "pipeline.generate", "pipeline.executors", "pipeline.store", "pipeline.interchange",
     "pipeline.verify", "cli"],
    ["model.scoring.metrics", "model.methods", "model.methods.classical", "model.inference.tiling", "model.inference.images",
     "model.inference.predict", "model.inference.predictor", "model.inference.restore", "model.inference.prepare",
     "model.measure.run", "model.data",
     "model.scoring.evaluate"],
])
def test_these_modules_do_not_import_tensorflow(modules):
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_methods_import_neither_inference_nor_scoring() -> None:
    """model/methods is the bottom layer: scoring and inference import it, never the other way round."""
    code = ("import sys\nimport model.methods\n"
            "print(sorted(m for m in sys.modules if m.startswith(('model.inference', 'model.scoring', 'tensorflow'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
