"""Recognising, creating and opening a store at a location, through its backend (`Files`)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

from ..config import GenerationConfig
from .errors import UNREPAIRABLE, StoreDamaged, StoreError, verify_hint
from .files import Files, StoreURL, files_at
from .integrity import unrecorded
from .layout import (ALL_ARRAYS, ARRAY_ATTRIBUTES, CHUNK_KEYS, FORMAT, FORMAT_VERSION, GRAINS_CODEC, IMAGE_CODEC,
                     IMAGE_DTYPES, images_of,
                     IMAGE_CRC, META_CHUNK, NO_CRC, PER_SAMPLE_ARRAYS, check_description,
                     software_versions, writable)

ROOT = "zarr.json"  # the root group's metadata: how a store of this project is recognised


def recognise(files: Files, mode: str = "r") -> zarr.Group | None:
    """The root group in `files` if it is a store of this project (any format version), else None.

    StoreDamaged when its `zarr.json` exists but cannot be read: it may be a store of ours.
    """
    if not files.has(ROOT):
        return None
    try:
        attributes = json.loads(files.read(ROOT)).get("attributes", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise StoreDamaged(f"cannot read {files.where(ROOT)} ({type(exc).__name__}): the store's metadata is damaged; "
                           "restore it from a copy, or delete the folder yourself") from None
    if not isinstance(attributes, dict) or attributes.get("format") != FORMAT:
        return None
    try:
        # Never consolidated metadata: the store has none, and a correct read must not need it.
        return zarr.open_group(files.zarr_store(), mode=mode, use_consolidated=False)
    except Exception as exc:  # noqa: BLE001 - a group zarr cannot open is a damaged store
        raise StoreDamaged(f"cannot open {files.where()} ({type(exc).__name__}: {exc})") from None


def project_group(path: str | os.PathLike[str] | StoreURL, mode: str = "r") -> zarr.Group | None:
    """The root group at `path` if it is a store of this project (any format version), else None."""
    return recognise(files_at(path), mode)


def is_store(path: str | os.PathLike[str] | StoreURL) -> bool:
    """True if `path` is a directory holding a store of this project (any format version)."""
    return project_group(path) is not None


def creation_cut_short(path: str | os.PathLike[str] | StoreURL) -> bool:
    """True only for a format-2 store that its own creation marked incomplete (holds no sample yet)."""
    group = project_group(path)
    return (group is not None and group.attrs.get("format_version") == FORMAT_VERSION
            and group.attrs.get("complete") is False)


def create_arrays(files: Files, config: GenerationConfig, seed: int, count: int, shard: int,
                  extra: dict[str, Any] | None) -> None:
    """Write an empty store for `count` samples, B = `shard`; nothing but an empty folder may be there.

    The attributes come first with `complete: false`, which is set true last: a creation cut
    short is recognised as such and may be made again.
    """
    size = config.size
    group = zarr.open_group(files.zarr_store(), mode="w-", zarr_format=3, attributes={
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
    images = images_of(config)
    for name in images:
        dtype, fill, codec = IMAGE_DTYPES[name], 0 if name == "grains" else 255, \
            GRAINS_CODEC if name == "grains" else IMAGE_CODEC
        group.create_array(
            name, shape=(count, size, size), chunks=(1, size, size), shards=(shard, size, size), dtype=dtype,
            fill_value=fill, serializer=BytesCodec(), compressors=(codec, Crc32cCodec()),
            chunk_key_encoding=CHUNK_KEYS, dimension_names=("sample", "y", "x"), attributes=ARRAY_ATTRIBUTES[name],
        )
    for name, (dtype, fill) in PER_SAMPLE_ARRAYS.items():
        array = group.create_array(
            name, shape=(count,), chunks=(META_CHUNK,), dtype=dtype, fill_value=fill,
            compressors=(ZstdCodec(), Crc32cCodec()), chunk_key_encoding=CHUNK_KEYS,
            dimension_names=("sample",), attributes=ARRAY_ATTRIBUTES[name],
        )
        writable(array)[:] = np.full(count, fill, dtype=dtype)  # every chunk file exists from the start
    create_crc_array(group, count, len(images))
    group.attrs["complete"] = True  # last


def create_crc_array(group: zarr.Group, count: int, images: int, overwrite: bool = False) -> zarr.Array:
    """The `image_crc` array of `count` samples, nothing recorded (every chunk file written); with
    `overwrite`, in place of a damaged one (verify --repair rebuilds it)."""
    crc = group.create_array(
        IMAGE_CRC, shape=(count, images), chunks=(META_CHUNK, images), dtype="uint32",
        fill_value=NO_CRC, compressors=(ZstdCodec(), Crc32cCodec()), overwrite=overwrite,
        chunk_key_encoding=CHUNK_KEYS, dimension_names=("sample", "image"), attributes=ARRAY_ATTRIBUTES[IMAGE_CRC],
    )
    writable(crc)[:] = unrecorded(count, images)
    return writable(crc)


def open_arrays(files: Files, mode: str, crc_damage_allowed: bool = False
                ) -> tuple[zarr.Group, dict[str, zarr.Array], str | None]:
    """The root group and arrays of the format-2 store in `files` (mode 'r' or 'r+'), and what is wrong with its
    recorded checksums (None: nothing); StoreError says why not.

    Damaged checksums (`image_crc` missing, its metadata unreadable, a chunk file missing) are
    StoreDamaged, unless `crc_damage_allowed` (verify, which reports and rebuilds them): then the
    arrays lack `image_crc` and the third value says what is wrong, after reading the array whole.
    """
    where = files.where()
    if not files.exists():
        raise StoreError(f"{where} does not exist")
    group = recognise(files, mode)
    if group is None:
        raise StoreError(f"{where} is not a Reconstruction-GB store")
    found = group.attrs.get("format_version")
    if found == 1 and type(found) is int:
        raise StoreError(f"{where} has store format version 1; rewrite it as format {FORMAT_VERSION} with "
                         f"`python cli.py upgrade {where} --out NEW`")
    if type(found) is not int:  # "2" (text) or 2.0 would print like the number the reader wants
        raise StoreDamaged(f"{where} is damaged: its root zarr.json gives format_version {json.dumps(found)}, "
                           f"not a whole number (this version reads {FORMAT_VERSION}); {UNREPAIRABLE}")
    if found != FORMAT_VERSION:
        raise StoreError(f"{where} has store format version {found}; this version reads {FORMAT_VERSION}")
    if group.attrs.get("complete") is not True:
        raise StoreError(f"{where} was never completely created (its creation was cut short); "
                         "run generate again to make it afresh")
    arrays = {}
    try:
        extra = [name for name in images_of(GenerationConfig.from_dict(group.attrs["config"]))
                 if name not in ALL_ARRAYS]
    except Exception:  # noqa: BLE001 - an unreadable description is named by check_description below
        extra = []
    for name in (*ALL_ARRAYS, *extra):
        try:
            arrays[name] = writable(group[name])
        except Exception as exc:  # noqa: BLE001 - missing or garbage zarr.json of one array
            raise StoreDamaged(f"{where} is damaged: array {name!r} is missing or its metadata cannot be read "
                               f"({type(exc).__name__}); {verify_hint(where)}") from None
    # Not group.array_keys(): it parses every array's zarr.json, and a garbage one was a traceback.
    crc_problem = None
    if not files.has(f"{IMAGE_CRC}/{ROOT}"):
        crc_problem = "are missing"
    else:
        try:
            arrays[IMAGE_CRC] = writable(group[IMAGE_CRC])
        except Exception as exc:  # noqa: BLE001 - garbage zarr.json
            crc_problem = f"have metadata that cannot be read ({IMAGE_CRC}/zarr.json: {type(exc).__name__})"
    count = check_description(where, group.attrs, arrays)
    short = [name for name, array in arrays.items() if array.shape[0] < count]
    if short:
        raise StoreDamaged(f"{where} is damaged: array {short[0]!r} holds fewer than the {count} planned samples; "
                           f"{verify_hint(where)}")
    if crc_problem is None:
        crc_problem = _crc_chunk_problem(files, arrays[IMAGE_CRC], count, read=crc_damage_allowed)
    if crc_problem is not None:
        arrays.pop(IMAGE_CRC, None)
        if not crc_damage_allowed:
            raise StoreDamaged(crc_damage_line(where, crc_problem))
    return group, arrays, crc_problem


def crc_damage_line(where: str, problem: str) -> str:
    """The one line for a store whose recorded checksums are damaged (`problem`: what is wrong with them)."""
    return (f"{where} is damaged: its recorded image checksums ({IMAGE_CRC}) {problem}, so a moved or swapped "
            f"shard would read as another sample; rebuild them with `python cli.py verify {where} --repair`")


def _crc_chunk_problem(files: Files, array: zarr.Array, count: int, read: bool) -> str | None:
    """What is wrong with the chunks of `image_crc` (one file each from creation on), or None; with `read`,
    the whole array is also read (CRC32C checked)."""
    for chunk in range(-(-count // META_CHUNK)):
        if not files.has(f"{IMAGE_CRC}/{array.metadata.encode_chunk_key((chunk, 0))}"):
            first = chunk * META_CHUNK
            return f"of samples {first}-{min(first + META_CHUNK, count) - 1} are missing"
    if read:
        try:
            np.asarray(array[:count])
        except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk, whatever the codec raises
            return f"cannot be read ({type(exc).__name__})"
    return None
