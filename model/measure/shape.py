"""Per-grain shape: equivalent ellipse (aspect ratio, orientation), Feret diameters, perimeter, neighbours.

A grain is a set of unit pixels. Definitions (docs/measure.md, "Grain shape"):
- aspect ratio and orientation of the equivalent ellipse: the ellipse with the grain's second
  moments (each pixel a unit square: its variance 1/12 added), major over minor axis, and the
  major axis' angle in degrees counter-clockwise from the rows (0 = along x, 90 = along y up);
- Feret (caliper) diameters of the pixel squares' convex hull: the largest and the smallest
  width over all directions (rotating calipers);
- perimeter: the outline through the centres of the grain's edge pixels, simplified to within
  1 px (Douglas-Peucker), plus pi (the half pixel from those centres out to the grain's edge);
- neighbours: grains whose nearest-grain zone shares at least MIN_CONTACT pixel edges with its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_CONTACT = 3  # pixel edges two nearest-grain zones must share to be neighbours (not a point at a junction)
SIMPLIFY_PX = 1.0  # Douglas-Peucker tolerance of the perimeter's outline
CORNERS = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
ROWS_AT_ONCE = 256  # rows of a grain map summed at a time (_bounding_boxes)


@dataclass(frozen=True)
class GrainShapes:
    """Shape of grains 1..n (arrays of n, pixels and degrees)."""

    aspect_ratio: np.ndarray  # major / minor axis of the equivalent ellipse (>= 1)
    orientation_deg: np.ndarray  # [0, 180), counter-clockwise from the rows
    feret_max_px: np.ndarray
    feret_min_px: np.ndarray
    perimeter_px: np.ndarray
    neighbours: np.ndarray  # int64

    def subset(self, keep: np.ndarray) -> GrainShapes:
        """The shapes of the grains where `keep` is True, in order."""
        return GrainShapes(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


def ellipse_of(xx: np.ndarray, yy: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(aspect ratio, orientation in degrees) of ellipses with these second moments (x right, y down)."""
    half_trace, root = (xx + yy) / 2, np.sqrt(((xx - yy) / 2) ** 2 + xy**2)
    aspect = np.sqrt((half_trace + root) / np.maximum(half_trace - root, 1e-12))
    # y points down in the image: the angle seen on screen is minus the one in (x, y-down) coordinates
    return aspect, np.degrees(-0.5 * np.arctan2(2 * xy, xx - yy)) % 180.0


