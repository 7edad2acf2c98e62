"""The plugin's only door into the project: store reading, restoring, measuring and saving.

Every widget and the reader call these functions and nothing else of `pipeline/` or `model/`,
so a change to the project's restore or measure API is answered here, in one place. Nothing in
this module imports napari or Qt: it is plain numpy on the project's own functions.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from model.inference.images import ImageError, input_kind, to_unit_gray
from model.inference.predict import write_image
from model.inference.predictor import PredictError
from model.inference.prepare import AUTO, settle
from model.inference.restore import RestoreOptions, Restorer, routes_micrographs
from model.measure import scale
from model.measure.grains import ImageMeasurement
from model.measure.outputs import write_histogram
from model.measure.run import MeasureError, MeasureOptions, MeasureReport, measure_files, measure_image
from pipeline.store import LibraryStore, Location, StoreError, is_store, is_url

# What the Restore widget offers, mapped onto `RestoreOptions.method` (the model file aside): predict's
# --method choices. A model's own choice (None): the network, then the bridge when its settings say so
# (the bundled model's: model+bridge). "other model file" is that choice for a .keras file of your own;
# model and model+bridge take the model file when one is given, else the bundled model.
METHODS = {"bundled model": None, "other model file": None, "model+bridge": "model+bridge", "model": "model",
           "bridge": "bridge", "none": "none"}
# predict's --binarize and --denoise choices; auto (the default, as predict's) follows the input's kind.
BINARIZE = (AUTO, "none", "otsu", "adaptive")
DENOISE = (AUTO, "none", "median", "nlmeans")
BOUNDARY, BACKGROUND = 0, 255  # the project's boundary-image convention (gray < 128 is boundary)


class PluginError(ValueError):
    """Anything the project refused (options, model, store, output folder): one line for the user."""


# --- the store --------------------------------------------------------------------------------
def is_library(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a Reconstruction-GB store (any other path is left to napari's readers)."""
    try:
        return is_store(path)
    except StoreError:
        # A damaged store of ours: opening it says what is wrong. A URL that cannot be reached may be
        # anything (napari opens http images too): left to the other readers.
        return not is_url(path)


@dataclass(frozen=True)
class Library:
    """The done samples of a store and a way to read one image of one of them."""

    store: LibraryStore
    samples: tuple[int, ...]  # store indices of the done samples, in order
    size: int

    @property
    def path(self) -> Location:
        """The store's folder (a Path), or its URL in object storage (a StoreURL)."""
        return self.store.path

    def read(self, name: str, position: int) -> np.ndarray:
        """Image `name` ('micro', 'label' or 'grains') of the `position`-th done sample."""
        try:
            return self.store.read(name, self.samples[position])
        except StoreError as exc:
            raise PluginError(str(exc)) from None


def open_store(path: str | os.PathLike[str]) -> LibraryStore:
    """The store at `path` opened read-only; PluginError with the store module's own message."""
    try:
        return LibraryStore.open(path)
    except StoreError as exc:
        raise PluginError(str(exc)) from None


def open_library(path: str | os.PathLike[str]) -> Library:
    """The done samples of the store at `path`; PluginError if it cannot be read or holds none."""
    store = open_store(path)
    try:
        samples = tuple(int(i) for i in np.flatnonzero(store.done()))
    except StoreError as exc:
        raise PluginError(str(exc)) from None
    if not samples:
        raise PluginError(f"{store.path} holds no finished sample yet")
    return Library(store, samples, int(store.config.size))


# --- a kept boundary map ------------------------------------------------------------------------
KEPT_SUFFIX = "_boundaries.png"  # what `measure --restore` keeps (model/measure/outputs.py)


def is_kept_boundary_map(path: str | os.PathLike[str]) -> bool:
    """True for a file named like the boundary map `measure --restore` keeps (NAME_boundaries.png)."""
    return str(path).lower().endswith(KEPT_SUFFIX) and Path(path).is_file()


def read_boundary_map(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict]:
    """(labels: 1 = boundary, metadata) of a kept boundary map (0 boundary, 255 grain, as `measure` reads it);
    the metadata names it NAME and carries the pixel size of NAME's micrograph beside it, when it has one."""
    from model.inference.images import read_image

    path = Path(path)
    try:
        gray = read_image(path)
    except (ImageError, ValueError, OSError) as exc:
        raise PluginError(f"cannot read {path.name}: {exc}") from None
    name = path.name[: -len(KEPT_SUFFIX)]
    metadata: dict = {"source": name, "name": safe_name(name)}
    pixel = kept_pixel_size(path.parent, name)
    if pixel is not None:
        metadata["pixel_size_um"] = pixel
    return (gray < 0.5).astype(np.uint8), metadata


