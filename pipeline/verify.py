"""`verify`: re-read every done sample of a store and check it against the store contract (docs/store.md)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .interchange import IMPORT_KIND
from .presets import make_sample
from .sample import BACKGROUND, BOUNDARY, erased_fraction, split_of
from .shards import ChunkError
from .store import IMAGE_CRC, META_ARRAYS, ImageReader, LibraryStore, StoreError, software_versions

# Stored erased fractions are float32 of a value in [0, 1]: rounding moves them by at most half of this.
TOLERANCE = float(np.finfo(np.float32).eps)
CHECKED_META = ("num_grains", "erased_fraction", "split")
# The software whose versions decide a sample's bytes (a repair elsewhere could differ).
SAMPLE_SOFTWARE = ("polySim", "numpy", "opencv")
LISTED = 10  # samples named in one line


class VerifyError(RuntimeError):
    """A store whose structure (metadata, done markers, per-sample arrays) cannot be read: no sample can be checked."""


@dataclass(frozen=True)
class VerifyReport:
    """What one `verify` call found (and repaired)."""

    path: Path
    checked: int  # done samples
    not_done: int
    bad: tuple[int, ...]  # indices of the samples with at least one problem
    repaired: tuple[int, ...] = ()  # bad samples made again, and found good
    crc_damaged: bool = False  # the recorded checksums (image_crc) are damaged, and not rebuilt
    crc_rebuilt: bool = False  # they were damaged and are rebuilt from samples made again

    @property
    def ok(self) -> bool:
        """Every done sample is good now, and so is the record of their checksums."""
        return set(self.bad) <= set(self.repaired) and not self.crc_damaged

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        verdict = f"{len(self.bad)} bad" if self.bad else "all good"
        if self.repaired:
            verdict += f", {len(self.repaired)} repaired"
        if self.crc_damaged:
            verdict += f"; the recorded checksums ({IMAGE_CRC}) are damaged"
        if self.crc_rebuilt:
            verdict += f"; the recorded checksums ({IMAGE_CRC}) rebuilt"
        return f"verified {self.checked} samples: {verdict}"


def verify(path: str | os.PathLike[str], echo: Callable[[str], None] = lambda line: None,
           repair: bool = False) -> VerifyReport:
    """Check every done sample of the store at `path`; `echo` gets one line per bad sample as it is found.

    With `repair`, the shards of bad samples of a generated store are made again (each sample is a
    pure function of (config, seed, i)) and checked again; an imported store is left unchanged.
    """
    store = LibraryStore.open(path, mode="r+" if repair else "r", crc_damage_allowed=True)
    try:
        done = store.done()
        meta = {name: store.metadata(name) for name in META_ARRAYS}  # every one: each chunk and its CRC32C
    except StoreError as exc:
        why = str(exc).split("; run `python cli.py verify")[0]
        raise VerifyError(f"{why}; no sample can be checked") from None
    if store.crc_problem is not None:
        echo(f"{IMAGE_CRC}: the recorded image checksums {store.crc_problem}; without them a moved or swapped shard "
             f"reads as another sample" + ("" if repair else " (verify --repair rebuilds them)"))
        if repair:
            rebuilt = _rebuild_crcs(store, [int(i) for i in np.flatnonzero(done)], echo)
            if rebuilt is not None:
                report = verify(path, echo, repair=True)
                return replace(report, crc_rebuilt=True)
    bad = _check(store, np.flatnonzero(done), meta, echo)
    report = VerifyReport(store.path, int(done.sum()), store.count - int(done.sum()), tuple(bad),
                          crc_damaged=store.crc_problem is not None)
    if not (repair and bad):
        return report
    if store.source_kind == IMPORT_KIND:
        echo(f"not repaired: an imported store cannot make its pairs again (samples {_listed(bad)}); "
             "nothing was changed")
        return report
    return replace(report, repaired=tuple(_repair(store, bad, echo)))


def _check(store: LibraryStore, indices: Iterable[int], meta: dict[str, np.ndarray],
           echo: Callable[[str], None]) -> list[int]:
    """Indices of the given samples that break the contract, each named through `echo` with why."""
    has_grain_map = store.source_kind != IMPORT_KIND
    size, seed, names = store.config.size, store.seed, store.images
    gray = store.gray  # a micrograph store: micro and clean are gray, erased_fraction is the render's
    reader = store.image_reader(names)
    bad = []
    for index in (int(i) for i in indices):
        images, problems = _read_sample(reader, names, index)
        problems += check_sample(size, has_grain_map, *images[:3], num_grains=int(meta["num_grains"][index]),
                                 erased=float(meta["erased_fraction"][index]), split=int(meta["split"][index]),
                                 expected_split=split_of(seed, index), gray=gray)
        if gray and images[3] is not None and (images[3].shape != (size, size) or images[3].dtype != np.uint8):
            problems.append(f"clean: {images[3].shape} {images[3].dtype}, expected ({size}, {size}) uint8")
        if problems:
            echo(f"sample {index}: {'; '.join(problems)}")
            bad.append(index)
    return bad


def _read_sample(reader: ImageReader, names: tuple[str, ...], index: int) -> tuple[list[np.ndarray | None], list[str]]:
    """The images `names` of one sample (None where unreadable), and why they are not."""
    images: list[np.ndarray | None] = []
    problems = []
    for position, name in enumerate(names):
        try:
            images.append(reader.read_one(position, index))
        except ChunkError as exc:  # absent, failing its checksum, or not decodable
            images.append(None)
            problems.append(f"{name}: {exc}")
    return images, problems


def _rebuild_crcs(store: LibraryStore, done: list[int], echo: Callable[[str], None]) -> LibraryStore | None:
    """A fresh `image_crc` recording the checksums of every done sample made again (their shards rewritten:
    the stored ones may be swapped); None, with a line saying why, where the samples cannot be made again."""
    if store.source_kind == IMPORT_KIND:
        echo(f"not repaired: an imported store cannot make its pairs again, so its checksums cannot be rebuilt; "
             "nothing was changed")
        return None
    if not _same_software(store, echo):
        return None
    with store.writer_lock():
        store = store.rebuild_crc_array()
        writer = store.image_writer()
        for first in sorted({i // store.shard * store.shard for i in done}):
            stop = min(first + store.shard, store.count)
            samples = [make_sample(store.config, store.seed, i) for i in range(first, stop)]
            store.commit([s.index for s in samples], [s.meta for s in samples], writer.write(samples))
    echo(f"rebuilt {IMAGE_CRC} from {len(done)} done samples made again")
    return store


def _same_software(store: LibraryStore, echo: Callable[[str], None]) -> bool:
    """Whether this environment makes the store's samples as it did; a line saying why not where it does not."""
    made_with = {k: v for k, v in store.attrs.get("versions", {}).items() if k in SAMPLE_SOFTWARE}
    here = {k: v for k, v in software_versions().items() if k in SAMPLE_SOFTWARE}
    if made_with != here:
        echo(f"not repaired: the store was made with {made_with}, this environment has {here}; "
             "samples made here could differ; nothing was changed")
        return False
    return True