def ellipse_axes(grain_map: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(aspect ratio, orientation in degrees) of each grain's equivalent ellipse."""
    ids = grain_map.ravel().astype(np.int64)
    ys, xs = np.divmod(np.arange(ids.size, dtype=np.float64), grain_map.shape[1])
    size = count + 1
    area = np.maximum(np.bincount(ids, minlength=size), 1).astype(np.float64)
    mean_x, mean_y = np.bincount(ids, xs, size) / area, np.bincount(ids, ys, size) / area
    dx, dy = xs - mean_x[ids], ys - mean_y[ids]
    aspect, orientation = ellipse_of(np.bincount(ids, dx * dx, size) / area + 1 / 12,
                                     np.bincount(ids, dy * dy, size) / area + 1 / 12,
                                     np.bincount(ids, dx * dy, size) / area)
    return aspect[1:], orientation[1:]


def feret_diameters(hull: np.ndarray) -> tuple[float, float]:
    """(largest, smallest) caliper width of a convex polygon (k, 2), by rotating calipers."""
    if len(hull) < 3:
        extent = float(np.ptp(hull, axis=0).max()) if len(hull) else 0.0
        return extent, 0.0
    difference = hull[:, None, :] - hull[None, :, :]  # [e, k]: vertex e minus vertex k
    largest = float(np.sqrt((difference**2).sum(-1)).max())
    edge = np.concatenate([hull[1:], hull[:1]]) - hull
    normal = np.stack([-edge[:, 1], edge[:, 0]], 1) / np.maximum(np.hypot(*edge.T), 1e-12)[:, None]
    heights = np.einsum("ekd,ed->ek", difference, normal)  # vertex k from the line of edge e
    return largest, float(np.abs(heights).max(axis=1).min())


def outline_measures(grain_map: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    """(aspect ratio, orientation, largest Feret, smallest Feret, perimeter) of grains 1..count (px, degrees)."""
    moments, feret_max, feret_min, perimeter = np.zeros((count, 3)), np.zeros(count), np.zeros(count), np.zeros(count)
    boxes = _bounding_boxes(grain_map, count)
    for grain in range(1, count + 1):
        top, bottom, left, right = boxes[grain]
        if bottom < top:
            continue
        mask = cv2.copyMakeBorder((grain_map[top:bottom + 1, left:right + 1] == grain).view(np.uint8),
                                  1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        found = cv2.moments(mask, True)
        moments[grain - 1] = [found["mu20"], found["mu02"], found["mu11"]] / np.float64(max(found["m00"], 1))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = max(contours, key=len)
        centre_hull = cv2.convexHull(outline)[:, 0, :].astype(np.float64) + (left - 1, top - 1)
        corners = (centre_hull[:, None, :] + CORNERS[None]).reshape(-1, 2)  # the pixel squares of its corners
        hull = cv2.convexHull(corners.astype(np.float32))[:, 0, :].astype(np.float64)
        feret_max[grain - 1], feret_min[grain - 1] = feret_diameters(hull)
        simple = cv2.approxPolyDP(outline, SIMPLIFY_PX, True) if len(outline) > 2 else outline
        perimeter[grain - 1] = cv2.arcLength(simple, True) + math.pi
    aspect, orientation = ellipse_of(moments[:, 0] + 1 / 12, moments[:, 1] + 1 / 12, moments[:, 2])
    return aspect, orientation, feret_max, feret_min, perimeter


def _bounding_boxes(grain_map: np.ndarray, count: int) -> np.ndarray:
    """(count + 1, 4) top, bottom, left, right (inclusive) of every id; bottom < top for an absent id.

    Each 4-connected piece of one id is a component; an id in several pieces gets the box around all.
    """
    pieces, labels, stats, _ = cv2.connectedComponentsWithStats((grain_map > 0).view(np.uint8), connectivity=4)
    area = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    sums = np.zeros(pieces)
    # in row blocks: a float64 copy of the whole map would take 32 MB at 2048 px
    for top in range(0, grain_map.shape[0], ROWS_AT_ONCE):
        sums += np.bincount(labels[top:top + ROWS_AT_ONCE].ravel(), grain_map[top:top + ROWS_AT_ONCE].ravel(), pieces)
    owner = np.rint(sums / area).astype(np.int64)
    boxes = np.zeros((count + 1, 4), np.int64)
    boxes[:, 0] = boxes[:, 2] = np.iinfo(np.int64).max
    boxes[:, 1] = boxes[:, 3] = -1
    top, left = stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_LEFT]
    np.minimum.at(boxes[:, 0], owner[1:], top)
    np.maximum.at(boxes[:, 1], owner[1:], top + stats[1:, cv2.CC_STAT_HEIGHT] - 1)
    np.minimum.at(boxes[:, 2], owner[1:], left)
    np.maximum.at(boxes[:, 3], owner[1:], left + stats[1:, cv2.CC_STAT_WIDTH] - 1)
    return boxes


def neighbour_counts(near: np.ndarray, count: int) -> np.ndarray:
    """Per grain 1..count, how many grains' nearest-grain zones share at least MIN_CONTACT pixel edges with its own."""
    keys = []
    for a, b in ((near[:, :-1], near[:, 1:]), (near[:-1], near[1:])):
        differ = (a != b) & (a > 0) & (b > 0)
        first, second = a[differ].astype(np.int64), b[differ].astype(np.int64)
        keys.append(np.minimum(first, second) * (count + 1) + np.maximum(first, second))
    unique, contacts = np.unique(np.concatenate(keys), return_counts=True)
    unique = unique[contacts >= MIN_CONTACT]
    ends = np.concatenate([unique // (count + 1), unique % (count + 1)])
    return np.bincount(ends, minlength=count + 1)[1:].astype(np.int64)


def grain_shapes(grain_map: np.ndarray, count: int, near: np.ndarray) -> GrainShapes:
    """The shape of grains 1..count of `grain_map`; `near` is every pixel's nearest grain (same ids)."""
    aspect, orientation, feret_max, feret_min, perimeter = outline_measures(grain_map, count)
    return GrainShapes(aspect, orientation, feret_max, feret_min, perimeter, neighbour_counts(near, count))
