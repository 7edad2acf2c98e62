"""Which images `measure` reads and which specimen each belongs to (E112's fields are fields of one specimen).

By default a folder is a specimen: the images directly in a folder given are one specimen named
after it, and a folder holding subfolders gives one specimen per subfolder (its images). An image
given by name belongs to the specimen of the folder it lies in. `--specimens CSV` overrides
this: rows `image,specimen`, the image named by its path (as given, or relative to the CSV's
folder), its file name or its stem. Files `measure` itself wrote into a folder it measured before
(`NAME_grains.tif`, `NAME_overlay.png`, `NAME_histogram.png`, `histogram.png` beside a summary.json,
and `NAME_boundaries.png` beside its own NAME image) are left out of a folder's images.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from model.inference.images import InputError, collect_inputs, is_supported

OWN_OUTPUTS = ("_grains.tif", "_overlay.png", "_histogram.png")  # always measure's own beside a summary.json
BOUNDARIES = "_boundaries.png"  # the restored map `measure --restore` keeps: re-measured unless its source is there
SUMMARY_JSON, POOLED_HISTOGRAM, REPORT = "summary.json", "histogram.png", "report.html"


@dataclass(frozen=True)
class Inputs:
    """The images to measure, in order, each with its specimen, and what was left out."""

    sources: tuple[Path, ...]
    specimens: tuple[str, ...]  # one per source
    skipped: tuple[Path, ...]  # measure's own outputs found in folders given


def own_output(path: Path, siblings: set[str]) -> bool:
    """True when `path`, in a folder whose file names are `siblings`, is a file `measure` wrote there."""
    name = path.name
    if SUMMARY_JSON in siblings and (name == POOLED_HISTOGRAM or name.endswith(OWN_OUTPUTS)):
        return True
    if name.endswith(BOUNDARIES):
        stem = name[: -len(BOUNDARIES)]
        return any(Path(other).stem == stem and other != name and is_supported(Path(other)) for other in siblings)
    return False


def folder_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images directly in `folder` that measure did not write, the ones it did)."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    names = {p.name for p in files}
    images = sorted((p for p in files if is_supported(p)), key=lambda p: p.name)
    return [p for p in images if not own_output(p, names)], [p for p in images if own_output(p, names)]


def gather(inputs: Sequence[str | os.PathLike[str]]) -> Inputs:
    """The images of `inputs` and their default specimens (folder names); InputError as `collect_inputs`."""
    sources: list[Path] = []
    specimens: list[str] = []
    skipped: list[Path] = []
    names: dict[Path, str] = {}  # folder -> specimen name, unique (a second folder "a" elsewhere is "a_2")

    def name_of(folder: Path) -> str:
        folder = folder.resolve()
        if folder not in names:
            base = folder.name or "specimen"
            taken = set(names.values())
            name, k = base, 2
            while name in taken:
                name, k = f"{base}_{k}", k + 1
            names[folder] = name
        return names[folder]

    for raw in inputs:
        path = Path(raw)
        if not path.is_dir():
            found = collect_inputs([path])
            sources.extend(found)
            specimens.extend(name_of(p.parent) for p in found)
            continue
        images, own = folder_images(path)
        skipped.extend(own)
        groups = [(path, images)] if images else []
        subfolders = sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
                            key=lambda p: p.name)
        for sub in subfolders:
            sub_images, sub_own = folder_images(sub)
            skipped.extend(sub_own)
            if sub_images:
                groups.append((sub, sub_images))
        if not groups:
            raise InputError(f"no images in directory {path}" + (
                f" (only the {len(own)} files measure wrote there)" if own else ""))
        for folder, found in groups:
            sources.extend(found)
            specimens.extend([name_of(folder)] * len(found))
    unique: dict[Path, int] = {}
    for k, path in enumerate(sources):
        unique.setdefault(path.resolve(), k)
    keep = sorted(unique.values())
    return Inputs(tuple(sources[k] for k in keep), tuple(specimens[k] for k in keep), tuple(skipped))


def read_specimen_csv(path: Path) -> dict[str, str]:
    """The `image,specimen` rows of a --specimens CSV (InputError naming what is wrong)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read --specimens {path}: {exc}") from None
    if not rows or not {"image", "specimen"} <= set(rows[0]):
        raise InputError(f"--specimens {path} needs a header line 'image,specimen' and one row per image")
    mapping: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        image, specimen = (row.get("image") or "").strip(), (row.get("specimen") or "").strip()
        if not image or not specimen:
            raise InputError(f"--specimens {path} line {number}: an image and a specimen are needed")
        if mapping.get(image, specimen) != specimen:
            raise InputError(f"--specimens {path}: {image} is given two specimens ({mapping[image]}, {specimen})")
        mapping[image] = specimen
    return mapping


def assign(sources: Sequence[Path], mapping: dict[str, str], csv_path: Path) -> tuple[str, ...]:
    """Each source's specimen from a --specimens mapping (path, path from the CSV's folder, name or stem)."""
    base = csv_path.resolve().parent
    by_path = {(base / key).resolve(): value for key, value in mapping.items()}
    specimens = []
    for source in sources:
        for key in (str(source), source.name, source.stem):
            if key in mapping:
                specimens.append(mapping[key])
                break
        else:
            if source.resolve() not in by_path:
                raise InputError(f"{source} is not in --specimens {csv_path} (rows: image,specimen)")
            specimens.append(by_path[source.resolve()])
    return tuple(specimens)


def specimen_inputs(inputs: Sequence[str | os.PathLike[str]], specimens_csv: str | os.PathLike[str] | None) -> Inputs:
    """The images to measure and their specimens: by folder, or by a --specimens CSV."""
    found = gather(inputs)
    if specimens_csv is None:
        return found
    path = Path(specimens_csv)
    return Inputs(found.sources, assign(found.sources, read_specimen_csv(path), path), found.skipped)
