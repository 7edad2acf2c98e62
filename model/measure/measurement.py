"""What `measure` finds in one image: its grain table and the ASTM E112 figures, and E112's two relations.

Planimetric: G = 3.321928 log10(N_A) - 2.954, N_A grains per mm². Intercept: G = -6.643856
log10(l) - 3.288, l the mean lineal intercept in mm. The algorithms that fill these records live in
`.grains` (grains, Jeffries count), `.intercepts` (crossings) and `.shape` (grain shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from model.scoring.metrics import ASTM_OFFSET, ASTM_SLOPE
from .distribution import SizeDistribution, size_distribution
from .intercepts import Crossings, CrossingTotals
from .shape import GrainShapes

INTERCEPT_SLOPE, INTERCEPT_OFFSET = -6.643856, 3.288


def planimetric_g(per_mm2: float) -> float:
    """ASTM E112 planimetric G of N_A grains per mm² (NaN unless N_A > 0 and finite)."""
    return ASTM_SLOPE * math.log10(per_mm2) - ASTM_OFFSET if 0 < per_mm2 < math.inf else math.nan


def intercept_g(mean_um: float) -> float:
    """ASTM E112 intercept G of a mean lineal intercept in µm (NaN unless it is > 0 and finite)."""
    return INTERCEPT_SLOPE * math.log10(mean_um * 1e-3) - INTERCEPT_OFFSET if 0 < mean_um < math.inf else math.nan


def mean_intercept(crossings: float, length_px: float, pixel_size_um: float) -> tuple[float, float]:
    """(l in µm, intercept G): l = L / P; NaN without a crossing or a scale."""
    if crossings <= 0 or not pixel_size_um > 0:
        return math.nan, math.nan
    mean_um = length_px * pixel_size_um / crossings
    return mean_um, intercept_g(mean_um)


@dataclass(frozen=True)
class GrainTable:
    """The grains of one image, renumbered 1..n in raster order of their first pixel."""

    grain_map: np.ndarray | None  # (H, W) uint16: grain id, 0 = boundary, speck, left-out border grain or outside the
    # field; None in a lean record (ImageMeasurement.lean)
    area_px: np.ndarray  # (n,) int64
    centroid_x: np.ndarray  # (n,) float64, pixels (column), 0 = centre of the first column
    centroid_y: np.ndarray  # (n,) float64, pixels (row)
    touches_border: np.ndarray  # (n,) bool: cut by the image's border or the field's edge
    pixel_size_um: float  # NaN: no scale known

    @property
    def count(self) -> int:
        """Number of grains in the table."""
        return int(self.area_px.size)

    @property
    def area_um2(self) -> np.ndarray:
        """Grain areas in square micrometres (NaN without a scale)."""
        return self.area_px * self.pixel_size_um**2

    @property
    def diameter_um(self) -> np.ndarray:
        """Equivalent circle diameters 2 sqrt(A / pi), in micrometres (NaN without a scale)."""
        return 2.0 * np.sqrt(self.area_um2 / math.pi)

    @property
    def diameter_px(self) -> np.ndarray:
        """Equivalent circle diameters in pixels."""
        return 2.0 * np.sqrt(self.area_px / math.pi)


@dataclass(frozen=True)
class Twins:
    """Twin bands found in one image (`--twins`): per grain of the table."""

    mode: str  # "count": bands listed as grains of their own; "merge": bands merged into their parent
    bands: int  # twin bands found
    twin_of: np.ndarray  # (n,) int64: count mode, the grain a band lies in (0: not a band); merge mode, all 0
    merged: np.ndarray  # (n,) int64: bands lying in (count) or merged into (merge) each grain

    def subset(self, keep: np.ndarray) -> Twins:
        """The rows of the grains where `keep` is True, `twin_of` renumbered as the kept grains are."""
        renumber = np.concatenate([[0], np.where(keep, np.cumsum(keep), 0)])
        return Twins(self.mode, self.bands, renumber[self.twin_of][keep], self.merged[keep])


@dataclass(frozen=True)
class ImageMeasurement:
    """Everything `measure` reports for one image."""

    table: GrainTable  # the grains listed (border grains left out with exclude_border)
    shape: tuple[int, int]  # the image's (height, width)
    grains_inside: int  # grains not touching the border (all grains, whatever exclude_border)
    grains_cut: int  # grains touching the border (corner grains included)
    grains_weighted: float  # Jeffries count: inside 1, cut 1/2, a grain holding a field corner 1/4 per corner
    astm_g_planimetric: float  # NaN without grains or scale
    astm_g_intercept: float  # NaN without a crossing or scale
    mean_intercept_um: float
    intercepts: float  # E112 P: boundary crossings on all test paths, open ones included (half: a grazed tip)
    open_intercepts: int  # ... of which cross a boundary that separates no two grains
    line_length_px: float  # total length of the test paths
    per_path: tuple[Crossings | CrossingTotals, ...]  # one per angle (or the circles); totals only in a lean record
    min_grain: int  # the speck threshold used (px)
    below_min_grain: int  # background pieces smaller than it (not grains)
    pits: int  # compact isolated boundary blobs filled into their grain
    shapes: GrainShapes | None = None  # of the table's grains
    field_px: int = 0  # pixels measured (the field); 0: the whole image
    twins: Twins | None = None

    def lean(self) -> ImageMeasurement:
        """This record without its image-sized arrays (the grain map, the test paths' samples): every figure
        of summaries and the report, at a few bytes a grain. A run keeps one per image: whole, a 2048 px
        image's record held about 150 MB."""
        return replace(self, table=replace(self.table, grain_map=None),
                       per_path=tuple(c.totals() if isinstance(c, Crossings) else c for c in self.per_path))

    @property
    def pixel_size_um(self) -> float:
        """Micrometres per pixel (NaN: no scale)."""
        return self.table.pixel_size_um

    @property
    def field_area_px(self) -> int:
        """Pixels of the field measured: the whole image unless a mask, ROI or data bar left some out."""
        return self.field_px or self.shape[0] * self.shape[1]

    def mean_intercepts_um(self) -> dict[str, float]:
        """Mean intercept per test-line angle (or the circles), in µm (NaN without crossings)."""
        return {c.label: mean_intercept(c.count, c.length_px, self.pixel_size_um)[0] for c in self.per_path}

    @property
    def anisotropy(self) -> float:
        """Longest per-angle mean intercept over the shortest (1 = equiaxed); NaN with fewer than two angles."""
        lengths = [c.length_px / c.count for c in self.per_path if c.count and c.label != "circles"]
        return max(lengths) / min(lengths) if len(lengths) >= 2 and len(lengths) == len(self.per_path) else math.nan

    @property
    def grains_per_mm2(self) -> float:
        """Jeffries N_A (grains per mm²): NaN without a scale."""
        return self.grains_weighted / (self.field_area_px * (self.pixel_size_um * 1e-3) ** 2)

    def distribution(self) -> SizeDistribution:
        """Grain sizes by G class, the E1181 duplex check and the largest grain (E930)."""
        table = self.table
        feret = self.shapes.feret_max_px if self.shapes is not None else table.diameter_px
        return size_distribution(table.area_px, table.touches_border, feret, self.pixel_size_um,
                                 self.grains_weighted, self.field_area_px)

    def summary(self) -> dict[str, float | int | str]:
        """One row of summary.csv (without the image's name)."""
        area = self.table.area_um2
        row: dict[str, float | int | str] = {
            "width_px": self.shape[1], "height_px": self.shape[0], "field_px": self.field_area_px,
            "pixel_size_um": self.pixel_size_um,
            "min_grain_px": self.min_grain, "below_min_grain": self.below_min_grain,
            "grains": self.table.count, "grains_inside": self.grains_inside, "grains_cut": self.grains_cut,
            "grains_weighted": self.grains_weighted,
            "mean_area_um2": float(area.mean()) if area.size else math.nan,
            "median_area_um2": float(np.median(area)) if area.size else math.nan,
            "mean_diameter_um": float(self.table.diameter_um.mean()) if area.size else math.nan,
            "astm_g_planimetric": self.astm_g_planimetric,
            "astm_g_intercept": self.astm_g_intercept,
            "mean_intercept_um": self.mean_intercept_um,
            "intercepts": self.intercepts, "open_intercepts": self.open_intercepts,
        }
        for label, value in self.mean_intercepts_um().items():
            row[f"mean_intercept_um_{label}"] = value
        row["anisotropy"] = self.anisotropy
        row.update(self.distribution().summary())
        if self.twins is not None:
            row["twins"] = self.twins.bands
        return row
