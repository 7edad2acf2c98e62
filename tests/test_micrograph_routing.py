"""Which bundled model reads which input: binary maps the boundary-map model, micrographs the micrograph
model when one is installed (none ships yet: docs/benchmarks.md, "A micrograph model"), else the preparation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import model.inference.restore
from model.inference.restore import RestoreOptions, Restorer, routes_micrographs
from model.pretrained import BUNDLED_MODEL

MICROGRAPH_MODEL = None  # set by the fixture: the installed micrograph model's path


@pytest.fixture(autouse=True)
def installed(tmp_path, monkeypatch):
    """A micrograph model installed where the package looks for it (a copy of the bundled model stands in)."""
    global MICROGRAPH_MODEL
    MICROGRAPH_MODEL = tmp_path / "reconstruction_gb_micrograph.keras"
    shutil.copyfile(BUNDLED_MODEL, MICROGRAPH_MODEL)
    monkeypatch.setattr(model.inference.restore, "MICROGRAPH_MODEL", MICROGRAPH_MODEL)


def test_without_a_micrograph_model_gray_is_prepared_for_the_boundary_model(monkeypatch, tmp_path):
    monkeypatch.setattr(model.inference.restore, "MICROGRAPH_MODEL", tmp_path / "absent.keras")
    restorer = Restorer(RestoreOptions())
    assert restorer.micrograph is None and restorer.model_path == BUNDLED_MODEL
    assert "1 gray micrograph -> denoise nlmeans (h 9), binarize adaptive" in restorer.inputs_line(["gray"])


def test_by_default_gray_goes_to_the_micrograph_model_and_binary_maps_to_the_boundary_model():
    restorer = Restorer(RestoreOptions())
    assert restorer.model_path == BUNDLED_MODEL
    assert restorer.micrograph is not None and restorer.micrograph.model_path == MICROGRAPH_MODEL
    assert restorer.micrograph.options.denoise == restorer.micrograph.options.binarize == "none"  # as it is
    line = restorer.inputs_line(["gray", "binary", "16-bit"])
    assert "1 binary boundary map -> as it is" in line and "1 gray micrograph -> the micrograph model" in line
    assert "1 16-bit micrograph -> the micrograph model" in line
    assert "micrographs: method" in restorer.describe() and MICROGRAPH_MODEL.name in restorer.describe()


@pytest.mark.parametrize("options", [RestoreOptions(model=BUNDLED_MODEL), RestoreOptions(method="bridge"),
                                     RestoreOptions(denoise="nlmeans", binarize="adaptive"),
                                     RestoreOptions(binarize="otsu")])
def test_a_model_of_ones_own_a_classical_method_or_a_chosen_preparation_is_not_rerouted(options):
    assert not routes_micrographs(options)


def test_a_gray_image_is_restored_by_the_micrograph_model(monkeypatch):
    restorer = Restorer(RestoreOptions())
    seen = []
    monkeypatch.setattr(restorer.micrograph, "restore",
                        lambda image, progress=None, binary=None: seen.append(image.shape) or (image, None))
    gray = np.random.default_rng(0).uniform(0.3, 0.8, (64, 64)).astype(np.float32)
    restorer.restore(gray)
    binary = np.where(np.random.default_rng(1).random((64, 64)) < 0.1, 0.0, 1.0).astype(np.float32)
    mask, _ = restorer.restore(binary)
    assert seen == [(64, 64)] and mask.shape == (64, 64)  # the gray one only
