"""What format 2 is (docs/store.md): array names, types, codecs, attributes, shard sizing, description checks.

No I/O here: the rooms that create, write and read a store take their layout from this module.
"""

from __future__ import annotations

import math
import platform
import sys
from importlib.metadata import version as _version
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec
from zarr.core.metadata import ArrayV3Metadata

from .. import __version__
from ..config import GenerationConfig
from ..presets import PRESETS
from ..shards import ShardLayout
from .errors import UNREPAIRABLE, StoreDamaged, StoreError

FORMAT = "reconstruction-gb"
FORMAT_VERSION = 2
IMAGE_ARRAYS = ("micro", "label")
# The (N, S, S) arrays: one inner chunk per sample, B samples a shard, written by the task that makes them.
SAMPLE_IMAGES = (*IMAGE_ARRAYS, "grains")
IMAGE_DTYPES = {"micro": "uint8", "label": "uint8", "grains": "uint16", "clean": "uint8"}
# A micrograph store holds one more image array, `clean` (the table of presets says which).
OPTIONAL_IMAGES = ("clean",)
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
# The (N,) arrays the driver alone writes, in the order they are made: name -> (dtype, fill value).
PER_SAMPLE_ARRAYS: dict[str, tuple[str, Any]] = {**META_ARRAYS, DONE: ("bool", False)}
# (N, 3) uint32: the CRC32C of each sample's inner chunk of micro, label and grains, recorded by the
# driver at commit. A reader compares it with the chunk it reads: a shard file moved or swapped
# (each chunk's own checksum still valid) reads as damage, not as another sample's images.
# A store without it (made before it existed, or one that lost it) is damaged until `verify --repair`
# rebuilds it (docs/store.md).
IMAGE_CRC = "image_crc"
NO_CRC = 0  # not recorded (a sample not done)
ALL_ARRAYS = (*SAMPLE_IMAGES, *META_ARRAYS, DONE)
# Every image array a store may hold, in `image_crc`'s column order.
ALL_IMAGES = (*SAMPLE_IMAGES, *OPTIONAL_IMAGES)
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
    IMAGE_CRC: {"meaning": "CRC32C of the sample's micro, label and grains chunks (and clean's, in a micrograph "
                           "store; 0: not recorded)", "units": "1"},
    "clean": {"meaning": "the micrograph without distractors and noise", "convention": "8-bit gray, as micro",
              "units": "1"},
}


def images_of(config: GenerationConfig) -> tuple[str, ...]:
    """The image arrays of a store of `config`, in `image_crc`'s column order: SAMPLE_IMAGES, then
    `clean` for the micrograph preset (pipeline/presets)."""
    return PRESETS[config.preset].images


def shard_samples(count: int) -> int:
    """Samples per shard for a store created for `count` samples: at least MIN_SHARDS shards, at most MAX_SHARD."""
    return max(1, min(MAX_SHARD, count // MIN_SHARDS))


def file_count(count: int, shard: int, images: int = len(SAMPLE_IMAGES)) -> int:
    """Files of a complete store of `count` samples: shards of its image arrays, per-sample chunks, metadata."""
    return (images * math.ceil(count / shard) + (len(META_ARRAYS) + 2) * math.ceil(count / META_CHUNK)
            + 1 + len(ALL_ARRAYS) + len(OPTIONAL_ARRAYS) + images - len(SAMPLE_IMAGES))


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


def writable(array: zarr.Array) -> zarr.Array:
    """`array` as the store writes it: every chunk written, even one equal to the fill value."""
    # A missing chunk file means damage, so a blank chunk must exist as a file too.
    return array.with_config({"write_empty_chunks": True})


def chunk_key(name: str, metadata: ArrayV3Metadata, coords: tuple[int, ...]) -> str:
    """The key of one chunk (or shard) of array `name` inside the store: `micro/c.3.0.0`."""
    return f"{name}/{metadata.encode_chunk_key(coords)}"


def check_description(where: str, attrs: Any, arrays: dict[str, zarr.Array]) -> int:
    """The planned sample count, once the root attributes and the arrays' types are what format 2 writes."""
    try:
        config = GenerationConfig.from_dict(attrs["config"])
        seed, count = attrs["seed"], attrs["count"]
        if type(seed) is not int or type(count) is not int or seed < 0 or count < 0:
            raise ValueError("seed and count must be whole numbers >= 0")
    except Exception as exc:  # noqa: BLE001 - a missing key, a wrong type, a config no version makes
        what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else f"an unreadable description ({exc})"
        raise StoreDamaged(f"{where} is damaged: its root zarr.json attributes have {what}; {UNREPAIRABLE}") from None
    wanted = {**IMAGE_DTYPES, **{name: dtype for name, (dtype, _) in PER_SAMPLE_ARRAYS.items()}, IMAGE_CRC: "uint32"}
    for name, array in arrays.items():
        if np.dtype(array.dtype) != np.dtype(wanted[name]):
            raise StoreDamaged(f"{where} is damaged: array {name!r} has data type {array.dtype}, not {wanted[name]} "
                               f"as this format stores it ({name}/zarr.json); {UNREPAIRABLE}")
        if name == IMAGE_CRC and tuple(array.shape[1:]) != (len(images_of(config)),):
            raise StoreDamaged(f"{where} is damaged: array {name!r} has shape {array.shape}, not (N, "
                               f"{len(images_of(config))}) ({name}/zarr.json); {UNREPAIRABLE}")
        if name in IMAGE_DTYPES and tuple(array.shape[1:]) != (config.size, config.size):
            raise StoreDamaged(f"{where} is damaged: array {name!r} holds images of {tuple(array.shape[1:])} px, not "
                               f"the library's {config.size} x {config.size} ({name}/zarr.json); {UNREPAIRABLE}")
    return count


def image_layout(array: zarr.Array) -> ShardLayout:
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
