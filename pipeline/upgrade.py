"""`upgrade`: rewrite a format-1 store as a new format-2 store, verify it, and only then give it its name.

Format 1 (one chunk file per sample and image array, no checksums) is read here and nowhere
else: every other reader of the project reads format 2 only. The old store is never changed.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec

from .config import GenerationConfig
from .sample import Sample
from .store import (DONE, IMAGE_CRC, META_ARRAYS, SAMPLE_IMAGES, LibraryStore, Location, StoreError, StoreURL,
                    check_creatable, files_at, is_no_space, no_space_line, project_group, store_location)
from .verify import VerifyReport, verify

OLD_FORMAT = 1
LISTED = 10


class UpgradeError(RuntimeError):
    """A store that cannot be upgraded; nothing was written."""


@dataclass(frozen=True)
class UpgradeReport:
    """What one `upgrade` call did."""

    old: Path
    new: Location
    count: int
    done: int
    files_before: int
    files_after: int

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        return (f"upgraded {self.old} (format {OLD_FORMAT}, {self.files_before:,} files) -> {self.new} (format 2, "
                f"{self.files_after:,} files): {self.done} of {self.count} pairs done, verified")


def upgrade(old: str | os.PathLike[str], new: str | os.PathLike[str],
            echo: Callable[[str], None] = lambda line: None) -> UpgradeReport:
    """Write the format-1 store `old` as the format-2 store `new` (which must not exist), verified."""
    old, new = Path(old).absolute(), store_location(new)
    group = _format1_group(old)
    if isinstance(new, StoreURL):
        return _upgrade_to_url(group, old, new, echo)
    if new.exists() or new.is_symlink():
        raise UpgradeError(f"{new} already exists; upgrade never overwrites, choose another --out")
    try:
        check_creatable(new)
    except StoreError as exc:
        raise UpgradeError(str(exc)) from None
    used = sum(p.stat().st_size for p in old.rglob("*") if p.is_file())
    ancestor = next(p for p in new.parents if p.exists())
    free = shutil.disk_usage(ancestor).free
    if used > free:
        raise UpgradeError(f"{new} needs about {_amount(used)} (the size of {old}); "
                           f"{ancestor} has {_amount(free)} free")
    attrs = dict(group.attrs)
    count = int(attrs["count"])
    partial = new.with_name(f"{new.name}.{secrets.token_hex(8)}.partial")
    try:
        report = _write_verified(group, old, partial, attrs, count, echo)
        os.rename(partial, new)
    except BaseException as exc:  # Ctrl-C included: leave no half-written store behind
        shutil.rmtree(partial, ignore_errors=True)
        if is_no_space(exc):
            raise UpgradeError(no_space_line(exc, new, "nothing written")) from None  # type: ignore[arg-type]
        raise
    done = int(report.checked)
    return UpgradeReport(old, new, count, done, sum(1 for p in old.rglob("*") if p.is_file()),
                         sum(1 for p in new.rglob("*") if p.is_file()))


def _write_verified(group: zarr.Group, old: Path, target: Location, attrs: dict, count: int,
                    echo: Callable[[str], None]) -> VerifyReport:
    """Write the format-2 copy of `old` at `target` and verify it; UpgradeError naming the samples that fail."""
    _write(group, old, target, attrs, count, echo)
    report = verify(target)
    if report.bad:
        listed = ", ".join(map(str, report.bad[:LISTED])) + (" ..." if len(report.bad) > LISTED else "")
        raise UpgradeError(f"the upgraded copy of {old} fails verification at samples {listed}; nothing written")
    return report


def _amount(size: int) -> str:
    """A byte count for a message, in the unit that shows it: 0.00 GB said nothing of a 300 kB store."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} bytes"


