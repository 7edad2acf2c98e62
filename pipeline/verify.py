"""`verify`: re-read every done sample of a store and check it against the store contract (docs/store.md)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .interchange import IMPORT_KIND
from .sample import BACKGROUND, BOUNDARY, erased_fraction, split_of
from .store import SAMPLE_IMAGES, LibraryStore

# Stored erased fractions are float32 of a value in [0, 1]: rounding moves them by at most half of this.
TOLERANCE = float(np.finfo(np.float32).eps)
CHECKED_META = ("num_grains", "erased_fraction", "split")


class VerifyError(RuntimeError):
    """A store whose per-sample arrays cannot be read at all: no sample can be checked."""


@dataclass(frozen=True)
class VerifyReport:
    """What one `verify` call found."""

    path: Path
    checked: int  # done samples
    not_done: int
    bad: tuple[int, ...]  # indices of the samples with at least one problem

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        verdict = f"{len(self.bad)} bad" if self.bad else "all good"
        return f"verified {self.checked} samples: {verdict}"


def verify(path: str | os.PathLike[str], echo: Callable[[str], None] = lambda line: None) -> VerifyReport:
    """Check every done sample of the store at `path`; `echo` gets one line per bad sample as it is found."""
    store = LibraryStore.open(path)
    has_grain_map = store.source_kind != IMPORT_KIND
    try:
        done = store.done()
        meta = {name: store.metadata(name) for name in CHECKED_META}
    except Exception as exc:  # a damaged chunk of a per-sample array: whatever its codec raises
        raise VerifyError(f"cannot read the per-sample arrays of {store.path} ({type(exc).__name__}: {exc}); "
                          "no sample can be checked") from None
    indices = np.flatnonzero(done)
    size, seed = store.config.size, store.seed
    bad = []
    for index in (int(i) for i in indices):
        images, problems = _read_sample(store, index)
        problems += check_sample(size, has_grain_map, *images, num_grains=int(meta["num_grains"][index]),
                                 erased=float(meta["erased_fraction"][index]), split=int(meta["split"][index]),
                                 expected_split=split_of(seed, index))
        if problems:
            echo(f"sample {index}: {'; '.join(problems)}")
            bad.append(index)
    return VerifyReport(store.path, len(indices), store.count - len(indices), tuple(bad))


def _read_sample(store: LibraryStore, index: int) -> tuple[list[np.ndarray | None], list[str]]:
    """micro, label and grains of one sample (None where unreadable), and why they are not."""
    images: list[np.ndarray | None] = []
    problems = []
    for name in SAMPLE_IMAGES:
        image = None
        # zarr reads a missing chunk as the fill value: only the file tells a lost image from a blank one.
        if not store.chunk_file(name, index).is_file():
            problems.append(f"{name}: chunk file missing")
        else:
            try:
                image = store.read(name, index)
            except Exception as exc:  # whatever a garbage chunk makes the codec raise
                problems.append(f"{name}: cannot decode ({type(exc).__name__}: {exc})")
        images.append(image)
    return images, problems


def check_sample(size: int, has_grain_map: bool, micro: np.ndarray | None, label: np.ndarray | None,
                 grains: np.ndarray | None, *, num_grains: int, erased: float, split: int,
                 expected_split: int) -> list[str]:
    """Why one sample breaks the store contract (empty when it does not); None images were unreadable."""
    problems = []
    pair_ok = True
    for name, image in (("micro", micro), ("label", label)):
        if image is None:
            pair_ok = False
        elif image.shape != (size, size) or image.dtype != np.uint8:
            problems.append(f"{name}: {image.shape} {image.dtype}, expected ({size}, {size}) uint8")
            pair_ok = False
        elif other := np.count_nonzero((image != BOUNDARY) & (image != BACKGROUND)):
            problems.append(f"{name}: {other} pixels are neither {BOUNDARY} nor {BACKGROUND}")
    if pair_ok:
        recomputed = np.float32(erased_fraction(micro, label))
        if not abs(float(recomputed) - erased) <= TOLERANCE:  # also catches a NaN left stored
            problems.append(f"erased_fraction {erased:.6g}, recomputed {float(recomputed):.6g}")
    if grains is not None:
        problems += _grain_problems(grains, size, has_grain_map, num_grains)
    if split not in (0, 1, 2):
        problems.append(f"split {split} is not 0, 1 or 2")
    elif split != expected_split:
        problems.append(f"split {split}, but the library seed gives {expected_split}")
    return problems


def _grain_problems(grains: np.ndarray, size: int, has_grain_map: bool, num_grains: int) -> list[str]:
    """Grain ids 1..num_grains, all present; an imported store has none (all 0, num_grains 0)."""
    if grains.shape != (size, size) or grains.dtype != np.uint16:
        return [f"grains: {grains.shape} {grains.dtype}, expected ({size}, {size}) uint16"]
    if not has_grain_map:
        problems = ["grains: non-zero ids in an imported store (no grain map)"] if grains.any() else []
        return problems + ([f"num_grains {num_grains}, expected 0 (no grain map)"] if num_grains != 0 else [])
    ids = np.flatnonzero(np.bincount(grains.ravel()))  # the distinct ids, ascending
    problems = []
    if ids[0] != 1:
        problems.append(f"grains: smallest id {ids[0]}, expected 1")
    if ids[-1] != len(ids):
        problems.append(f"grains: largest id {ids[-1]} but {len(ids)} distinct ids")
    if num_grains != len(ids):
        problems.append(f"num_grains {num_grains}, but the grain map has {len(ids)} ids")
    return problems
