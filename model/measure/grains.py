"""Grain statistics of one boundary image: per-grain table, ASTM E112 G by the planimetric and intercept methods.

Grains are those of the metrics (`model.scoring.metrics.find_grains`: 4-connected background
components of at least `min_grain` pixels), with the default `min_grain` read from the image
(`auto_min_grain`) and etch pits (small compact isolated boundary blobs) filled into their grain.
Intercepts are counted in `.intercepts`. Pure numpy and OpenCV; definitions and hand-worked
examples in docs/measure.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from model.scoring.metrics import ASTM_OFFSET, ASTM_SLOPE, Grains, boundary_mask, find_grains
from .intercepts import LINE_ANGLES, Crossings, count_crossings, nearest_grain, open_boundary, pattern_paths

# ASTM E112 intercept relation: G = -6.643856 log10(l) - 3.288, l the mean lineal intercept in mm.
INTERCEPT_SLOPE, INTERCEPT_OFFSET = -6.643856, 3.288
MAX_GRAINS = 65535  # the labelled grain map is 16-bit
# Default --min-grain (auto_min_grain): the valley between debris and grains in the size histogram, or
AUTO_FRACTION = 1 / 100  # without a valley in the size histogram: this share of the area-weighted median
AUTO_FLOOR = 5  # never below this many pixels (junction pockets are 1-4 px)
OPEN_SHARE = 0.5  # a piece holding more of the background than this is left out of M
VALLEY_BIN, VALLEY_PIECES = 0.2, 3.0  # histogram bin (decades); pieces a debris cluster needs (smoothed)
MANY_BELOW = 0.1  # warn when the pieces left out number more than this share of the grains


@dataclass(frozen=True)
class GrainTable:
    """The grains of one image, renumbered 1..n in raster order of their first pixel."""

    grain_map: np.ndarray  # (H, W) uint16: grain id, 0 = boundary, speck or left-out border grain
    area_px: np.ndarray  # (n,) int64
    centroid_x: np.ndarray  # (n,) float64, pixels (column), 0 = centre of the first column
    centroid_y: np.ndarray  # (n,) float64, pixels (row)
    touches_border: np.ndarray  # (n,) bool
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
class ImageMeasurement:
    """Everything `measure` reports for one image."""

    table: GrainTable  # the grains listed (border grains left out with exclude_border)
    shape: tuple[int, int]
    grains_inside: int  # grains not touching the border (all grains, whatever exclude_border)
    grains_cut: int  # grains touching the border (corner grains included)
    grains_weighted: float  # Jeffries count: inside 1, cut 1/2, a grain holding a field corner 1/4 per corner
    astm_g_planimetric: float  # NaN without grains or scale
    astm_g_intercept: float  # NaN without a crossing or scale
    mean_intercept_um: float
    intercepts: float  # E112 P: boundary crossings on all test paths, open ones included (half: a grazed tip)
    open_intercepts: int  # ... of which cross a boundary that separates no two grains
    line_length_px: float  # total length of the test paths
    per_path: tuple[Crossings, ...]  # one per angle (or the circles)
    min_grain: int  # the speck threshold used (px)
    below_min_grain: int  # background pieces smaller than it (not grains)
    pits: int  # compact isolated boundary blobs filled into their grain

    @property
    def pixel_size_um(self) -> float:
        """Micrometres per pixel (NaN: no scale)."""
        return self.table.pixel_size_um

    def mean_intercepts_um(self) -> dict[str, float]:
        """Mean intercept per test-line angle (or the circles), in µm (NaN without crossings)."""
        return {c.label: _mean_intercept(c.count, c.length_px, self.pixel_size_um)[0] for c in self.per_path}

    @property
    def anisotropy(self) -> float:
        """Longest per-angle mean intercept over the shortest (1 = equiaxed); NaN with fewer than two angles."""
        lengths = [c.length_px / c.count for c in self.per_path if c.count and c.label != "circles"]
        return max(lengths) / min(lengths) if len(lengths) >= 2 and len(lengths) == len(self.per_path) else math.nan

    @property
    def grains_per_mm2(self) -> float:
        """Jeffries N_A (grains per mm²): NaN without a scale."""
        return self.grains_weighted / (self.shape[0] * self.shape[1] * (self.pixel_size_um * 1e-3) ** 2)

    def summary(self) -> dict[str, float | int]:
        """One row of summary.csv (without the image's name)."""
        area = self.table.area_um2
        row: dict[str, float | int] = {
            "width_px": self.shape[1], "height_px": self.shape[0], "pixel_size_um": self.pixel_size_um,
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
        return row


def _table(grains: Grains, keep: np.ndarray, pixel_size_um: float) -> GrainTable:
    ids = np.flatnonzero(keep)
    if ids.size > MAX_GRAINS:
        raise ValueError(f"{ids.size} grains: more than a 16-bit grain map can hold ({MAX_GRAINS})")
    renumber = np.zeros(keep.size, np.uint16)
    renumber[ids] = np.arange(1, ids.size + 1, dtype=np.uint16)
    return GrainTable(grain_map=renumber[grains.labels], area_px=grains.areas[ids].astype(np.int64),
                      centroid_x=grains.centroids[ids, 0].astype(np.float64),
                      centroid_y=grains.centroids[ids, 1].astype(np.float64),
                      touches_border=grains.touches[ids].copy(), pixel_size_um=float(pixel_size_um))


def grain_table(grains: Grains, pixel_size_um: float, exclude_border: bool = False) -> GrainTable:
    """The grains of `find_grains` as a renumbered table (border grains dropped with exclude_border)."""
    return _table(grains, grains.kept & ~grains.touches if exclude_border else grains.kept, pixel_size_um)


def auto_min_grain(areas: np.ndarray) -> int:
    """Default speck threshold (px) from the areas of all background pieces; see docs/measure.md.

    With M the area-weighted median (half the background lies in pieces at least this big; specks,
    however many, barely move it; a piece holding over half of the background, left open by a
    skeleton that does not close, is left out): when the pieces' size histogram (log scale, 0.2 decade bins) has
    a cluster of small pieces and a valley, at most half as high, between it and M / 4, the threshold
    is the middle of that valley; otherwise M / 100. Never below AUTO_FLOOR px.
    """
    areas = np.sort(np.asarray(areas, np.int64)[np.asarray(areas) > 0])
    if areas.size == 0:
        return AUTO_FLOOR
    closed = areas[areas <= OPEN_SHARE * areas.sum()]
    areas = closed if closed.size else areas  # a piece this big is background an open network never closed
    cumulative = np.cumsum(areas)
    weighted_median = int(areas[np.searchsorted(cumulative, cumulative[-1] / 2)])
    fallback = max(AUTO_FLOOR, int(round(weighted_median * AUTO_FRACTION)))
    low, high = math.log10(AUTO_FLOOR), math.log10(weighted_median / 4)
    if high - low < 3 * VALLEY_BIN:
        return fallback
    edges = np.arange(0.0, high + VALLEY_BIN, VALLEY_BIN)
    counts, _ = np.histogram(np.log10(areas), bins=edges)
    smooth = np.convolve(np.pad(counts.astype(np.float64), 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    centres = (edges[:-1] + edges[1:]) / 2
    inside = np.flatnonzero(centres >= low)
    if inside.size < 3:
        return fallback
    lowest = smooth[inside].min()
    floor = inside[smooth[inside] <= lowest + 1e-9]
    # the longest stretch of bins at the minimum, and the small-piece cluster left of it
    runs = np.split(floor, np.flatnonzero(np.diff(floor) > 1) + 1)
    valley = max(runs, key=len)
    left_peak = smooth[:valley[0]].max() if valley[0] > 0 else 0.0
    if left_peak < VALLEY_PIECES or lowest > 0.5 * left_peak:
        return fallback
    return max(AUTO_FLOOR, int(round(10 ** centres[valley].mean())))


def keep_grains(pieces: Grains, min_grain: int) -> Grains:
    """The grains among all background pieces (`find_grains(..., 1)`): at least min_grain px, or a quarter
    of that (and at least AUTO_FLOOR) for a piece cut by the image border, whose size is only what the field shows."""
    areas = pieces.areas
    border_min = max(min(AUTO_FLOOR, min_grain), min_grain / 4)
    kept = (areas >= min_grain) | (pieces.touches & (areas >= border_min))
    kept[0] = False
    touches = kept & pieces.touches
    return Grains(pieces.labels, kept, int(kept.sum()), int(touches.sum()), areas, pieces.centroids, touches)


def speck_owners(grains: Grains, grain_map: np.ndarray, near: np.ndarray) -> np.ndarray:
    """`grain_map` with every speck given to the grain most of its rim is nearest to (the grain it sits in).

    Debris walled in against a boundary would otherwise pull the nearest-grain line between two
    grains into its pocket, and a line passing by would cross it twice more.
    """
    speck = ~grains.kept[grains.labels] & (grains.labels > 0)
    if not speck.any():
        return grain_map
    ids = np.where(speck, grains.labels, 0).astype(np.float32)  # exact up to 2**24 pieces
    rim = cv2.dilate(ids, np.ones((3, 3), np.uint8))
    rim[speck | (near == 0)] = 0
    where = rim > 0
    if not where.any():  # no grain at all (a 1 px image, --min-grain above its area): no owner to give specks
        return grain_map
    labels = near[where].astype(np.int64)
    key = rim[where].astype(np.int64) * (int(near.max()) + 1) + labels
    pairs, counts = np.unique(key, return_counts=True)
    piece, owner = pairs // (int(near.max()) + 1), pairs % (int(near.max()) + 1)
    order = np.lexsort((-counts, piece))  # per speck, its most frequent rim grain first
    first = np.concatenate([[True], piece[order][1:] != piece[order][:-1]])
    owners = np.zeros(grains.kept.size, grain_map.dtype)
    owners[piece[order][first]] = owner[order][first]
    seeds = grain_map.copy()
    seeds[speck] = owners[grains.labels[speck]]
    return seeds


def fill_pits(boundary: np.ndarray, max_area: int) -> tuple[np.ndarray, int]:
    """(boundary without etch pits, pits): isolated 8-connected boundary blobs under max_area px, about as wide as long."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(boundary.view(np.uint8), connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA]
    side = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    pit = (area < max_area) & (side * side <= 4 * area)  # a blob, not a short line
    pit[0] = False
    if not pit[1:].any():
        return boundary, 0
    return boundary & ~pit[labels], int(pit.sum())


def jeffries_count(grain_map: np.ndarray, touches: np.ndarray, near: np.ndarray) -> float:
    """E112 planimetric count on a rectangular field: inside 1, cut by the border 1/2, 1/4 per field corner held.

    A grain holds a corner when it is the corner pixel's nearest grain (the pixel itself, or the grain
    beyond a boundary lying on the corner) and touches both edges that meet there.
    """
    height, width = grain_map.shape
    edges = {side: set(np.unique(line).tolist()) - {0} for side, line in
             (("top", grain_map[0]), ("bottom", grain_map[-1]), ("left", grain_map[:, 0]), ("right", grain_map[:, -1]))}
    corners = (((0, 0), "top", "left"), ((0, width - 1), "top", "right"), ((height - 1, 0), "bottom", "left"),
               ((height - 1, width - 1), "bottom", "right"))
    held = np.zeros(touches.size + 1, np.int64)
    for (y, x), one, other in corners:
        grain = int(near[y, x])
        if grain in edges[one] and grain in edges[other]:
            held[grain] += 1
    weight = np.where(touches, 0.5, 1.0)
    weight = np.where(held[1:] > 0, 0.25 * held[1:], weight)
    return float(weight.sum())


def planimetric_grain_size(grains_weighted: float, shape: tuple[int, int], pixel_size_um: float) -> float:
    """ASTM E112 planimetric G = 3.321928 log10(N_A) - 2.954, N_A per mm²; NaN without grains or scale."""
    area_mm2 = shape[0] * shape[1] * (pixel_size_um * 1e-3) ** 2
    if not grains_weighted > 0 or not area_mm2 > 0:
        return math.nan
    return ASTM_SLOPE * math.log10(grains_weighted / area_mm2) - ASTM_OFFSET


def _mean_intercept(crossings: int, length_px: float, pixel_size_um: float) -> tuple[float, float]:
    if crossings <= 0 or not pixel_size_um > 0:
        return math.nan, math.nan
    mean_um = length_px * pixel_size_um / crossings
    return mean_um, INTERCEPT_SLOPE * math.log10(mean_um * 1e-3) - INTERCEPT_OFFSET


def intercept_grain_size(crossings: int, length_px: float, pixel_size_um: float) -> tuple[float, float]:
    """(mean lineal intercept in um, ASTM E112 G): l = L / P, G = -6.643856 log10(l_mm) - 3.288; NaN if P = 0.

    With P the crossings of a test line, a line crossing P boundaries cuts P - 1 whole grains
    and two end pieces that ASTM E112 counts as half each: P intercepts in all.
    """
    return _mean_intercept(crossings, length_px, pixel_size_um)


def measure_boundary(image: np.ndarray, pixel_size_um: float | None = 1.0, min_grain: int | None = 10,
                     exclude_border: bool = False, angles: tuple[float, ...] = LINE_ANGLES,
                     pattern: str = "lines") -> ImageMeasurement:
    """Measure the grains of one boundary image (gray value < 128 is boundary, as the metrics read it).

    pixel_size_um None: no scale (µm figures and G are NaN); min_grain None: `auto_min_grain`.
    """
    pixel = math.nan if pixel_size_um is None else float(pixel_size_um)
    boundary = boundary_mask(image)
    pieces = find_grains(boundary, 1)
    if min_grain is None:
        min_grain = auto_min_grain(pieces.areas[1:])
    boundary, pits = fill_pits(boundary, min_grain)
    grains = keep_grains(find_grains(boundary, 1) if pits else pieces, min_grain)
    every = grain_table(grains, pixel)
    near, distance = nearest_grain(every.grain_map)
    seeds = speck_owners(grains, every.grain_map, near)
    if seeds is not every.grain_map:
        near, distance = nearest_grain(seeds)
    opened, widened = open_boundary(boundary, near, distance, ~boundary & (every.grain_map == 0))
    in_grain = every.grain_map > 0
    per_path = tuple(count_crossings(label, paths, near, opened if paths.pixel_exact else widened, in_grain)
                     for label, paths in pattern_paths(grains.labels.shape, pattern, angles))
    crossings = sum(c.count for c in per_path)
    length = float(sum(c.length_px for c in per_path))
    mean_um, g_intercept = _mean_intercept(crossings, length, pixel)
    weighted = jeffries_count(every.grain_map, every.touches_border, near)
    below = int(np.count_nonzero(~grains.kept[1:] & (grains.areas[1:] > 0)))
    return ImageMeasurement(
        table=grain_table(grains, pixel, exclude_border) if exclude_border else every, shape=grains.labels.shape,
        grains_inside=grains.inside, grains_cut=grains.cut, grains_weighted=weighted,
        astm_g_planimetric=planimetric_grain_size(weighted, grains.labels.shape, pixel),
        astm_g_intercept=g_intercept, mean_intercept_um=mean_um, intercepts=crossings,
        open_intercepts=sum(c.open_count for c in per_path), line_length_px=length, per_path=per_path,
        min_grain=int(min_grain), below_min_grain=below, pits=pits)


def many_below(measurement: ImageMeasurement) -> bool:
    """True when the background pieces left out as specks are many beside the grains (worth a warning)."""
    return measurement.below_min_grain >= max(5, MANY_BELOW * measurement.table.count)