def _upgrade_to_url(group: zarr.Group, old: Path, new: StoreURL, echo: Callable[[str], None]) -> UpgradeReport:
    """`upgrade` into object storage: no rename there, so the store is written at `new` itself,
    verified, and removed if anything fails (a hard kill leaves it incomplete: delete it and run again)."""
    files = files_at(new)
    try:
        if files.exists():
            raise UpgradeError(f"{new} already exists; upgrade never overwrites, choose another --out")
        files.check_creatable()
    except StoreError as exc:
        raise UpgradeError(str(exc)) from None
    attrs = dict(group.attrs)
    count = int(attrs["count"])
    try:
        report = _write_verified(group, old, new, attrs, count, echo)
    except BaseException:  # Ctrl-C included: leave no half-written store behind
        files.remove_all()
        raise
    return UpgradeReport(old, new, count, int(report.checked), sum(1 for p in old.rglob("*") if p.is_file()),
                         len(files.find("")))


def _format1_group(old: Path) -> zarr.Group:
    """The root group of the format-1 store at `old`, or UpgradeError saying why it is not one."""
    if not old.exists():
        raise UpgradeError(f"{old} does not exist")
    try:
        group = project_group(old)
    except StoreError as exc:
        raise UpgradeError(str(exc)) from None
    if group is None:
        raise UpgradeError(f"{old} is not a Reconstruction-GB store")
    version = group.attrs.get("format_version")
    if version != OLD_FORMAT:
        raise UpgradeError(f"{old} has store format version {version}; upgrade reads format {OLD_FORMAT} only")
    missing = [name for name in (*SAMPLE_IMAGES, *META_ARRAYS, DONE) if name not in set(group.array_keys())]
    if missing:
        raise UpgradeError(f"{old} lacks the array(s) {', '.join(missing)}: it cannot be upgraded")
    attrs = group.attrs
    try:
        GenerationConfig.from_dict(attrs["config"])
        if type(attrs["seed"]) is not int or type(attrs["count"]) is not int or min(attrs["seed"], attrs["count"]) < 0:
            raise ValueError("seed and count must be whole numbers >= 0")
    except Exception as exc:  # noqa: BLE001 - a missing key, a wrong type, a config no version makes
        what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else f"an unreadable description ({exc})"
        raise UpgradeError(f"{old} is damaged: its root zarr.json attributes have {what}; it cannot be "
                           "upgraded (restore that file from a copy)") from None
    # Format 1 made every array `count` samples long: a count that disagrees is the damage (a
    # lowered one was upgraded as "5 of 5 pairs done, verified", the other samples left out).
    wrong = next((name for name in (*SAMPLE_IMAGES, *META_ARRAYS, DONE) if group[name].shape[0] != attrs["count"]), None)
    if wrong is not None:
        raise UpgradeError(f"{old} is damaged: its root zarr.json gives count {attrs['count']}, but array {wrong!r} "
                           f"holds {group[wrong].shape[0]} samples; it cannot be upgraded (restore that file from a "
                           "copy)")
    _check_per_sample_chunks(old, group, int(attrs["count"]))
    return group


