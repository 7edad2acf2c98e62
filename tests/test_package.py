"""The package that `pip install .` builds: its files, version, console command and dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest

import pipeline
from tests.conftest import REPO

LEFT_OUT = shutil.ignore_patterns(".venv", ".venv-napari", ".git", "generated_data", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", "runs", "evaluation", "*.zarr")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built offline from a copy of the checkout (the build writes build/ beside its source)."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 61:
        pytest.skip("setuptools >= 61 reads pyproject.toml")
    root = tmp_path_factory.mktemp("package")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=LEFT_OUT)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(root / "dist"), str(source)], check=True, capture_output=True)
    (built,) = (root / "dist").glob("reconstruction_gb-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_carries_the_cli_packages_and_data_files(wheel):
    names = set(wheel.namelist())
    assert {"cli.py", "pipeline/__init__.py", "model/__init__.py", "model/training/train.py",
            "model/inference/predict.py", "model/pretrained/__init__.py", "model/napari/napari.yaml",
            "model/napari/adapter.py"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
    # The Dask settings as a file (in a checkout pipeline/dask_config links to config/dask).
    settings = wheel.read("pipeline/dask_config/reconstruction-gb.yaml")
    assert settings == (REPO / "config" / "dask" / "reconstruction-gb.yaml").read_bytes()


def test_wheel_metadata_version_command_and_ranges(wheel):
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(info).decode())
    assert metadata["Version"] == pipeline.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    requires = metadata.get_all("Requires-Dist")
    assert not any("==" in r.split(";")[0] for r in requires)  # ranges; requirements.txt holds the pins
    assert any(r.startswith("zarr") for r in requires) and any(r.startswith("tensorflow-cpu") for r in requires)
    entry_points = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "reconstruction-gb = cli:main" in entry_points
    assert "[napari.manifest]\nreconstruction-gb = model.napari:napari.yaml" in entry_points  # the plugin (extra)
    assert any(r.startswith("napari") and 'extra == "napari"' in r for r in requires)
    assert any(r.startswith("tensorflow-cpu") and 'extra == "napari"' in r for r in requires)  # Restore's default


def test_citation_names_this_version_and_the_study():
    citation = (REPO / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation
    assert re.search(r"^version: (\S+)$", citation, re.M).group(1) == pipeline.__version__
    assert 'title: "From Fragmented to Flawless"' in citation and "Data in Brief" in citation
    for author in ("Chaurasia", "Sangal", "Jha"):
        assert f"family-names: {author}" in citation
