"""The one place that touches polySim's process-global state.

polySim draws from C `rand()` without seeding it, keeps its state in C globals, writes three
files into the current directory and prints from C to file descriptor 1. Every call therefore
goes through `simulate`, which seeds `rand()`, holds a process-wide lock, runs inside a private
scratch directory whose three file names point at /dev/null, and sends fd 1 to /dev/null.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polySim

# The files polySim's generateStructure opens in the current directory.
POLYSIM_FILES = ("PlysimDebug.txt", "PlysimAvrami.csv", "img.csv")

_LOCK = threading.Lock()
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_scratch: Path | None = None


class PolySimError(RuntimeError):
    """polySim reported an internal error (a non-positive grain count)."""


@dataclass(frozen=True)
class Structure:
    """One simulated grain structure."""

    grains: np.ndarray  # (S, S) uint16 grain ids 1..num_grains
    num_grains: int
    avrami_exponent: float


def use_scratch_dir(path: str | os.PathLike[str]) -> Path:
    """Make `path` this process's polySim scratch directory (created if needed)."""
    global _scratch
    scratch = Path(path)
    scratch.mkdir(parents=True, exist_ok=True)
    for name in POLYSIM_FILES:
        link = scratch / name
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(os.devnull)
    with _LOCK:
        _scratch = scratch
    return scratch


def _scratch_dir() -> Path:
    if _scratch is None:
        path = tempfile.mkdtemp(prefix="polysim-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        use_scratch_dir(path)
    assert _scratch is not None
    return _scratch


def simulate(size: int, nucleation_rate: int, growth_rate: int, height: int, seed: int) -> Structure:
    """Run polySim once on a size x size image; the result is a pure function of the arguments."""
    if nucleation_rate <= 0 or growth_rate <= 0:
        raise ValueError("polySim loops forever unless both rates are > 0")
    scratch = _scratch_dir()
    image = np.zeros((size, size), dtype=np.uint16)
    with _LOCK, _silenced_stdout(), _working_directory(scratch):
        _LIBC.srand(ctypes.c_uint(seed))
        grains, num_grains, avrami = polySim.generate_structure(
            image, nucleation_rate, growth_rate, height=height, randomize_gray_values=True
        )
    if num_grains <= 0:
        raise PolySimError(f"polySim failed with code {num_grains} (seed {seed})")
    return Structure(grains=grains, num_grains=int(num_grains), avrami_exponent=float(avrami))


class _working_directory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.previous = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.previous)


class _silenced_stdout:
    """Point fd 1 at /dev/null; C stdio is flushed on both sides so nothing leaks late."""

    def __enter__(self) -> None:
        _LIBC.fflush(None)
        self.saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        _LIBC.fflush(None)
        os.dup2(self.saved, 1)
        os.close(self.saved)
