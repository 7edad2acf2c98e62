"""The library's Zarr store: the only module that knows its layout (see docs/store.md).

Writers: each generation task writes whole shards of the image arrays (B consecutive samples a
shard, B fixed in the store at creation), so exactly one writer per file; only the driver
creates, resizes and writes the per-sample arrays and the `done` marker, after the images of
those samples are in place. Every image chunk and every per-sample chunk carries a CRC32C.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import math
import os
import platform
import secrets
import shutil
import sys
import warnings
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

from . import __version__
from .config import GenerationConfig
from .sample import Sample, SampleMeta
from .shards import ChunkError, ShardLayout, chunk_crc, encode_shard

FORMAT = "reconstruction-gb"
FORMAT_VERSION = 2
IMAGE_ARRAYS = ("micro", "label")
# The (N, S, S) arrays: one inner chunk per sample, B samples a shard, written by the task that makes them.
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
# (N, 3) uint32: the CRC32C of each sample's inner chunk of micro, label and grains, recorded by the
# driver at commit. A reader compares it with the chunk it reads: a shard file moved or swapped
# (each chunk's own checksum still valid) reads as damage, not as another sample's images.
# Stores made before it existed lack it and are read without that check (docs/store.md).
IMAGE_CRC = "image_crc"
NO_CRC = 0  # not recorded (a sample not done, or written by a version without the array)
ALL_ARRAYS = (*SAMPLE_IMAGES, *META_ARRAYS, DONE)
OPTIONAL_ARRAYS = (IMAGE_CRC,)
# Samples per chunk of the per-sample arrays (written by the driver alone).
META_CHUNK = 4096
# Largest shard, in samples: about 0.5 MB of micro at 512 px, and the work a kill can lose.
MAX_SHARD = 32
# A library gets at least about this many shards (tasks) before shards grow to MAX_SHARD.
MIN_SHARDS = 16
# Chunk files sit side by side (`micro/c.12.0.0`): no directory per shard to create.
CHUNK_KEYS = {"name": "default", "separator": "."}
# Binary images: bitshuffle turns 0/255 bytes into one bit plane repeated eight times.
IMAGE_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
# Grain maps are not part of the size target: a low level keeps the workers' CPU for polySim.
GRAINS_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
# What each array holds, in the short attributes xarray shows (docs/store.md).
ARRAY_ATTRIBUTES: dict[str, dict[str, str]] = {
    "micro": {"meaning": "fragmented boundary image (model input)", "convention": "0 = boundary, 255 = background",
              "units": "1"},
    "label": {"meaning": "true boundary image (ground truth)", "convention": "0 = boundary, 255 = background",
              "units": "1"},
    "grains": {"meaning": "polySim grain id map", "convention": "ids 1..num_grains; all 0 when imported",
               "units": "1"},
    "seed": {"meaning": "libc srand value before polySim", "units": "1"},
    "nucleation_rate": {"meaning": "polySim nucleation rate drawn", "units": "1"},
    "growth_rate": {"meaning": "polySim growth rate drawn", "units": "1"},
    "num_grains": {"meaning": "grains in the grain map", "units": "1"},
    "avrami_exponent": {"meaning": "polySim Avrami exponent fit", "units": "1"},
    "dilation": {"meaning": "side of the square dilation kernel", "units": "pixel"},
    "gap_patches": {"meaning": "blurred patches applied to micro", "units": "1"},
    "erased_fraction": {"meaning": "share of label boundary pixels that are background in micro",
                        "units": "1"},
    "split": {"meaning": "0 train, 1 val, 2 test", "units": "1"},
    DONE: {"meaning": "sample complete; only done samples are valid", "units": "1"},
    IMAGE_CRC: {"meaning": "CRC32C of the sample's micro, label and grains chunks (0: not recorded)", "units": "1"},
}


class StoreError(RuntimeError):
    """A path that is not a usable store of this project."""


class StoreBusy(StoreError):
    """Another live run is writing the store."""


class StoreDamaged(StoreError):
    """A store of this project with missing or unreadable parts; `verify` names them."""


def verify_hint(path: Path) -> str:
    return f"run `python cli.py verify {path}`"


# Damage to what describes the store (root attributes, an array's zarr.json) is beyond `verify
# --repair`, which needs that description to remake samples.
UNREPAIRABLE = "restore that file from a copy of the store, or make the library again in a new --out"
IMAGE_DTYPES = {"micro": "uint8", "label": "uint8", "grains": "uint16"}


def _check_description(path: Path, attrs: Any, arrays: dict[str, zarr.Array]) -> int:
    """The planned sample count, once the root attributes and the arrays' types are what format 2 writes."""
    try:
        config = GenerationConfig.from_dict(attrs["config"])
        seed, count = attrs["seed"], attrs["count"]
        if type(seed) is not int or type(count) is not int or seed < 0 or count < 0:
            raise ValueError("seed and count must be whole numbers >= 0")
    except Exception as exc:  # noqa: BLE001 - a missing key, a wrong type, a config no version makes
        what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else f"an unreadable description ({exc})"
        raise StoreDamaged(f"{path} is damaged: its root zarr.json attributes have {what}; {UNREPAIRABLE}") from None
    wanted = {**IMAGE_DTYPES, **{name: dtype for name, (dtype, _) in META_ARRAYS.items()}, DONE: "bool",
              IMAGE_CRC: "uint32"}
    for name, array in arrays.items():
        if np.dtype(array.dtype) != np.dtype(wanted[name]):
            raise StoreDamaged(f"{path} is damaged: array {name!r} has data type {array.dtype}, not {wanted[name]} "
                               f"as this format stores it ({name}/zarr.json); {UNREPAIRABLE}")
        if name == IMAGE_CRC and tuple(array.shape[1:]) != (len(SAMPLE_IMAGES),):
            raise StoreDamaged(f"{path} is damaged: array {name!r} has shape {array.shape}, not (N, "
                               f"{len(SAMPLE_IMAGES)}) ({name}/zarr.json); {UNREPAIRABLE}")
        if name in IMAGE_DTYPES and tuple(array.shape[1:]) != (config.size, config.size):
            raise StoreDamaged(f"{path} is damaged: array {name!r} holds images of {tuple(array.shape[1:])} px, not "
                               f"the library's {config.size} x {config.size} ({name}/zarr.json); {UNREPAIRABLE}")
    return count


