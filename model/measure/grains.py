"""Grain statistics of one restored boundary image: per-grain table, ASTM E112 G by two methods.

Grains are exactly those of the metrics (`model.scoring.metrics.find_grains`: 4-connected
background components of at least `min_grain` pixels; one implementation for both). Pure numpy
and OpenCV; definitions and hand-worked examples in docs/measure.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.scoring.metrics import Grains, astm_grain_size, boundary_mask, find_grains

# ASTM E112 intercept relation: G = -6.643856 log10(l) - 3.288, l the mean lineal intercept in mm.
INTERCEPT_SLOPE, INTERCEPT_OFFSET = -6.643856, 3.288
MAX_GRAINS = 65535  # the labelled grain map is 16-bit


@dataclass(frozen=True)
class GrainTable:
    """The grains of one image, renumbered 1..n in raster order of their first pixel."""

    grain_map: np.ndarray  # (H, W) uint16: grain id, 0 = boundary, speck or left-out border grain
    area_px: np.ndarray  # (n,) int64
    centroid_x: np.ndarray  # (n,) float64, pixels (column), 0 = centre of the first column
    centroid_y: np.ndarray  # (n,) float64, pixels (row)
    touches_border: np.ndarray  # (n,) bool
    pixel_size_um: float

    @property
    def count(self) -> int:
        """Number of grains in the table."""
        return int(self.area_px.size)

    @property
    def area_um2(self) -> np.ndarray:
        """Grain areas in square micrometres."""
        return self.area_px * self.pixel_size_um**2

    @property
    def diameter_um(self) -> np.ndarray:
        """Equivalent circle diameters 2 sqrt(A / pi), in micrometres."""
        return 2.0 * np.sqrt(self.area_um2 / math.pi)


@dataclass(frozen=True)
class ImageMeasurement:
    """Everything `measure` reports for one image."""

    table: GrainTable  # the grains listed (border grains left out with exclude_border)
    shape: tuple[int, int]
    grains_inside: int  # grains not touching the border (all grains, whatever exclude_border)
    grains_cut: int  # grains touching the border
    astm_g_planimetric: float  # NaN without grains
    astm_g_intercept: float  # NaN without an intercept
    mean_intercept_um: float
    intercepts: int  # grain-to-grain crossings counted on the test lines
    line_length_px: int  # total length of the test lines

    def summary(self) -> dict[str, float | int]:
        """One row of summary.csv (without the image's name)."""
        area = self.table.area_um2
        return {
            "width_px": self.shape[1], "height_px": self.shape[0],
            "grains": self.table.count, "grains_inside": self.grains_inside, "grains_cut": self.grains_cut,
            "mean_area_um2": float(area.mean()) if area.size else math.nan,
            "median_area_um2": float(np.median(area)) if area.size else math.nan,
            "mean_diameter_um": float(self.table.diameter_um.mean()) if area.size else math.nan,
            "astm_g_planimetric": self.astm_g_planimetric,
            "astm_g_intercept": self.astm_g_intercept,
            "mean_intercept_um": self.mean_intercept_um,
            "intercepts": self.intercepts,
        }


def grain_table(grains: Grains, pixel_size_um: float, exclude_border: bool = False) -> GrainTable:
    """The grains of `find_grains` as a renumbered table (border grains dropped with exclude_border)."""
    keep = grains.kept & ~grains.touches if exclude_border else grains.kept
    ids = np.flatnonzero(keep)
    if ids.size > MAX_GRAINS:
        raise ValueError(f"{ids.size} grains: more than a 16-bit grain map can hold ({MAX_GRAINS})")
    renumber = np.zeros(keep.size, np.uint16)
    renumber[ids] = np.arange(1, ids.size + 1, dtype=np.uint16)
    return GrainTable(grain_map=renumber[grains.labels], area_px=grains.areas[ids].astype(np.int64),
                      centroid_x=grains.centroids[ids, 0].astype(np.float64),
                      centroid_y=grains.centroids[ids, 1].astype(np.float64),
                      touches_border=grains.touches[ids].copy(), pixel_size_um=float(pixel_size_um))


def _crossings(lines: np.ndarray, kept: np.ndarray) -> int:
    """Grain-to-grain crossings along each row of a component-id array (boundary runs in between skipped)."""
    total = 0
    for line in lines:
        ids = line[kept[line]]  # the grain pixels of the line, in order
        total += int(np.count_nonzero(ids[1:] != ids[:-1]))
    return total


def lineal_intercept(grains: Grains) -> tuple[int, int]:
    """(crossings, line length in px) over horizontal test lines on every row and vertical ones on every column.

    A crossing is a place where the line leaves one grain and next enters another grain
    (boundary pixels and specks between them are skipped), so a dangling boundary inside one
    grain is not counted. Each line is the whole row (or column), W (or H) pixels long.
    """
    height, width = grains.labels.shape
    crossings = _crossings(grains.labels, grains.kept) + _crossings(grains.labels.T, grains.kept)
    return crossings, 2 * height * width


def intercept_grain_size(crossings: int, length_px: int, pixel_size_um: float) -> tuple[float, float]:
    """(mean lineal intercept in um, ASTM E112 G): l = L / P, G = -6.643856 log10(l_mm) - 3.288; NaN if P = 0.

    With P the crossings of a test line, a line crossing P boundaries cuts P - 1 whole grains
    and two end pieces that ASTM E112 counts as half each: P intercepts in all.
    """
    if crossings <= 0:
        return math.nan, math.nan
    mean_um = length_px * pixel_size_um / crossings
    return mean_um, INTERCEPT_SLOPE * math.log10(mean_um * 1e-3) - INTERCEPT_OFFSET


def measure_boundary(image: np.ndarray, pixel_size_um: float = 1.0, min_grain: int = 10,
                     exclude_border: bool = False) -> ImageMeasurement:
    """Measure the grains of one boundary image (gray value < 128 is boundary, as the metrics read it)."""
    grains = find_grains(boundary_mask(image), min_grain)
    crossings, length = lineal_intercept(grains)
    mean_um, g_intercept = intercept_grain_size(crossings, length, pixel_size_um)
    return ImageMeasurement(
        table=grain_table(grains, pixel_size_um, exclude_border), shape=grains.labels.shape,
        grains_inside=grains.inside, grains_cut=grains.cut,
        astm_g_planimetric=astm_grain_size(grains, grains.labels.shape, pixel_size_um),
        astm_g_intercept=g_intercept, mean_intercept_um=mean_um, intercepts=crossings, line_length_px=length)
