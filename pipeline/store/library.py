"""`LibraryStore`: an opened library store, the face every other module uses (docs/store.md).

It holds the store's backend (`Files`), its zarr group and arrays, and hands each job to its
room: opening.py recognises, creates and opens; reading.py and writing.py move the bytes;
integrity.py keeps the recorded checksums.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import zarr

from ..config import GenerationConfig
from ..sample import SampleMeta
from .errors import UNREPAIRABLE, StoreDamaged, StoreError
from .files import Files, Location, StoreURL, files_at, store_location
from .integrity import read_recorded
from .layout import DONE, IMAGE_ARRAYS, IMAGE_CRC, META_ARRAYS, chunk_key, image_layout, images_of, shard_samples
from .opening import create_arrays, create_crc_array, is_store, open_arrays
from .reading import ImageReader, read_per_sample
from .writing import ImageWriter, commit, grow, remove_partials


@dataclass(frozen=True)
class LibraryStore:
    """An opened library store."""

    path: Location  # an absolute Path, or a StoreURL (object storage); messages name it
    group: zarr.Group
    arrays: dict[str, zarr.Array]
    files: Files = field(compare=False, repr=False)
    crc_problem: str | None = None  # what is wrong with `image_crc`, in a store opened for verify (else None)
    _readers: dict[str, ImageReader] = field(default_factory=dict, compare=False, repr=False)

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str] | StoreURL, config: GenerationConfig, seed: int, count: int,
               shard: int | None = None, extra: dict[str, Any] | None = None) -> LibraryStore:
        """Create an empty store for `count` samples; nothing but an empty directory may be there.

        The attributes come first with `complete: false`, which is set true last: a creation cut
        short is recognised as such and may be made again; nothing else is ever replaced unasked.
        `extra` attributes (an import's `source`) are written with the first ones.
        """
        path = store_location(path)
        create_arrays(files_at(path), config, seed, count, shard or shard_samples(count), extra)
        return cls.open(path, mode="r+")

    @classmethod
    def open(cls, path: str | os.PathLike[str] | StoreURL, mode: str = "r",
             crc_damage_allowed: bool = False) -> LibraryStore:
        """Open an existing format-2 store of this project (mode 'r' or 'r+'); StoreError says why not.

        With `crc_damage_allowed` (verify) damaged recorded checksums are no error: `crc_problem` says
        what is wrong and the store reads without them.
        """
        path = store_location(path)
        files = files_at(path)
        group, arrays, crc_problem = open_arrays(files, mode, crc_damage_allowed)
        return cls(path, group, arrays, files, crc_problem)

    def rebuild_crc_array(self) -> LibraryStore:
        """This store (opened 'r+') with a fresh `image_crc` in place of its damaged one, nothing recorded."""
        create_crc_array(self.group, self.count, len(self.images), overwrite=True)
        return LibraryStore.open(self.path, mode="r+")

    @staticmethod
    def remove(path: str | os.PathLike[str] | StoreURL) -> None:
        """Delete a store of this project (refuses anything else)."""
        if not is_store(path):
            raise StoreError(f"{path} is not a Reconstruction-GB store; refusing to delete it")
        files_at(path).remove_all()

    # --- description -----------------------------------------------------------------------
    @property
    def config(self) -> GenerationConfig:
        """The generation config the library was made with."""
        return GenerationConfig.from_dict(self.group.attrs["config"])

    @property
    def images(self) -> tuple[str, ...]:
        """The store's image arrays (micro, label, grains, and clean in a micrograph store)."""
        return images_of(self.config)

    @property
    def gray(self) -> bool:
        """Whether `micro` is a gray micrograph (a preset that renders one, with its clean render
        beside it) rather than a binary boundary map."""
        return "clean" in self.images

    @property
    def seed(self) -> int:
        """The library seed."""
        return int(self.group.attrs["seed"])

    @property
    def count(self) -> int:
        """Number of planned samples."""
        return int(self.group.attrs["count"])

    @property
    def shard(self) -> int:
        """Samples per shard of the image arrays (fixed at creation); StoreError when `micro` has no
        sharding codec (its zarr.json damaged: `info` gave a TypeError traceback)."""
        micro = self.arrays["micro"]
        if micro.shards is None:
            image_layout(micro)  # raises the StoreError naming the damage
        return int(micro.shards[0])

    @property
    def source_kind(self) -> str:
        """'generate' for a library made by polySim, 'import' for one built from PNG folders."""
        return str(self.group.attrs.get("source", {}).get("kind", "generate"))

    @property
    def attrs(self) -> dict[str, Any]:
        """The root group's attributes (a copy)."""
        return dict(self.group.attrs)

    def done(self) -> np.ndarray:
        """Boolean mask of the samples whose data and metadata are complete (StoreDamaged if unreadable)."""
        done = np.asarray(read_per_sample(self.files, self.arrays[DONE], self.count), dtype=bool)
        self._check_count()
        return done

    def _check_count(self) -> None:
        """StoreDamaged if samples past the root `count` are done: the count was lowered behind the store's back
        (read as that many samples). Arrays longer than `count` with none done there are a grow cut short."""
        array = self.arrays[DONE]
        if array.shape[0] <= self.count:
            return
        try:
            beyond = np.flatnonzero(np.asarray(array[self.count :], dtype=bool))
        except Exception:  # noqa: BLE001 - a chunk a grow cut short never wrote whole: nothing done there
            return
        if beyond.size:
            where = self.files.where()
            raise StoreDamaged(f"{where} is damaged: its root zarr.json gives count {self.count}, but sample "
                               f"{self.count + int(beyond[-1])} is done; {UNREPAIRABLE}")

    def metadata(self, name: str) -> np.ndarray:
        """One per-sample array, whole (StoreDamaged if a chunk is missing or fails its checksum)."""
        if name not in META_ARRAYS:
            raise KeyError(f"no per-sample array {name!r}")
        return read_per_sample(self.files, self.arrays[name], self.count)

    def recorded_crcs(self) -> np.ndarray | None:
        """The (N, 3) recorded chunk checksums, or None for a store made before they were (StoreDamaged if unreadable)."""
        if IMAGE_CRC not in self.arrays:
            return None
        return read_recorded(self.files.where(), self.arrays[IMAGE_CRC], self.count)

    def bytes_on_disk(self, arrays: Iterable[str] | None = None) -> int:
        """Bytes of the stored files of the given arrays (all of the store by default)."""
        return sum(self.files.size(name) for name in arrays) if arrays is not None else self.files.size()

    # --- reading ---------------------------------------------------------------------------
    def read(self, name: str, index: int) -> np.ndarray:
        """Image `name` ('micro', 'label' or 'grains') of sample `index`; StoreDamaged if absent or corrupt."""
        if name not in self._readers:
            self._readers[name] = self.image_reader((name,))
        return self._readers[name].read(index)[0]

    def image_reader(self, names: Sequence[str] = IMAGE_ARRAYS) -> ImageReader:
        """Fast whole-sample reads of the given image arrays (for streaming training data)."""
        return ImageReader(self.files, [self.arrays[name] for name in names], self.arrays.get(IMAGE_CRC), self.count)

    def shard_file(self, name: str, index: int) -> Path:
        """The shard file holding image `name` of sample `index` (of a store in local files)."""
        if not isinstance(self.path, Path):
            raise StoreError(f"{self.path} is in object storage, not in local files")
        return self.path / chunk_key(name, self.arrays[name].metadata, (index // self.shard, 0, 0))

    # --- writing (tasks) ---------------------------------------------------------------------
    def image_writer(self) -> ImageWriter:
        """Handles on the image arrays for a task that writes whole shards (picklable: tasks get it from the driver)."""
        return ImageWriter(self.files, [self.arrays[name] for name in self.images])

    # --- writing (driver only) -------------------------------------------------------------
    def writer_lock(self) -> AbstractContextManager[None]:
        """Hold this store's single-writer lock, or raise StoreBusy at once if a live run holds it."""
        return self.files.lock()

    def remove_partials(self) -> int:
        """Delete orphan `*.partial` chunk files left by a killed writer; returns how many."""
        return remove_partials(self.files)

    def resize(self, count: int) -> None:
        """Grow the store to `count` planned samples (existing samples are untouched)."""
        if count < self.count:
            raise StoreError(f"{self.path} plans {self.count} pairs; it cannot shrink to {count}")
        grow(self.group, self.arrays, self.count, count)

    def commit(self, indices: Sequence[int], metas: Sequence[SampleMeta],
               crcs: Sequence[Sequence[int]] | None = None) -> None:
        """Record metadata of samples whose images are written, then mark them done.

        `crcs`: per sample, the CRC32C of its micro, label and grains chunks as `ImageWriter.write`
        returns them; without them the samples are recorded as unchecked (NO_CRC).
        """
        commit(self.arrays, indices, metas, crcs)