def _repair(store: LibraryStore, bad: list[int], echo: Callable[[str], None]) -> list[int]:
    """Make the shards of `bad` samples again, commit them, check them again; the indices now good."""
    if not _same_software(store, echo):
        return []
    config, seed, shard, count = store.config, store.seed, store.shard, store.count
    remade = {first: [make_sample(config, seed, i) for i in range(first, min(first + shard, count))]
              for first in sorted({i // shard * shard for i in bad})}
    differ = _intact_but_made_otherwise(store, bad, [s for samples in remade.values() for s in samples])
    if differ:
        echo(f"not repaired: samples {_listed(differ)} are intact (their images match the checksums recorded when "
             "they were made), but this store's seed and config make other images for them: its root zarr.json "
             "is likely damaged; restore it from a copy (nothing was changed)")
        return []
    with store.writer_lock():
        writer = store.image_writer()
        for samples in remade.values():
            crcs = writer.write(samples)
            store.commit([s.index for s in samples], [s.meta for s in samples], crcs)
    meta = {name: store.metadata(name) for name in CHECKED_META}
    still_bad = set(_check(store, bad, meta, echo))
    repaired = [i for i in bad if i not in still_bad]
    for index in repaired:
        echo(f"repaired sample {index}")
    return repaired


def _intact_but_made_otherwise(store: LibraryStore, bad: list[int], remade: list[Any]) -> list[int]:
    """Bad samples whose stored images are whole (chunk and recorded checksums pass) yet differ from the
    ones remade from the store's seed and config. Their images are as made: what disagrees is the
    store's description (a changed root `seed` turned the split of 9 of 16 good samples "bad", and
    the repair replaced all 9 with other samples)."""
    names = tuple(name for name in store.images)
    reader = store.image_reader(names)
    wanted = set(bad)
    differ = []
    for sample in remade:
        if sample.index not in wanted:
            continue
        try:
            stored = reader.read(sample.index)
        except StoreError:
            continue  # damaged images: what a repair is for
        if any(getattr(sample, name, None) is not None and not np.array_equal(image, getattr(sample, name))
               for name, image in zip(names, stored)):
            differ.append(sample.index)
    return differ


def _listed(indices: list[int]) -> str:
    return ", ".join(map(str, indices[:LISTED])) + (f" and {len(indices) - LISTED} more" if len(indices) > LISTED else "")


def check_sample(size: int, has_grain_map: bool, micro: np.ndarray | None, label: np.ndarray | None,
                 grains: np.ndarray | None, *, num_grains: int, erased: float, split: int,
                 expected_split: int, gray: bool = False) -> list[str]:
    """Why one sample breaks the store contract (empty when it does not); None images were unreadable.

    `gray`: a micrograph sample, whose micro is gray and whose erased_fraction (the share of the
    boundary drawn faint) cannot be recomputed from the images: it must lie in [0, 1] (or be NaN,
    unknown, in an imported store).
    """
    problems = []
    pair_ok = True
    for name, image in (("micro", micro), ("label", label)):
        if image is None:
            pair_ok = False
        elif image.shape != (size, size) or image.dtype != np.uint8:
            problems.append(f"{name}: {image.shape} {image.dtype}, expected ({size}, {size}) uint8")
            pair_ok = False
        elif gray and name == "micro":
            continue
        elif other := np.count_nonzero((image != BOUNDARY) & (image != BACKGROUND)):
            problems.append(f"{name}: {other} pixels are neither {BOUNDARY} nor {BACKGROUND}")
    if gray:
        unknown = not has_grain_map and np.isnan(erased)  # imported micrographs: not known (docs/store.md)
        if not (0.0 <= erased <= 1.0 or unknown):  # also catches a NaN left stored by a generator
            problems.append(f"erased_fraction {erased:.6g} is not a share in [0, 1]")
    elif pair_ok:
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
