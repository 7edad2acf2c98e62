"""The library's Zarr store: the only module that knows its layout (see docs/store.md).

Writers: each generation task writes the image chunks of its own samples (one sample per chunk,
so exactly one writer per chunk); only the driver creates, resizes and writes the per-sample
arrays and the `done` marker, after the images of those samples are in place.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import secrets
import shutil
import sys
import warnings
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec

from . import __version__
from .config import GenerationConfig
from .sample import Sample, SampleMeta

FORMAT = "reconstruction-gb"
FORMAT_VERSION = 1
IMAGE_ARRAYS = ("micro", "label")
# The (N, S, S) arrays: one chunk per sample, written by the task that makes the sample.
SAMPLE_IMAGES = (*IMAGE_ARRAYS, "grains")
# Per-sample arrays: name -> (dtype, fill value for samples not (yet) generated).
META_ARRAYS: dict[str, tuple[str, Any]] = {
    "seed": ("uint32", 0),
    "nucleation_rate": ("uint16", 0),
    "growth_rate": ("uint16", 0),
    "num_grains": ("int32", 0),
    "avrami_exponent": ("float32", float("nan")),
    "dilation": ("uint8", 0),
    "gap_patches": ("uint16", 0),
    "erased_fraction": ("float32", float("nan")),
    "split": ("uint8", 0),
}
DONE = "done"
# Samples per chunk of the per-sample arrays (written by the driver alone).
META_CHUNK = 4096
# Chunk files sit side by side (`micro/c.12.0.0`): no directory per sample to create.
CHUNK_KEYS = {"name": "default", "separator": "."}
# Binary images: bitshuffle turns 0/255 bytes into one bit plane repeated eight times.
IMAGE_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
# Grain maps are not part of the size target: a low level keeps the workers' CPU for polySim.
GRAINS_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


class StoreError(RuntimeError):
    """A path that is not a usable store of this project."""


class StoreBusy(StoreError):
    """Another live run is writing the store."""


def _project_group(path: str | os.PathLike[str], mode: str = "r") -> zarr.Group | None:
    """The root group at `path` if it is a store of this project (any format version), else None."""
    try:
        group = zarr.open_group(str(path), mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return None
    return group if group.attrs.get("format") == FORMAT else None


def _has_every_array(group: zarr.Group) -> bool:
    return set(group.array_keys()) >= {*SAMPLE_IMAGES, *META_ARRAYS, DONE}


def is_store(path: str | os.PathLike[str]) -> bool:
    """True if `path` is a directory holding a store of this project (any format version)."""
    return _project_group(path) is not None


def check_creatable(path: Path) -> None:
    """Raise StoreError unless `path` can be made: its nearest existing ancestor is a writable folder."""
    ancestor = next(p for p in path.parents if p.exists())
    if not ancestor.is_dir():
        raise StoreError(f"cannot create {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create {path}: {ancestor} is not writable")


def is_complete(path: str | os.PathLike[str]) -> bool:
    """True if the store at `path` has every array (its creation was not cut short)."""
    group = _project_group(path)
    return group is not None and _has_every_array(group)


def software_versions() -> dict[str, str]:
    """Versions of everything that decides the bytes of a sample."""
    return {
        "reconstruction_gb": __version__,
        "polySim": _version("polySim"),
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "opencv": _version("opencv-python-headless"),
        "python": platform.python_version(),
    }


@contextmanager
def writer_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the writer lock of the store at `path`, or raise StoreBusy at once if a live run holds it.

    The lock is a flock on the store directory itself (no file inside the store, which zarr
    would warn about): the kernel drops it when the holding process dies, however it dies.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusy(f"{path} is being written by another generate run; "
                            "wait for it to finish or stop it") from None
        except OSError as exc:  # some network filesystems cannot lock a directory
            warnings.warn(f"cannot lock {path} ({exc.strerror}): make sure no other generate writes it",
                          stacklevel=3)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class LibraryStore:
    """An opened library store."""

    path: Path
    group: zarr.Group

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], config: GenerationConfig, seed: int, count: int) -> LibraryStore:
        """Create an empty store for `count` samples; nothing but an empty directory may be there.

        The attributes come first, so that a creation cut short is recognised as this project's
        store, missing arrays (see `is_complete`), and can be removed and made again.
        """
        path = Path(path).absolute()
        size = config.size
        group = zarr.open_group(str(path), mode="w-", zarr_format=3, attributes={
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "seed": seed,
            "count": count,
            "versions": software_versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })
        for name in IMAGE_ARRAYS:
            group.create_array(
                name, shape=(count, size, size), chunks=(1, size, size), dtype="uint8",
                fill_value=255, compressors=IMAGE_CODEC, chunk_key_encoding=CHUNK_KEYS,
            )
        group.create_array(
            "grains", shape=(count, size, size), chunks=(1, size, size), dtype="uint16",
            fill_value=0, compressors=GRAINS_CODEC, chunk_key_encoding=CHUNK_KEYS,
        )
        for name, (dtype, fill) in {**META_ARRAYS, DONE: ("bool", False)}.items():
            group.create_array(name, shape=(count,), chunks=(META_CHUNK,), dtype=dtype, fill_value=fill,
                               chunk_key_encoding=CHUNK_KEYS)
        return cls(path, group)

    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: str = "r") -> LibraryStore:
        """Open an existing store of this project (mode 'r' or 'r+')."""
        path = Path(path).absolute()
        if not path.exists():
            raise StoreError(f"{path} does not exist")
        group = _project_group(path, mode)
        if group is None:
            raise StoreError(f"{path} is not a Reconstruction-GB store")
        found = group.attrs.get("format_version")
        if found != FORMAT_VERSION:
            raise StoreError(f"{path} has store format version {found}; this version reads {FORMAT_VERSION}")
        if not _has_every_array(group):
            raise StoreError(f"{path} was never completely created (its creation was cut short); "
                             "run generate again to make it afresh")
        return cls(path, group)

    @staticmethod
    def remove(path: str | os.PathLike[str]) -> None:
        """Delete a store of this project (refuses anything else)."""
        if not is_store(path):
            raise StoreError(f"{path} is not a Reconstruction-GB store; refusing to delete it")
        shutil.rmtree(path)

    # --- description -----------------------------------------------------------------------
    @property
    def config(self) -> GenerationConfig:
        return GenerationConfig.from_dict(self.group.attrs["config"])

    @property
    def seed(self) -> int:
        return int(self.group.attrs["seed"])

    @property
    def count(self) -> int:
        """Number of planned samples."""
        return int(self.group.attrs["count"])

    @property
    def source_kind(self) -> str:
        """'generate' for a library made by polySim, 'import' for one built from PNG folders."""
        return str(self.group.attrs.get("source", {}).get("kind", "generate"))

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def done(self) -> np.ndarray:
        """Boolean mask of the samples whose data and metadata are complete."""
        return np.asarray(self.group[DONE][: self.count], dtype=bool)

    def metadata(self, name: str) -> np.ndarray:
        """One per-sample array, whole."""
        if name not in META_ARRAYS:
            raise KeyError(f"no per-sample array {name!r}")
        return self.group[name][:]

    def bytes_on_disk(self, arrays: Iterable[str] | None = None) -> int:
        """Bytes of the stored files of the given arrays (all of the store by default)."""
        roots = [self.path / name for name in arrays] if arrays is not None else [self.path]
        return sum(_tree_size(root) for root in roots)

    # --- reading ---------------------------------------------------------------------------
    def read(self, name: str, index: int) -> np.ndarray:
        """Image `name` ('micro', 'label' or 'grains') of sample `index`."""
        return self.group[name][index]

    def image_reader(self, names: Sequence[str] = IMAGE_ARRAYS) -> ImageReader:
        """Fast whole-sample reads of the given image arrays (for streaming training data)."""
        return ImageReader(self.path, [self.group[name] for name in names])

    def chunk_file(self, name: str, index: int) -> Path:
        """The file holding image `name` of sample `index` (zarr reads a missing one as the fill value)."""
        return self.path / name / self.group[name].metadata.encode_chunk_key((index, 0, 0))

    # --- writing (tasks) ---------------------------------------------------------------------
    def image_writer(self) -> ImageWriter:
        """Handles on the image arrays for a task that writes whole samples."""
        return ImageWriter(self.path, [self.group[name] for name in SAMPLE_IMAGES])

    # --- writing (driver only) -------------------------------------------------------------
    def writer_lock(self) -> AbstractContextManager[None]:
        """Hold this store's writer lock (see `writer_lock`)."""
        return writer_lock(self.path)

    def remove_partials(self) -> int:
        """Delete orphan `*.partial` chunk files left by a killed writer; returns how many."""
        orphans = [p for p in self.path.rglob("*.partial") if p.is_file()]
        for orphan in orphans:
            orphan.unlink()
        return len(orphans)

    def resize(self, count: int) -> None:
        """Grow the store to `count` planned samples (existing samples are untouched)."""
        if count < self.count:
            raise StoreError(f"{self.path} plans {self.count} pairs; it cannot shrink to {count}")
        for name, array in self.group.arrays():
            array.resize((count, *array.shape[1:]))
        self.group.attrs["count"] = count  # last: a kill before this leaves the old plan valid

    def commit(self, indices: Sequence[int], metas: Sequence[SampleMeta]) -> None:
        """Record metadata of samples whose images are written, then mark them done."""
        if not len(indices):
            return
        order = np.argsort(indices)
        index = np.asarray(indices)[order]
        rows = [asdict(metas[k]) for k in order]
        # Contiguous runs become slice writes (one request per touched chunk).
        runs = np.split(np.arange(len(index)), np.flatnonzero(np.diff(index) != 1) + 1)
        for name, (dtype, _) in META_ARRAYS.items():
            values = np.array([row[name] for row in rows], dtype=dtype)
            for run in runs:
                self.group[name][index[run[0]] : index[run[-1]] + 1] = values[run]
        for run in runs:
            self.group[DONE][index[run[0]] : index[run[-1]] + 1] = True


