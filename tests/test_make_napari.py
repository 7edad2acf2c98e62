"""`make test-napari` and `make napari` say that Xvfb is missing before installing anything (issue 35).

Runs the project's Makefile in a scratch folder with no display and a PATH that holds `make` and
nothing else, so neither Xvfb nor Python is found; nothing here needs napari.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

MAKE = shutil.which("make")


def make(folder: Path, target: str) -> subprocess.CompletedProcess:
    """`make TARGET` in a copy of the project's Makefile, without a display, with only `make` on PATH."""
    for name in ("Makefile", "requirements.txt", "requirements-napari.txt", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(MAKE)
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "MAKEFLAGS", "MFLAGS")}
    env["PATH"] = str(bin_dir)
    return subprocess.run([MAKE, "--no-print-directory", target], cwd=folder, env=env, capture_output=True, text=True)


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_test_napari_without_display_or_xvfb_is_one_line_before_any_install(tmp_path: Path) -> None:
    run = make(tmp_path, "test-napari")
    assert run.returncode != 0
    assert run.stdout.splitlines() == [
        "error: no display and no Xvfb: napari needs OpenGL (sudo apt-get install xvfb; docs/napari.md)"]
    assert not (tmp_path / ".venv-napari").exists()  # nothing installed, nothing written


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_napari_without_display_is_one_line_before_any_install(tmp_path: Path) -> None:
    run = make(tmp_path, "napari")
    assert run.returncode != 0
    assert run.stdout.splitlines() == [
        "error: no display (DISPLAY is empty): napari's window needs a desktop session or ssh -X"]
    assert not (tmp_path / ".venv-napari").exists()
