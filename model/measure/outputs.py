"""The files `measure` writes: grain CSV, 16-bit grain map, colour overlay, size histograms, boundary map, summaries.

Every file is encoded in memory and written with `pipeline.store.atomic_write` (temporary name,
then rename), so an interrupted run never leaves a half-written file under a real name.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from pipeline.store import atomic_write
from .intercepts import Crossings, intercept_lengths
from .measurement import GrainTable, Twins
from .shape import GrainShapes

GRAIN_COLUMNS = ("grain_id", "area_px", "area_um2", "diameter_um", "centroid_x_px", "centroid_y_px",
                 "touches_border")
SHAPE_COLUMNS = ("diameter_px", "perimeter_px", "perimeter_um", "feret_max_px", "feret_max_um", "feret_min_px",
                 "feret_min_um", "aspect_ratio", "orientation_deg", "neighbours")
TWIN_COLUMNS = ("twin_of", "twins")
OVERLAY_ALPHA = 0.55  # weight of the grain colour over the gray input
OUTSIDE_SHADE = 0.35  # outside the field (mask, ROI, data bar): the input darkened to this share


def _number(value: Any) -> Any:
    """CSV cell: floats to 6 significant digits, NaN as an empty cell."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A CSV file (comma separated, one header line) as bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_number(v) for v in row] for row in rows])
    return text.getvalue().encode()


def grain_columns(shapes: bool, twins: bool) -> tuple[str, ...]:
    """The header of <name>_grains.csv."""
    return GRAIN_COLUMNS + (SHAPE_COLUMNS if shapes else ()) + (TWIN_COLUMNS if twins else ())


def write_grain_csv(path: Path, table: GrainTable, shapes: GrainShapes | None = None,
                    twins: Twins | None = None) -> None:
    """<name>_grains.csv: one row per grain, in grain-id order (shape and twin columns when given)."""
    pixel = table.pixel_size_um
    columns = [range(1, table.count + 1), table.area_px.tolist(), table.area_um2.tolist(),
               table.diameter_um.tolist(), table.centroid_x.tolist(), table.centroid_y.tolist(),
               table.touches_border.astype(int).tolist()]
    if shapes is not None:
        columns += [table.diameter_px.tolist(), shapes.perimeter_px.tolist(), (shapes.perimeter_px * pixel).tolist(),
                    shapes.feret_max_px.tolist(), (shapes.feret_max_px * pixel).tolist(),
                    shapes.feret_min_px.tolist(), (shapes.feret_min_px * pixel).tolist(),
                    shapes.aspect_ratio.tolist(), shapes.orientation_deg.tolist(), shapes.neighbours.tolist()]
    if twins is not None:
        columns += [twins.twin_of.tolist(), twins.merged.tolist()]
    atomic_write(path, csv_bytes(grain_columns(shapes is not None, twins is not None), list(zip(*columns))))


def _encode(suffix: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    if not ok:
        raise OSError(f"OpenCV could not encode a {suffix} image")
    return data.tobytes()


def write_grain_map(path: Path, table: GrainTable) -> None:
    """<name>_grains.tif: 16-bit grain ids (0 = boundary, speck or left-out grain)."""
    atomic_write(path, _encode(".tif", table.grain_map))


def grain_colours(count: int) -> np.ndarray:
    """(count + 1, 3) uint8 BGR: black for id 0, then hues spaced by the golden ratio (neighbours differ)."""
    hue = (np.arange(count + 1) * 0.6180339887 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hue, np.full_like(hue, 170), np.full_like(hue, 240)], axis=1)[None]
    colours = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    colours[0] = 0
    return colours


def overlay(gray: np.ndarray, boundary: np.ndarray, table: GrainTable, field: np.ndarray | None = None) -> np.ndarray:
    """BGR image: each grain in its own colour over the gray input, boundary pixels black, outside the field dark."""
    base = np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
    base = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
    coloured = grain_colours(table.count)[table.grain_map]
    blend = cv2.addWeighted(coloured, OVERLAY_ALPHA, base, 1 - OVERLAY_ALPHA, 0)
    out = np.where((table.grain_map > 0)[..., None], blend, base)
    out[boundary] = 0
    if field is not None:
        out[~field] = (base[~field] * OUTSIDE_SHADE).astype(np.uint8)
    return out


def write_overlay(path: Path, gray: np.ndarray, boundary: np.ndarray, table: GrainTable,
                  field: np.ndarray | None = None) -> None:
    """<name>_overlay.png (see `overlay`)."""
    atomic_write(path, _encode(".png", overlay(gray, boundary, table, field)))


def write_boundaries(path: Path, boundary: np.ndarray, field: np.ndarray | None = None) -> None:
    """<name>_boundaries.png: the boundary map measured, 0 boundary (and outside the field), 255 background."""
    image = np.where(boundary, 0, 255).astype(np.uint8)
    if field is not None:
        image[~field] = 0
    atomic_write(path, _encode(".png", image))


def histogram_png(diameters: np.ndarray, title: str, unit: str = "µm") -> bytes:
    """Two histograms of equivalent circle diameters (in `unit`): share of the grains, and share of their area."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), dpi=100)
    by_number, by_area = figure.subplots(1, 2)
    if diameters.size:
        bins = np.histogram_bin_edges(diameters, bins=min(40, max(5, int(math.sqrt(diameters.size)))))
        area = diameters**2
        by_number.hist(diameters, bins=bins, weights=np.full(diameters.size, 100 / diameters.size),
                       color="#4c72b0", edgecolor="white")
        by_area.hist(diameters, bins=bins, weights=100 * area / area.sum(), color="#dd8452", edgecolor="white")
        title += f" ({diameters.size} grains, mean {diameters.mean():.3g} {unit})"
    else:
        title += " (no grains)"
    for axes, what in ((by_number, "% of the grains"), (by_area, "% of the grain area")):
        axes.set_xlabel(f"equivalent circle diameter ({unit})")
        axes.set_ylabel(what)
    by_number.set_title("number-weighted", fontsize=9)
    by_area.set_title("area-weighted", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    data = io.BytesIO()
    figure.savefig(data, format="png")
    return data.getvalue()


def write_histogram(path: Path, diameters: np.ndarray, title: str, unit: str = "µm") -> None:
    """A PNG of the number- and area-weighted histograms of equivalent circle diameters (`histogram_png`)."""
    atomic_write(path, histogram_png(diameters, title, unit))


INTERCEPT_COLUMNS = ("test_lines", "path", "length_px", "length_um", "complete")


def write_intercepts_csv(path: Path, per_path: Sequence[Crossings], pixel_size_um: float) -> None:
    """<name>_intercepts.csv: every intercept (piece of a test path between crossings), per angle or circle."""
    rows: list[list[Any]] = []
    for crossings in per_path:
        index, length, complete = intercept_lengths(crossings)
        rows.extend([crossings.label, k, f"{v:.4g}", v * pixel_size_um, int(c)]
                    for k, v, c in zip(index.tolist(), length.tolist(), complete.tolist()))
    atomic_write(path, csv_bytes(INTERCEPT_COLUMNS, rows))


def _plain(value: Any) -> Any:
    """JSON-ready copy: NaN -> None, paths and other objects -> str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Pretty JSON (NaN written as null)."""
    atomic_write(path, (json.dumps(_plain(record), indent=2) + "\n").encode())