class ImageWriter:
    """Writes whole image chunks of the store, one file per sample and array.

    Each chunk is encoded here with the array's own Blosc settings and renamed into place, as
    zarr's LocalStore does (write `<key>.<random>.partial`, then rename: atomic against a kill),
    without zarr's event-loop and thread-pool hops, which cost more than the encoding itself
    (see docs/benchmarks.md). Tests check that the bytes equal what zarr writes.
    """

    def __init__(self, path: Path, arrays: Sequence[zarr.Array]):
        self.targets = [(array.basename, path / array.basename, array.metadata, _chunk_codec(array))
                        for array in arrays]

    def write(self, samples: Sequence[Sample]) -> None:
        """Write the images of the given samples (each into its own chunks)."""
        for sample in samples:
            for name, root, metadata, codec in self.targets:
                image = getattr(sample, name)
                if image.dtype != metadata.dtype.to_native_dtype() or image.shape != metadata.chunk_grid.chunk_shape[1:]:
                    raise ValueError(f"{name} of sample {sample.index} does not fit the store")
                key = metadata.encode_chunk_key((sample.index, 0, 0))
                atomic_write(root / key, codec.encode(np.ascontiguousarray(image)))


class ImageReader:
    """Reads whole image chunks of the store, decoding each file with the array's own codec.

    The mirror of ImageWriter: one file read and one Blosc decode per image, without zarr's
    per-call overhead (about 1 ms), which would dominate at the rates a training run reads.
    A chunk file that is absent reads as the array's fill value, as zarr would read it.
    """

    def __init__(self, path: Path, arrays: Sequence[zarr.Array]):
        self.targets = [(path / array.basename, array.metadata, _chunk_codec(array),
                         array.dtype, array.chunks[1:], array.fill_value) for array in arrays]

    def read(self, index: int) -> tuple[np.ndarray, ...]:
        """The images of sample `index`, one per array, in the order the reader was made with."""
        images = []
        for root, metadata, codec, dtype, shape, fill in self.targets:
            try:
                data = (root / metadata.encode_chunk_key((int(index), 0, 0))).read_bytes()
            except FileNotFoundError:
                images.append(np.full(shape, fill, dtype=dtype))
                continue
            images.append(np.frombuffer(codec.decode(data), dtype=dtype).reshape(shape))
        return tuple(images)


def _chunk_codec(array: zarr.Array) -> numcodecs.Blosc:
    """The numcodecs Blosc equivalent of an array whose codecs are exactly [bytes, blosc]."""
    codecs = array.metadata.codecs
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], BloscCodec):
        raise StoreError(f"array {array.basename!r} does not have the codecs of format {FORMAT_VERSION}")
    if array.dtype.itemsize > 1 and codecs[0].endian is not None and codecs[0].endian.value != sys.byteorder:
        raise StoreError(f"array {array.basename!r} is not stored in this machine's byte order")
    blosc = codecs[1]
    shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
               "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[blosc.shuffle.value]
    return numcodecs.Blosc(cname=blosc.cname.value, clevel=blosc.clevel, shuffle=shuffle,
                           blocksize=blosc.blocksize, typesize=array.dtype.itemsize)


def atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `<target>.<random>.partial`, then rename it to `target`.

    A kill leaves either the old file or the new one, never a truncated one; a failed write
    removes its partial file and raises.
    """
    partial = target.with_name(f"{target.name}.{secrets.token_hex(8)}.partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _tree_size(root: Path) -> int:
    total = 0
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            total += _tree_size(Path(entry.path))
        else:
            total += entry.stat(follow_symlinks=False).st_size
    return total
