"""Grain statistics of one boundary image: per-grain table, ASTM E112 G by the planimetric and intercept methods.

Grains are those of the metrics (`model.scoring.metrics.find_grains`: 4-connected background
components of at least `min_grain` pixels), with the default `min_grain` read from the image
(`auto_min_grain`) and etch pits (small compact isolated boundary blobs) filled into their grain.
Intercepts are counted in `.intercepts`. Pure numpy and OpenCV; definitions and hand-worked
examples in docs/measure.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from model.scoring.metrics import Grains, boundary_mask, find_grains
from .field import check_field, clip_paths, cut_by_field, field_box
from .intercepts import LINE_ANGLES, count_crossings, nearest_grain, open_boundary, pattern_paths
from .measurement import (INTERCEPT_OFFSET, INTERCEPT_SLOPE, GrainTable, ImageMeasurement, Twins, mean_intercept,
                          planimetric_g)
from .shape import ellipse_axes, grain_shapes
from .twins import find_twins, merged_ids, twin_boundaries

__all__ = ["INTERCEPT_OFFSET", "INTERCEPT_SLOPE", "GrainTable", "ImageMeasurement", "measure_boundary"]
MAX_GRAINS = 65535  # the labelled grain map is 16-bit
# Default --min-grain (auto_min_grain): the valley between debris and grains in the size histogram, or
AUTO_FRACTION = 1 / 100  # without a valley in the size histogram: this share of the area-weighted median
AUTO_FLOOR = 5  # never below this many pixels (junction pockets are 1-4 px)
OPEN_SHARE = 0.5  # a piece holding more of the background than this is left out of M
VALLEY_BIN, VALLEY_PIECES = 0.2, 3.0  # histogram bin (decades); pieces a debris cluster needs (smoothed)
MANY_BELOW = 0.1  # warn when the pieces left out number more than this share of the grains


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
    if not speck.any() or not near.any():
        return grain_map
    ids = np.where(speck, grains.labels, 0).astype(np.float32)  # exact up to 2**24 pieces
    rim = cv2.dilate(ids, np.ones((3, 3), np.uint8))
    rim[speck | (near == 0)] = 0
    where = rim > 0
    if not where.any():
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
    return planimetric_g(grains_weighted / (shape[0] * shape[1] * (pixel_size_um * 1e-3) ** 2))


def intercept_grain_size(crossings: int, length_px: float, pixel_size_um: float) -> tuple[float, float]:
    """(mean lineal intercept in um, ASTM E112 G): l = L / P, G = -6.643856 log10(l_mm) - 3.288; NaN if P = 0.

    With P the crossings of a test line, a line crossing P boundaries cuts P - 1 whole grains
    and two end pieces that ASTM E112 counts as half each: P intercepts in all.
    """
    return mean_intercept(crossings, length_px, pixel_size_um)


@dataclass(frozen=True)
class Segmentation:
    """The grains of a boundary mask and every pixel's nearest grain."""

    boundary: np.ndarray  # after etch pits were filled
    grains: Grains
    pits: int
    every: GrainTable  # all grains, border ones included
    near: np.ndarray
    distance: np.ndarray


def segment(boundary: np.ndarray, min_grain: int, pixel: float, field: np.ndarray | None) -> Segmentation:
    """Fill etch pits, keep the grains of at least min_grain px (cut ones: a quarter), find the nearest grains."""
    boundary, pits = fill_pits(boundary, min_grain)
    pieces = find_grains(boundary, 1)
    if field is not None:  # a grain against the field's edge is cut, as one against the image's border
        pieces = Grains(pieces.labels, pieces.kept, pieces.inside, pieces.cut, pieces.areas, pieces.centroids,
                        pieces.touches | cut_by_field(pieces.labels, field))
    grains = keep_grains(pieces, min_grain)
    every = grain_table(grains, pixel)
    near, distance = nearest_grain(every.grain_map)
    seeds = speck_owners(grains, every.grain_map, near)
    if seeds is not every.grain_map:
        del near, distance  # replaced: never both at once (48 MB at 2048 px)
        near, distance = nearest_grain(seeds)
    return Segmentation(boundary, grains, pits, every, near, distance)