def kept_pixel_size(folder: Path, name: str) -> float | None:
    """The pixel size `measure` used for image NAME (its row of summary.csv in `folder`), else the one in
    the tags of a micrograph NAME.* beside the map, else None."""
    try:
        with open(folder / "summary.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("level") == "image" and row.get("image") == name and row.get("pixel_size_um"):
                    value = float(row["pixel_size_um"])
                    if value > 0 and np.isfinite(value):
                        return value
    except (OSError, ValueError, csv.Error):
        pass
    for micrograph in sorted(folder.iterdir()):
        if micrograph.stem == name and micrograph.is_file():
            pixel = scale.pixel_size_of(micrograph)
            if pixel is not None:
                return pixel
    return None


# --- restoring ----------------------------------------------------------------------------------
def _given_file(model_file: str | os.PathLike[str] | None) -> Path | None:
    """The file a FileEdit holds, or None for an empty field (which reads as ".")."""
    return None if model_file is None or str(model_file).strip() in ("", ".") else Path(model_file)


def restore_options(method: str, model_file: str | os.PathLike[str] | None = None, threshold: float | None = None,
                    binarize: str = AUTO, denoise: str = AUTO, invert: bool = False,
                    scale: float = 1.0, min_speck: int | None = None, tta: bool | None = None) -> RestoreOptions:
    """The project's RestoreOptions for a choice of the Restore widget (threshold, min_speck, tta None: the
    model's own). The defaults are `cli.py predict`'s: the bundled model's own method, automatic preparation."""
    if method not in METHODS:
        raise PluginError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if binarize not in BINARIZE or denoise not in DENOISE:
        raise PluginError(f"binarize must be one of {', '.join(BINARIZE)} and denoise one of {', '.join(DENOISE)}")
    if not scale > 0:
        raise PluginError(f"scale must be > 0, got {scale}")
    if min_speck is not None and min_speck < 0:
        raise PluginError(f"min speck must be >= 0, got {min_speck}")
    model = None
    if method == "other model file":
        model = _given_file(model_file)
        if model is None:
            raise PluginError("choose a model file (.keras) for 'other model file'")
    elif method in ("model", "model+bridge"):
        model = _given_file(model_file)
    network = method in ("bundled model", "other model file", "model", "model+bridge")
    return RestoreOptions(method=METHODS[method], model=model, threshold=threshold if network else None,
                          binarize=binarize, denoise=denoise, invert=invert, scale=float(scale),
                          min_speck=min_speck, tta=tta if network else None)


def kind_of(plane: np.ndarray) -> str:
    """The input kind (`cli.py predict`'s: binary, gray, 16-bit or colour) of a layer's shown plane."""
    try:
        return input_kind(np.asarray(plane))
    except (ImageError, ValueError) as exc:
        raise PluginError(f"this image cannot be restored: {exc}") from None


def preparation_line(kind: str, options: RestoreOptions) -> str:
    """What restoring does first to an input of `kind`, in the words `cli.py predict` prints, e.g.
    `input: gray micrograph -> denoise nlmeans, binarize adaptive`."""
    noun = "binary boundary map" if kind == "binary" else f"{kind} micrograph"
    if kind != "binary" and routes_micrographs(options):
        return f"input: {noun} -> the micrograph model, as it is"
    steps = ", ".join(f"{step} {value}" for step, value in zip(("denoise", "binarize"),
                                                                 settle(kind == "binary", options.denoise,
                                                                        options.binarize)) if value != "none")
    return f"input: {noun} -> {steps or 'as it is'}"


def make_restorer(options: RestoreOptions) -> Restorer:
    """Check the options and load the model once (slow for model methods: call it off the UI thread)."""
    try:
        return Restorer(options)
    except PredictError as exc:
        raise PluginError(str(exc)) from None


def tiles_of(restorer: Restorer, shape: tuple[int, int]) -> int:
    """Model tiles restoring an image of `shape` costs (0 for bridge and none): the progress bar's length."""
    return restorer.tiles(shape)


def unit_gray(data: np.ndarray) -> np.ndarray:
    """A layer's 2D samples as the float32 [0, 1] gray that `cli.py` reads from a file of the same samples."""
    try:
        return to_unit_gray(np.asarray(data))
    except ValueError as exc:
        raise PluginError(f"this image cannot be restored: {exc}") from None


def restore(restorer: Restorer, image: np.ndarray, progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Boundary labels of one gray image (1 = boundary, 0 = background), as `cli.py predict` restores it."""
    mask, _ = restorer.restore(unit_gray(image), progress=progress)
    return (mask == BOUNDARY).astype(np.uint8)


def describe(restorer: Restorer) -> str:
    """The restorer's one line of values used (what `cli.py predict` prints)."""
    return restorer.describe()


# --- measuring ------------------------------------------------------------------------------------
def boundary_image(boundary_labels: np.ndarray) -> np.ndarray:
    """Boundary labels (non-zero = boundary) -> the project's uint8 boundary image (0 boundary, 255 background)."""
    labels = np.asarray(boundary_labels)
    if labels.ndim != 2:
        raise PluginError(f"the boundary layer must be 2D, got shape {labels.shape}")
    return np.where(labels != 0, BOUNDARY, BACKGROUND).astype(np.uint8)


def measure_options(pixel_size_um: float, min_grain: int, exclude_border: bool = False) -> MeasureOptions:
    """The project's MeasureOptions, checked as `cli.py measure` checks them. A pixel size of 0 means
    none (G left empty, as `cli.py measure` without a scale); a min grain of 0, the one read from the
    image (`cli.py measure`'s default)."""
    if not pixel_size_um >= 0 or not np.isfinite(pixel_size_um):
        raise PluginError(f"pixel size must be > 0 (0: none), got {pixel_size_um}")
    if min_grain < 0:
        raise PluginError(f"min grain must be >= 1 (0: from the image), got {min_grain}")
    return MeasureOptions(pixel_size_um=float(pixel_size_um) or None, min_grain=int(min_grain) or None,
                          exclude_border=exclude_border)


def measure(boundary_labels: np.ndarray, options: MeasureOptions) -> ImageMeasurement:
    """Measure an (edited) boundary labels layer exactly as `cli.py measure` measures its saved image."""
    return measure_image(boundary_image(boundary_labels), options)


# The rows of the dock's table: (label, key of `ImageMeasurement.summary()`).
TABLE_ROWS = (("grains", "grains"), ("mean area (um2)", "mean_area_um2"),
              ("G planimetric", "astm_g_planimetric"), ("G intercept", "astm_g_intercept"),
              ("grains inside", "grains_inside"), ("grains cut", "grains_cut"),
              ("mean diameter (um)", "mean_diameter_um"), ("mean intercept (um)", "mean_intercept_um"))


def summary_rows(result: ImageMeasurement) -> list[tuple[str, float | int]]:
    """(label, value) rows of the dock's table, values straight from the measurement's summary."""
    summary = result.summary()
    return [(label, summary[key]) for label, key in TABLE_ROWS]


def grain_ids(result: ImageMeasurement) -> np.ndarray:
    """The 16-bit grain-id map `cli.py measure` writes as NAME_grains.tif."""
    return result.table.grain_map


def histogram_png(result: ImageMeasurement, title: str) -> bytes:
    """The size histogram PNG that Save (and `cli.py measure`) writes as NAME_histogram.png."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "histogram.png"
        if np.isfinite(result.pixel_size_um):
            write_histogram(path, result.table.diameter_um, title, "µm")
        else:
            write_histogram(path, result.table.diameter_px, title, "px")
        return path.read_bytes()


def pixel_size_of(metadata: dict, path: str | os.PathLike[str] | None = None) -> float | None:
    """The pixel size (um) a reader left in a layer's metadata, else the one written in the layer's file
    (TIFF, ImageJ or OME tags, as `cli.py measure` reads them), or None (then the widget's own field counts)."""
    value = metadata.get("pixel_size_um")
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    return scale.pixel_size_of(path) if path else None


def safe_name(name: str) -> str:
    """A layer name as a file stem: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "image"


def save(boundary_labels: np.ndarray, out_dir: str | os.PathLike[str], name: str,
         options: MeasureOptions) -> tuple[Path, MeasureReport]:
    """Write NAME.png (the boundary map, 0 = boundary) to out_dir, then run `measure` on it into out_dir.

    The folder then holds exactly what `cli.py measure out_dir/NAME.png --out out_dir` writes
    (NAME_grains.csv, NAME_grains.tif, NAME_overlay.png, NAME_histogram.png, summary.csv/.json).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PluginError(f"{out_dir} exists and is not a folder")
    boundary = boundary_image(boundary_labels)
    path = out_dir / f"{safe_name(name)}.png"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_image(path, boundary)
    except OSError as exc:
        raise PluginError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        report = measure_files([path], out_dir, options)
    except MeasureError as exc:
        raise PluginError(str(exc)) from None
    if not report.ok:
        raise PluginError("; ".join(report.messages()))
    return path, report