def _project_group(path: str | os.PathLike[str], mode: str = "r") -> zarr.Group | None:
    """The root group at `path` if it is a store of this project (any format version), else None.

    StoreDamaged when `path/zarr.json` exists but cannot be read: it may be a store of ours.
    """
    root = Path(path) / "zarr.json"
    if not root.is_file():
        return None
    try:
        attributes = json.loads(root.read_bytes()).get("attributes", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise StoreDamaged(f"cannot read {root} ({type(exc).__name__}): the store's metadata is damaged; "
                           "restore it from a copy, or delete the folder yourself") from None
    if not isinstance(attributes, dict) or attributes.get("format") != FORMAT:
        return None
    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as exc:  # noqa: BLE001 - a group zarr cannot open is a damaged store
        raise StoreDamaged(f"cannot open {path} ({type(exc).__name__}: {exc})") from None


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


def check_writable_folder(path: Path) -> None:
    """Raise StoreError unless files can be written in the folder `path` (existing, or creatable)."""
    if path.exists():
        if not path.is_dir():
            raise StoreError(f"{path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StoreError(f"cannot write in {path}: it is not writable")
        return
    check_creatable(path)


def creation_cut_short(path: str | os.PathLike[str]) -> bool:
    """True only for a format-2 store that its own creation marked incomplete (holds no sample yet)."""
    group = _project_group(path)
    return (group is not None and group.attrs.get("format_version") == FORMAT_VERSION
            and group.attrs.get("complete") is False)


def shard_samples(count: int) -> int:
    """Samples per shard for a store created for `count` samples: at least MIN_SHARDS shards, at most MAX_SHARD."""
    return max(1, min(MAX_SHARD, count // MIN_SHARDS))


def file_count(count: int, shard: int) -> int:
    """Files of a complete store of `count` samples: shards of 3 image arrays, per-sample chunks, metadata."""
    return (len(SAMPLE_IMAGES) * math.ceil(count / shard) + (len(META_ARRAYS) + 2) * math.ceil(count / META_CHUNK)
            + 1 + len(ALL_ARRAYS) + len(OPTIONAL_ARRAYS))


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


def _writable(array: zarr.Array) -> zarr.Array:
    # A chunk equal to the fill value must still be written: a missing chunk file means damage.
    return array.with_config({"write_empty_chunks": True})


@dataclass(frozen=True)
class LibraryStore:
    """An opened library store."""

    path: Path
    group: zarr.Group
    arrays: dict[str, zarr.Array]
    _readers: dict[str, ImageReader] = field(default_factory=dict, compare=False, repr=False)

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], config: GenerationConfig, seed: int, count: int,
               shard: int | None = None, extra: dict[str, Any] | None = None) -> LibraryStore:
        """Create an empty store for `count` samples; nothing but an empty directory may be there.

        The attributes come first with `complete: false`, which is set true last: a creation cut
        short is recognised as such and may be made again; nothing else is ever replaced unasked.
        `extra` attributes (an import's `source`) are written with the first ones.
        """
        path = Path(path).absolute()
        size = config.size
        shard = shard or shard_samples(count)
        group = zarr.open_group(str(path), mode="w-", zarr_format=3, attributes={
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "complete": False,
            "config": config.to_dict(),
            "seed": seed,
            "count": count,
            "shard_samples": shard,
            "versions": software_versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **(extra or {}),
        })
        for name, dtype, fill, codec in (("micro", "uint8", 255, IMAGE_CODEC), ("label", "uint8", 255, IMAGE_CODEC),
                                         ("grains", "uint16", 0, GRAINS_CODEC)):
            group.create_array(
                name, shape=(count, size, size), chunks=(1, size, size), shards=(shard, size, size), dtype=dtype,
                fill_value=fill, serializer=BytesCodec(), compressors=(codec, Crc32cCodec()),
                chunk_key_encoding=CHUNK_KEYS, dimension_names=("sample", "y", "x"), attributes=ARRAY_ATTRIBUTES[name],
            )
        for name, (dtype, fill) in {**META_ARRAYS, DONE: ("bool", False)}.items():
            array = group.create_array(
                name, shape=(count,), chunks=(META_CHUNK,), dtype=dtype, fill_value=fill,
                compressors=(ZstdCodec(), Crc32cCodec()), chunk_key_encoding=CHUNK_KEYS,
                dimension_names=("sample",), attributes=ARRAY_ATTRIBUTES[name],
            )
            _writable(array)[:] = np.full(count, fill, dtype=dtype)  # every chunk file exists from the start
        crc = group.create_array(
            IMAGE_CRC, shape=(count, len(SAMPLE_IMAGES)), chunks=(META_CHUNK, len(SAMPLE_IMAGES)), dtype="uint32",
            fill_value=NO_CRC, compressors=(ZstdCodec(), Crc32cCodec()), chunk_key_encoding=CHUNK_KEYS,
            dimension_names=("sample", "image"), attributes=ARRAY_ATTRIBUTES[IMAGE_CRC],
        )
        _writable(crc)[:] = np.full((count, len(SAMPLE_IMAGES)), NO_CRC, dtype="uint32")
        group.attrs["complete"] = True  # last
        return cls.open(path, mode="r+")

    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: str = "r") -> LibraryStore:
        """Open an existing format-2 store of this project (mode 'r' or 'r+'); StoreError says why not."""
        path = Path(path).absolute()
        if not path.exists():
            raise StoreError(f"{path} does not exist")
        group = _project_group(path, mode)
        if group is None:
            raise StoreError(f"{path} is not a Reconstruction-GB store")
        found = group.attrs.get("format_version")
        if found == 1 and type(found) is int:
            raise StoreError(f"{path} has store format version 1; rewrite it as format {FORMAT_VERSION} with "
                             f"`python cli.py upgrade {path} --out NEW`")
        if type(found) is not int:  # "2" (text) or 2.0 would print like the number the reader wants
            raise StoreDamaged(f"{path} is damaged: its root zarr.json gives format_version {json.dumps(found)}, "
                               f"not a whole number (this version reads {FORMAT_VERSION}); {UNREPAIRABLE}")
        if found != FORMAT_VERSION:
            raise StoreError(f"{path} has store format version {found}; this version reads {FORMAT_VERSION}")
        if group.attrs.get("complete") is not True:
            raise StoreError(f"{path} was never completely created (its creation was cut short); "
                             "run generate again to make it afresh")
        arrays = {}
        for name in ALL_ARRAYS:
            try:
                arrays[name] = _writable(group[name])
            except Exception as exc:  # noqa: BLE001 - missing or garbage zarr.json of one array
                raise StoreDamaged(f"{path} is damaged: array {name!r} is missing or its metadata cannot be read "
                                   f"({type(exc).__name__}); {verify_hint(path)}") from None
        if IMAGE_CRC in set(group.array_keys()):  # absent from stores made before it existed
            try:
                arrays[IMAGE_CRC] = _writable(group[IMAGE_CRC])
            except Exception as exc:  # noqa: BLE001 - garbage zarr.json
                raise StoreDamaged(f"{path} is damaged: the metadata of array {IMAGE_CRC!r} cannot be read "
                                   f"({type(exc).__name__}); {UNREPAIRABLE}") from None
        count = _check_description(path, group.attrs, arrays)
        short = [name for name, array in arrays.items() if array.shape[0] < count]
        if short:
            raise StoreDamaged(f"{path} is damaged: array {short[0]!r} holds fewer than the {count} planned samples; "
                               f"{verify_hint(path)}")
        return cls(path, group, arrays)

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
    def shard(self) -> int:
        """Samples per shard of the image arrays (fixed at creation)."""
        return int(self.arrays["micro"].shards[0])

    @property
    def source_kind(self) -> str:
        """'generate' for a library made by polySim, 'import' for one built from PNG folders."""
        return str(self.group.attrs.get("source", {}).get("kind", "generate"))

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def done(self) -> np.ndarray:
        """Boolean mask of the samples whose data and metadata are complete (StoreDamaged if unreadable)."""
        return np.asarray(self._per_sample(DONE), dtype=bool)

    def metadata(self, name: str) -> np.ndarray:
        """One per-sample array, whole (StoreDamaged if a chunk is missing or fails its checksum)."""
        if name not in META_ARRAYS:
            raise KeyError(f"no per-sample array {name!r}")
        return self._per_sample(name)

    def _per_sample(self, name: str) -> np.ndarray:
        array = self.arrays[name]
        what = "done markers" if name == DONE else f"per-sample array {name!r}"
        for chunk in range(math.ceil(self.count / META_CHUNK)):
            if not (self.path / name / array.metadata.encode_chunk_key((chunk,))).is_file():
                first = chunk * META_CHUNK
                raise StoreDamaged(f"{self.path} is damaged: the {what} of samples {first}-"
                                   f"{min(first + META_CHUNK, self.count) - 1} are missing; {verify_hint(self.path)}")
        try:
            return array[: self.count]
        except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk, whatever the codec raises
            raise StoreDamaged(f"{self.path} is damaged: cannot read the {what} ({type(exc).__name__}: {exc}); "
                               f"{verify_hint(self.path)}") from None

    def recorded_crcs(self) -> np.ndarray | None:
        """The (N, 3) recorded chunk checksums, or None for a store made before they were (StoreDamaged if unreadable)."""
        if IMAGE_CRC not in self.arrays:
            return None
        try:
            return np.asarray(self.arrays[IMAGE_CRC][: self.count])
        except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk
            raise StoreDamaged(f"{self.path} is damaged: cannot read the array {IMAGE_CRC!r} ({type(exc).__name__}); "
                               f"{verify_hint(self.path)}") from None

    def bytes_on_disk(self, arrays: Iterable[str] | None = None) -> int:
        """Bytes of the stored files of the given arrays (all of the store by default)."""
        roots = [self.path / name for name in arrays] if arrays is not None else [self.path]
        return sum(_tree_size(root) for root in roots)

    # --- reading ---------------------------------------------------------------------------
    def read(self, name: str, index: int) -> np.ndarray:
        """Image `name` ('micro', 'label' or 'grains') of sample `index`; StoreDamaged if absent or corrupt."""
        if name not in self._readers:
            self._readers[name] = self.image_reader((name,))
        return self._readers[name].read(index)[0]

    def image_reader(self, names: Sequence[str] = IMAGE_ARRAYS) -> ImageReader:
        """Fast whole-sample reads of the given image arrays (for streaming training data)."""
        return ImageReader(self.path, [self.arrays[name] for name in names], self.arrays.get(IMAGE_CRC), self.count)

    def shard_file(self, name: str, index: int) -> Path:
        """The shard file holding image `name` of sample `index`."""
        return self.path / name / self.arrays[name].metadata.encode_chunk_key((index // self.shard, 0, 0))

    # --- writing (tasks) ---------------------------------------------------------------------
    def image_writer(self) -> ImageWriter:
        """Handles on the image arrays for a task that writes whole shards (picklable: tasks get it from the driver)."""
        return ImageWriter(self.path, [self.arrays[name] for name in SAMPLE_IMAGES])

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
        old = self.count
        for name, array in self.arrays.items():
            array.resize((count, *array.shape[1:]))
        for name, (dtype, fill) in {**META_ARRAYS, DONE: ("bool", False)}.items():
            self.arrays[name][old:count] = np.full(count - old, fill, dtype=dtype)  # new chunk files exist
        if IMAGE_CRC in self.arrays:
            self.arrays[IMAGE_CRC][old:count] = np.full((count - old, len(SAMPLE_IMAGES)), NO_CRC, dtype="uint32")
        self.group.attrs["count"] = count  # last: a kill before this leaves the old plan valid

    def commit(self, indices: Sequence[int], metas: Sequence[SampleMeta],
               crcs: Sequence[Sequence[int]] | None = None) -> None:
        """Record metadata of samples whose images are written, then mark them done.

        `crcs`: per sample, the CRC32C of its micro, label and grains chunks as `ImageWriter.write`
        returns them; without them the samples are recorded as unchecked (NO_CRC).
        """
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
                self.arrays[name][index[run[0]] : index[run[-1]] + 1] = values[run]
        if IMAGE_CRC in self.arrays:
            table = (np.array([crcs[k] for k in order], dtype="uint32").reshape(len(order), len(SAMPLE_IMAGES))
                     if crcs is not None else np.full((len(order), len(SAMPLE_IMAGES)), NO_CRC, dtype="uint32"))
            for run in runs:
                self.arrays[IMAGE_CRC][index[run[0]] : index[run[-1]] + 1] = table[run]
        for run in runs:
            self.arrays[DONE][index[run[0]] : index[run[-1]] + 1] = True


def _layout(array: zarr.Array) -> ShardLayout:
    """The shard layout of an image array whose codecs are exactly format 2's (else StoreError)."""
    codecs = array.metadata.codecs
    sharding = codecs[0] if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec) else None
    inner = sharding.codecs if sharding is not None else ()
    index_codecs = sharding.index_codecs if sharding is not None else ()
    if (sharding is None or len(inner) != 3 or not isinstance(inner[0], BytesCodec)
            or not isinstance(inner[1], BloscCodec) or not isinstance(inner[2], Crc32cCodec)
            or sharding.index_location.value != "end" or len(index_codecs) != 2
            or not isinstance(index_codecs[1], Crc32cCodec) or tuple(sharding.chunk_shape)[0] != 1):
        raise StoreError(f"array {array.basename!r} does not have the codecs of format {FORMAT_VERSION}")
    if array.dtype.itemsize > 1 and inner[0].endian is not None and inner[0].endian.value != sys.byteorder:
        raise StoreError(f"array {array.basename!r} is not stored in this machine's byte order")
    blosc = inner[1]
    shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
               "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[blosc.shuffle.value]
    codec = numcodecs.Blosc(cname=blosc.cname.value, clevel=blosc.clevel, shuffle=shuffle,
                            blocksize=blosc.blocksize, typesize=array.dtype.itemsize)
    return ShardLayout(samples=int(array.shards[0]), image_shape=tuple(array.shape[1:]),
                       dtype=np.dtype(array.dtype), codec=codec)


class ImageWriter:
    """Writes whole shards of the image arrays, one file per shard and array.

    Each image is encoded here with the array's own Blosc settings and CRC32C, the shard is
    assembled in zarr's sharding layout and renamed into place, as zarr's LocalStore does (write
    `<key>.<random>.partial`, then rename: atomic against a kill), without zarr's event-loop
    and thread-pool hops, which cost more than the encoding itself (see docs/benchmarks.md).
    Tests check that the bytes equal what zarr writes.
    """

    def __init__(self, path: Path, arrays: Sequence[zarr.Array]):
        self.targets = [(array.basename, path / array.basename, array.metadata, _layout(array)) for array in arrays]

    def write(self, samples: Sequence[Sample]) -> list[tuple[int, ...]]:
        """Write the shards holding the given samples; a shard holds exactly the given samples that fall in it.

        Callers give whole shards (every sample of each shard touched), since a shard is replaced whole.
        Returns, per sample in the order given, the CRC32C of each of its chunks (for `commit`).
        """
        crcs: dict[int, list[int]] = {sample.index: [] for sample in samples}
        by_shard: dict[int, list[Sample]] = {}
        for _, _, _, layout in self.targets[:1]:
            for sample in samples:
                by_shard.setdefault(sample.index // layout.samples, []).append(sample)
        for shard, members in sorted(by_shard.items()):
            for name, root, metadata, layout in self.targets:
                chunks: list[bytes | None] = [None] * layout.samples
                for sample in members:
                    try:
                        chunk = chunks[sample.index % layout.samples] = layout.encode_image(getattr(sample, name))
                    except ValueError as exc:
                        raise ValueError(f"{name} of sample {sample.index} does not fit the store: {exc}") from None
                    crcs[sample.index].append(chunk_crc(chunk))
                atomic_write(root / metadata.encode_chunk_key((shard, 0, 0)), encode_shard(chunks))
        return [tuple(crcs[sample.index]) for sample in samples]


class ImageReader:
    """Reads whole-sample images of the store: one byte-range read and one Blosc decode per image.

    The mirror of ImageWriter, without zarr's per-call overhead (about 1 ms), which would
    dominate at the rates a training run reads. Each shard's index (16 bytes a sample) is read
    once and kept. An image that is absent, or whose CRC32C does not match, raises StoreDamaged
    naming the sample: a done sample never reads as the fill value.
    """

    def __init__(self, path: Path, arrays: Sequence[zarr.Array], crc_array: zarr.Array | None = None,
                 count: int = 0):
        self.store_path = path
        self.targets = [(array.basename, path / array.basename, array.metadata, _layout(array)) for array in arrays]
        self._indices: dict[tuple[int, int], tuple[Path, list[tuple[int, int]]]] = {}
        self._crc_array, self._count = crc_array, count
        self._columns = [SAMPLE_IMAGES.index(array.basename) for array in arrays]
        self._crcs: np.ndarray | None = None  # the recorded CRCs, read once (4 bytes an image)

    def read(self, index: int) -> tuple[np.ndarray, ...]:
        """The images of sample `index`, one per array, in the order the reader was made with."""
        images = []
        for position in range(len(self.targets)):
            try:
                images.append(self.read_one(position, index))
            except ChunkError as exc:
                raise StoreDamaged(f"sample {index}: {self.targets[position][0]}: {exc}; "
                                   f"{verify_hint(self.store_path)}") from None
        return tuple(images)

    def read_one(self, position: int, index: int) -> np.ndarray:
        """Image of sample `index` in the reader's array `position`; ChunkError says why it cannot be read."""
        _, root, metadata, layout = self.targets[position]
        shard, slot = divmod(int(index), layout.samples)
        kept = self._indices.get((position, shard))
        if kept is None:
            path = root / metadata.encode_chunk_key((shard, 0, 0))
            kept = self._indices[(position, shard)] = (path, layout.read_index(path))
        return layout.read_image(kept[0], kept[1], slot, self._recorded_crc(position, int(index)))

    def _recorded_crc(self, position: int, index: int) -> int:
        """The CRC32C the driver recorded for this image of sample `index`, or NO_CRC."""
        if self._crc_array is None:
            return NO_CRC
        if self._crcs is None:
            try:
                self._crcs = np.asarray(self._crc_array[: self._count])
            except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk, whatever the codec raises
                raise ChunkError(f"cannot read the recorded checksums ({IMAGE_CRC}: {type(exc).__name__})") from None
        return int(self._crcs[index, self._columns[position]]) if index < len(self._crcs) else NO_CRC

    def forget(self) -> None:
        """Drop the kept shard indices and recorded checksums (after shards were rewritten)."""
        self._indices.clear()
        self._crcs = None


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