def measure_boundary(image: np.ndarray, pixel_size_um: float | None = 1.0, min_grain: int | None = 10,
                     exclude_border: bool = False, angles: tuple[float, ...] = LINE_ANGLES,
                     pattern: str = "lines", field: np.ndarray | None = None, twins: str = "none") -> ImageMeasurement:
    """Measure the grains of one boundary image (gray value < 128 is boundary, as the metrics read it).

    pixel_size_um None: no scale (µm figures and G are NaN); min_grain None: `auto_min_grain`;
    field: the pixels to measure (None: all; a rectangle is measured as an image of its own);
    twins: "none", "count" (twin bands listed) or "merge" (merged into their parent grains).
    FieldError for an image or field too small, or a min_grain larger than the field.
    """
    if field is not None and field.all():
        field = None
    check_field(image.shape, image.size if field is None else int(field.sum()), min_grain)
    box = field_box(field) if field is not None else None
    if box is not None:
        top, bottom, left, right = box
        inner = measure_boundary(image[top:bottom, left:right], pixel_size_um, min_grain, exclude_border, angles,
                                 pattern, None, twins)
        return placed(inner, image.shape, top, left)
    pixel = math.nan if pixel_size_um is None else float(pixel_size_um)
    boundary = boundary_mask(image) if field is None else boundary_mask(image) | ~field
    if min_grain is None:
        min_grain = auto_min_grain(find_grains(boundary, 1).areas[1:])
    seg = segment(boundary, min_grain, pixel, field)
    found = None
    if twins != "none":
        seg, found = twin_segmentation(seg, twins, min_grain, pixel, field)
    every, near = seg.every, seg.near
    walls = seg.boundary if field is None else seg.boundary & field  # outside the field is no boundary
    specks = ~seg.boundary & (every.grain_map == 0)
    opened, widened = open_boundary(walls, near, seg.distance, specks)
    in_grain = every.grain_map > 0
    families = pattern_paths(image.shape, pattern, angles)
    if field is not None:
        families = ((label, clip_paths(paths, field)) for label, paths in families)
    crossed = []
    for label, paths in families:
        crossed.append(count_crossings(label, paths, near, opened if paths.pixel_exact else widened, in_grain))
        del paths  # the next family is made after this one's samples are freed (32 MB at 2048 px)
    per_path = tuple(crossed)
    crossings = sum(c.count for c in per_path)
    length = float(sum(c.length_px for c in per_path))
    mean_um, g_intercept = mean_intercept(crossings, length, pixel)
    if field is None:
        weighted = jeffries_count(every.grain_map, every.touches_border, near)
    else:
        weighted = float(np.where(every.touches_border, 0.5, 1.0).sum())
    field_px = image.size if field is None else int(field.sum())
    grains = seg.grains
    keep = ~every.touches_border if exclude_border else np.ones(every.count, bool)
    shapes = grain_shapes(every.grain_map, every.count, near)
    return ImageMeasurement(
        table=grain_table(grains, pixel, exclude_border) if exclude_border else every, shape=image.shape,
        grains_inside=int(np.count_nonzero(~every.touches_border)), grains_cut=int(every.touches_border.sum()),
        grains_weighted=weighted, astm_g_planimetric=planimetric_g(weighted / (field_px * (pixel * 1e-3) ** 2)),
        astm_g_intercept=g_intercept, mean_intercept_um=mean_um, intercepts=crossings,
        open_intercepts=sum(c.open_count for c in per_path), line_length_px=length, per_path=per_path,
        min_grain=int(min_grain), below_min_grain=int(np.count_nonzero(~grains.kept[1:] & (grains.areas[1:] > 0))),
        pits=seg.pits, shapes=shapes.subset(keep), field_px=0 if field is None else field_px,
        twins=found.subset(keep) if found is not None else None)


def placed(inner: ImageMeasurement, shape: tuple[int, int], top: int, left: int) -> ImageMeasurement:
    """A measurement of a rectangular field put back into the whole image of `shape` (field at top, left)."""
    table = inner.table
    grain_map = np.zeros(shape, table.grain_map.dtype)
    grain_map[top:top + inner.shape[0], left:left + inner.shape[1]] = table.grain_map
    moved = replace(table, grain_map=grain_map, centroid_x=table.centroid_x + left, centroid_y=table.centroid_y + top)
    return replace(inner, table=moved, shape=shape, field_px=inner.shape[0] * inner.shape[1])


def twin_segmentation(seg: Segmentation, mode: str, min_grain: int, pixel: float,
                      field: np.ndarray | None) -> tuple[Segmentation, Twins]:
    """(the segmentation to measure, the twins found): `count` lists them, `merge` segments again without them."""
    every = seg.every
    aspect, _ = ellipse_axes(every.grain_map, every.count)
    bands = find_twins(every.grain_map, every.count, aspect, seg.near)
    if mode == "count" or not bands:
        twin_of = np.zeros(every.count, np.int64)
        for band in bands:
            twin_of[band.band - 1] = min(band.parents)
        parents = [p for band in bands for p in band.parents]
        return seg, Twins(mode, len(bands), twin_of, np.bincount(parents, minlength=every.count + 1)[1:])
    merged = merged_ids(every.count, bands)
    erase = twin_boundaries(seg.boundary, seg.near, seg.distance, merged)
    again = segment(seg.boundary & ~erase, min_grain, pixel, field)
    first_pixel = [int(np.argmax(every.grain_map.ravel() == band.band)) for band in bands]
    final = again.every.grain_map.ravel()[first_pixel].astype(np.int64)
    counts = np.bincount(final[final > 0], minlength=again.every.count + 1)[1:]
    return again, Twins(mode, len(bands), np.zeros(again.every.count, np.int64), counts)


def many_below(measurement: ImageMeasurement) -> bool:
    """True when the background pieces left out as specks are many beside the grains (worth a warning)."""
    return measurement.below_min_grain >= max(5, MANY_BELOW * measurement.table.count)