def _check_per_sample_chunks(old: Path, group: zarr.Group, count: int) -> None:
    """UpgradeError if a per-sample chunk of done samples is missing (zarr would read the fill value: a lost
    `done` chunk was upgraded as "0 of N pairs done, verified"). Format 1 wrote no chunk equal to the fill
    value, so a `done` chunk may be absent where no sample of it was made: then no image of it exists."""
    def missing(name: str, chunk: int) -> bool:
        return not (old / name / group[name].metadata.encode_chunk_key((chunk,))).is_file()

    def damaged(name: str, first: int, stop: int) -> UpgradeError:
        return UpgradeError(f"{old} is damaged: the chunk of {name!r} for samples {first}-{stop - 1} is missing, "
                            "and samples of it were made; it cannot be upgraded (nothing written)")

    size = group[DONE].chunks[0]
    for chunk in range(-(-count // size)):
        first, stop = chunk * size, min((chunk + 1) * size, count)
        if missing(DONE, chunk) and any((old / "micro" / group["micro"].metadata.encode_chunk_key((i, 0, 0))).is_file()
                                        for i in range(first, stop)):
            raise damaged(DONE, first, stop)
    done = np.asarray(group[DONE][:count], dtype=bool)
    for name in META_ARRAYS:
        size = group[name].chunks[0]
        for chunk in range(-(-count // size)):
            first, stop = chunk * size, min((chunk + 1) * size, count)
            if done[first:stop].any() and missing(name, chunk):
                raise damaged(name, first, stop)


def _write(group: zarr.Group, old: Path, partial: Location, attrs: dict, count: int, echo: Callable[[str], None]) -> None:
    """Every done sample of the format-1 `group` into a new format-2 store at `partial`."""
    keep = {key: attrs[key] for key in ("source", "versions", "created") if key in attrs}
    keep["upgraded_from"] = {"path": str(old), "format_version": OLD_FORMAT,
                             "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    store = LibraryStore.create(partial, GenerationConfig.from_dict(attrs["config"]), int(attrs["seed"]), count,
                                extra=keep)
    done = np.asarray(group[DONE][:count], dtype=bool)
    codecs = {name: _format1_codec(group[name]) for name in SAMPLE_IMAGES}
    shape = tuple(group["micro"].shape[1:])
    writer = store.image_writer()
    crcs = np.zeros((count, len(SAMPLE_IMAGES)), dtype="uint32")  # recorded in one write, before `done`
    for first in range(0, count, store.shard):
        samples = []
        for index in (int(i) for i in np.flatnonzero(done[first : first + store.shard]) + first):
            images = {name: _read_format1(old, group, name, index, codecs[name], shape) for name in SAMPLE_IMAGES}
            samples.append(Sample(index, images["micro"], images["label"], images["grains"], meta=None))  # type: ignore[arg-type]
        if samples:
            for sample, sample_crcs in zip(samples, writer.write(samples)):
                crcs[sample.index] = sample_crcs
    store.arrays[IMAGE_CRC][:count] = crcs
    for name in (*META_ARRAYS, DONE):  # `done` last
        store.arrays[name][:count] = group[name][:count]
    echo(f"wrote {int(done.sum())} done samples of {count} into {partial.name}; verifying")


def _read_format1(old: Path, group: zarr.Group, name: str, index: int, codec: numcodecs.Blosc,
                  shape: tuple[int, ...]) -> np.ndarray:
    """One image of a done sample of a format-1 store; UpgradeError naming it if absent or undecodable."""
    path = old / name / group[name].metadata.encode_chunk_key((index, 0, 0))
    try:
        raw = codec.decode(path.read_bytes())
    except FileNotFoundError:
        raise UpgradeError(f"sample {index}: {name}: chunk file {name}/{path.name} is missing in {old} "
                           "(the sample is marked done); nothing written") from None
    except Exception as exc:  # noqa: BLE001 - whatever Blosc raises on a garbage chunk
        raise UpgradeError(f"sample {index}: {name}: cannot decode {name}/{path.name} ({type(exc).__name__}); "
                           "nothing written") from None
    dtype = np.dtype(group[name].dtype)
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise UpgradeError(f"sample {index}: {name}: {name}/{path.name} has the wrong size; nothing written")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _format1_codec(array: zarr.Array) -> numcodecs.Blosc:
    """The numcodecs Blosc of a format-1 image array (codecs exactly [bytes, blosc])."""
    codecs = array.metadata.codecs
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], BloscCodec):
        raise UpgradeError(f"array {array.basename!r} does not have the codecs of format {OLD_FORMAT}")
    blosc = codecs[1]
    shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
               "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[blosc.shuffle.value]
    return numcodecs.Blosc(cname=blosc.cname.value, clevel=blosc.clevel, shuffle=shuffle,
                           blocksize=blosc.blocksize, typesize=array.dtype.itemsize)

