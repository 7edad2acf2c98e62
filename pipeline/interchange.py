"""PNG folders <-> library stores, in the published study's layout: DIR/micro/<n>.png, DIR/label/<n>.png."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .config import MIN_SIZE, PRESET_RATES, GenerationConfig
from .pixels import PNG_HEADER_BYTES, RAISE_LIMIT, PixelLimitError, above_limit, max_pixels, png_size
from .sample import BACKGROUND, BOUNDARY, Sample, SampleMeta, erased_fraction, split_of
from .store import (IMAGE_ARRAYS, LibraryStore, Location, StoreError, StoreURL, atomic_write, check_creatable,
                    files_at, is_url, store_location, write_error_line)

IMPORT_KIND = "import"  # group attribute source.kind of a store made by `import_pairs`
THRESHOLD = 128  # imported pixels >= THRESHOLD are background, darker ones boundary
# A folder with clean/ beside micro/ and label/ holds micrograph pairs (as `export` writes a
# micrograph store): micro and clean are kept gray, and the store is a micrograph store.
MICROGRAPH_FOLDERS = (*IMAGE_ARRAYS, "clean")
NUMBERED_PNG = re.compile(r"([0-9]+)\.png")
LISTED = 10  # problems named in an error message (which stays one line)


class InterchangeError(RuntimeError):
    """An export or import that cannot be carried out; nothing was written."""


class _Unusable(ValueError):
    """An image file that cannot become part of an imported pair; the message says why."""


@dataclass(frozen=True)
class ExportReport:
    """What one `export_pairs` call did."""

    out: Path
    exported: int
    not_done: int  # samples of the range that were skipped

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        return f"exported {self.exported} pairs to {self.out}"


@dataclass(frozen=True)
class ImportReport:
    """What one `import_pairs` call did."""

    path: Path
    count: int
    size: int
    skipped: tuple[str, ...]  # "micro/3.png: why", one per file not imported

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        return f"imported {self.count} pairs ({self.size} x {self.size}) -> {self.path}"


def export_pairs(store_path: str | os.PathLike[str], out: str | os.PathLike[str], start: int = 0,
                 count: int | None = None) -> ExportReport:
    """Write the done samples in [start, start + count) as out/micro/<i>.png and out/label/<i>.png
    (and out/clean/<i>.png from a micrograph store)."""
    if start < 0 or (count is not None and count <= 0):
        raise InterchangeError(f"start must be >= 0 and count > 0, got start {start}, count {count}")
    store = LibraryStore.open(store_path)
    if start >= store.count:
        raise InterchangeError(f"start {start} is past the last sample of {store.path} ({store.count} samples)")
    stop = store.count if count is None else min(store.count, start + count)
    out = Path(out).absolute()
    holder = zarr_folder_around(out)
    if holder is not None:
        raise InterchangeError(f"--out {out} is inside the Zarr store {holder}: exported files there would change "
                               "the store; choose a folder outside it")
    indices = [start + int(k) for k in np.flatnonzero(store.done()[start:stop])]
    names = tuple(name for name in store.images if name != "grains")  # a micrograph store's clean render too
    for folder in (out, *(out / name for name in names)):
        if folder.exists() and not folder.is_dir():
            raise InterchangeError(f"{folder} is a file, not a folder")
    for name in names:
        check_creatable(out / name / "0.png")
        # Never overwrite: a folder holding another export would silently mix two libraries.
        clash = next((out / name / f"{i}.png" for i in indices if (out / name / f"{i}.png").exists()), None)
        if clash:
            raise InterchangeError(f"{clash} exists; export into a new folder or one without these samples")
    # Folders this export makes (--out, its missing parents, micro/ and label/): a run that fails
    # before its first pair takes them away again, rather than leave empty folders behind.
    made = [folder for folder in (*(out / name for name in names), out, *out.parents) if not folder.exists()]
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    try:
        reader = store.image_reader(names)
        for written, i in enumerate(indices):
            try:
                pair = reader.read(i)
            except StoreError as exc:  # absent or failing its checksum; `verify` lists every one
                raise InterchangeError(f"{exc}; {written} pairs were exported before it") from None
            for name, image in zip(names, pair):
                _write_png(out / name / f"{i}.png", image)
    except BaseException:
        _remove_empty(made)
        raise
    return ExportReport(out, len(indices), (stop - start) - len(indices))


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of `folders` (deepest first) that is empty; one holding a file stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def import_pairs(directory: str | os.PathLike[str], out: str | os.PathLike[str], seed: int = 0,
                 strict: bool = False) -> ImportReport:
    """Build a new store from the numbered micro/label PNG pairs of `directory` (see docs/store.md);
    with a clean/ folder beside them, gray micrographs with their clean renders (a micrograph store)."""
    directory, out = Path(directory).absolute(), store_location(out)
    if seed < 0:
        raise InterchangeError(f"seed must be >= 0, got {seed}")
    if not directory.is_dir():
        raise InterchangeError(f"{directory} does not exist or is not a folder")
    for name in IMAGE_ARRAYS:
        if not (directory / name).is_dir():
            raise InterchangeError(f"{directory / name} is not a folder; an import reads "
                                   f"{directory / 'micro'} and {directory / 'label'} (<n>.png files)")
    if isinstance(out, StoreURL):
        if files_at(out).exists():  # reaches the bucket first: an unreachable one is one line here
            raise InterchangeError(f"{out} already exists; import never overwrites, choose another --out")
        files_at(out).check_creatable()
    else:
        if out.exists() or out.is_symlink():
            raise InterchangeError(f"{out} already exists; import never overwrites, choose another --out")
        holder = zarr_folder_around(out.parent)
        if holder is not None:
            raise InterchangeError(f"--out {out} is inside the Zarr store {holder}; choose a folder outside it")
        check_creatable(out)
    try:
        limit = max_pixels()
    except PixelLimitError as exc:
        raise InterchangeError(str(exc)) from None
    folders = MICROGRAPH_FOLDERS if (directory / "clean").is_dir() else IMAGE_ARRAYS
    names, size, problems = _scan(directory, limit, folders)
    skipped = tuple(f"{file}: {why}" for file, why in problems)
    listed = "; ".join(skipped[:LISTED]) + (f"; and {len(skipped) - LISTED} more" if len(skipped) > LISTED else "")
    if skipped and strict:
        raise InterchangeError(f"--strict: {len(skipped)} files cannot be imported, nothing written: {listed}")
    if not names:
        raise InterchangeError(f"no usable micro/label pairs in {directory}" + (f" ({listed})" if listed else ""))
    try:
        _write_store(directory, out, names, size, seed, skipped, limit, folders)
    except OSError as exc:  # a full disk, or a place that takes no files (/proc)
        raise InterchangeError(write_error_line(exc, out, "nothing written")) from None
    return ImportReport(out, len(names), size, skipped)


def zarr_folder_around(path: Path) -> Path | None:
    """The nearest folder at or above `path` (absolute) that is a Zarr store or group (holds zarr.json), or None."""
    return next((folder for folder in (path, *path.parents) if (folder / "zarr.json").is_file()), None)


def png_folder_hint(path: str | os.PathLike[str] | None) -> str:
    """For an error about `path`: a pointer to `import` when it is a folder of PNG pairs, not a store ("" otherwise)."""
    if path is None or is_url(path):
        return ""
    path = Path(path)
    if (path / "zarr.json").exists() or not (any((path / "micro").glob("*.png"))
                                             and any((path / "label").glob("*.png"))):
        return ""
    return (f"; it holds micro/ and label/ PNGs: make a store of them with "
            f"`import {path} --out {path.name or 'library'}.zarr` and use that")


def _scan(directory: Path, limit: int,
          folders: tuple[str, ...] = IMAGE_ARRAYS) -> tuple[list[str], int, list[tuple[str, str]]]:
    """File names of the usable pairs in sample order, their side, and every other file with the reason."""
    problems: dict[str, str] = {}
    found: dict[str, set[str]] = {name: set() for name in folders}
    for name, files in found.items():
        for entry in (directory / name).iterdir():
            if entry.is_file() and NUMBERED_PNG.fullmatch(entry.name):
                files.add(entry.name)
            else:
                problems[f"{name}/{entry.name}"] = "not a numbered .png file"
    for name, files in found.items():
        for other in folders:
            problems.update({f"{name}/{file}": f"no partner {other}/{file}" for file in files - found[other]
                             if f"{name}/{file}" not in problems})
    # Numeric order (2 before 10); equal numbers such as 7 and 007 keep their names' order.
    names = sorted(set.intersection(*found.values()), key=lambda file: (int(file[:-4]), file))
    sides: dict[str, int] = {}
    with _quiet_opencv():
        for file in names:
            for name in folders:
                try:
                    sides[f"{name}/{file}"] = _load(directory / name / file, limit).shape[0]
                except _Unusable as exc:
                    problems[f"{name}/{file}"] = str(exc)
    # The side most images share is the store's (ties: the lowest numbered); the others are the odd ones.
    size = Counter(sides.values()).most_common(1)[0][0] if sides else 0
    problems.update({path: f"is {side} x {side}; most images are {size} x {size}"
                     for path, side in sides.items() if side != size})
    usable = []
    for file in names:
        paths = [f"{name}/{file}" for name in folders]
        bad = [path for path in paths if path in problems]
        if not bad:
            usable.append(file)
        for path in paths if bad else ():  # a good file whose partner is bad has no pair to belong to
            problems.setdefault(path, f"its partner {bad[0]} cannot be imported")
    return usable, size, sorted(problems.items(), key=_report_order)


def _write_store(directory: Path, out: Location, names: list[str], size: int, seed: int,
                 skipped: tuple[str, ...], limit: int, folders: tuple[str, ...] = IMAGE_ARRAYS) -> None:
    """Write every pair into a private `.partial` store, then rename it to `out`: never half an import.

    Object storage has no rename: the store is written at `out` itself, and removed if the import
    fails (a hard kill leaves the pairs committed so far, `done`; docs/store.md).
    """
    remote = isinstance(out, StoreURL)
    partial = out if remote else out.with_name(f"{out.name}.{secrets.token_hex(8)}.partial")
    gray = "clean" in folders  # micrograph pairs: micro and clean stay gray
    config = (GenerationConfig(size=size, preset="micrograph", **PRESET_RATES["micrograph"]) if gray
              else GenerationConfig(size=size))
    try:
        source = {"kind": IMPORT_KIND, "directory": str(directory), "threshold": THRESHOLD,
                  "files": names, "skipped": list(skipped), "images": list(folders)}
        store = LibraryStore.create(partial, config, seed, len(names), extra={"source": source})
        writer = store.image_writer()
        no_grain_map = np.zeros((size, size), np.uint16)  # the grains fill value
        metas = []
        crcs: list[tuple[int, ...]] = []
        shard: list[Sample] = []  # a shard is written whole, once its samples are read
        with _quiet_opencv():
            for index, file in enumerate(names):
                try:
                    images = {name: _load(directory / name / file, limit, size) for name in folders}
                except _Unusable as exc:  # checked by _scan: the folder changed since
                    raise InterchangeError(f"{file} changed during the import ({exc}); nothing written") from None
                micro = images["micro"] if gray else _binarise(images["micro"])
                label = _binarise(images["label"])
                # What an import cannot know is the per-sample arrays' fill value (docs/store.md); the
                # faint share of a micrograph's boundary among them.
                meta = SampleMeta(seed=0, nucleation_rate=0, growth_rate=0, num_grains=0,
                                  avrami_exponent=float("nan"), dilation=0, gap_patches=0,
                                  erased_fraction=float("nan") if gray else float(erased_fraction(micro, label)),
                                  split=split_of(seed, index))
                shard.append(Sample(index, micro, label, no_grain_map, meta, clean=images.get("clean")))
                metas.append(meta)
                if len(shard) == store.shard or index == len(names) - 1:
                    crcs += writer.write(shard)
                    shard = []
        store.commit(list(range(len(names))), metas, crcs)
        if remote:
            return
        if out.exists():
            raise InterchangeError(f"{out} appeared while importing; nothing written")
        os.rename(partial, out)
    except BaseException:  # Ctrl-C included: leave no half-written store behind
        if remote:
            files_at(out).remove_all()
        else:
            shutil.rmtree(partial, ignore_errors=True)
        raise


def _load(path: Path, limit: int, size: int | None = None) -> np.ndarray:
    """A 2-D 8-bit gray square image of side >= MIN_SIZE (and `size` if given), or _Unusable saying why not.

    A PNG declaring more than `limit` pixels is refused from its header: a small file can declare
    32000 x 32000 px, and decoding it first took seconds and gigabytes.
    """
    try:
        with path.open("rb") as file:
            head = file.read(PNG_HEADER_BYTES)
            declared = png_size(head)
            refused = above_limit(*declared, limit) if declared else None
            if refused:
                raise _Unusable(f"declares {refused} ({RAISE_LIMIT}); not decoded")
            data = np.frombuffer(head + file.read(), np.uint8)
    except OSError as exc:
        raise _Unusable(f"cannot be read ({exc.strerror or exc})") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error:
        image = None
    if image is None:
        raise _Unusable("cannot be decoded as an image")
    if image.ndim != 2 or image.dtype != np.uint8:
        raise _Unusable(f"is not 8-bit gray ({1 if image.ndim == 2 else image.shape[2]} channel(s) of {image.dtype})")
    rows, columns = image.shape
    if rows != columns:
        raise _Unusable(f"is {rows} x {columns}, not square")
    if rows < MIN_SIZE:
        raise _Unusable(f"is {rows} x {columns}, smaller than {MIN_SIZE} x {MIN_SIZE}")
    if size is not None and rows != size:
        raise _Unusable(f"is {rows} x {columns}, not {size} x {size}")
    return image


def _binarise(image: np.ndarray) -> np.ndarray:
    """The store's two values: BACKGROUND from THRESHOLD up, BOUNDARY below."""
    return np.where(image >= THRESHOLD, BACKGROUND, BOUNDARY).astype(np.uint8)


def _write_png(target: Path, image: np.ndarray) -> None:
    """8-bit gray PNG, renamed into place: a killed export leaves no truncated PNG for a later import."""
    try:
        atomic_write(target, cv2.imencode(".png", image)[1].tobytes())
    except OSError as exc:
        raise InterchangeError(write_error_line(exc, target)) from None


def _report_order(problem: tuple[str, str]) -> tuple[float, bool, str]:
    """By file number (other names last), a file's own fault before its partner's, micro before label."""
    folder, file = problem[0].split("/", 1)
    match = NUMBERED_PNG.fullmatch(file)
    return (int(match.group(1)) if match else float("inf"), problem[1].startswith("its partner"),
            f"{MICROGRAPH_FOLDERS.index(folder)}{file}")


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own messages about broken files: each is reported by name instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)
