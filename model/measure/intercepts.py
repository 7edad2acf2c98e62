"""ASTM E112 intercept counting on boundary images: test lines at any angle, the three-circle pattern.

Every boundary pixel takes the id of its nearest grain (`nearest_grain`), so a test line changes
id exactly once where it crosses a boundary band, however thick the band and whether the line
runs across it, inside it or through a junction blob. Boundaries that separate no two grains
(open-ended lines, a skeleton that does not close) are counted separately (`open_boundary`):
a line crossing such a band once is one crossing, as E112 counts every boundary crossed.
Definitions in docs/measure.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

LINE_ANGLES = (0.0, 45.0, 90.0, 135.0)  # E112's straight-line pattern at four orientations
CIRCLE_RATIOS = (1.0, 2.0 / 3.0, 1.0 / 3.0)  # E112's three concentric circles: diameters 3 : 2 : 1


@dataclass(frozen=True)
class Paths:
    """Test paths (lines, or circles) sampled at pixels, all samples of all paths in one flat array.

    Path k holds samples first[k]:first[k + 1]; sample j of it lies (j + 0.5) * step[k] along the
    path for lines, j * step[k] for circles (whose last sample repeats the first).
    """

    flat: np.ndarray  # (N,) int64 index into the raveled image
    first: np.ndarray  # (n + 1,) int64 offsets of each path's samples
    step: np.ndarray  # (n,) float64 px between samples
    length: np.ndarray  # (n,) float64 path length (px): chord in the image, or circumference
    closed: bool
    origin: np.ndarray  # (n, 2) x, y (px, 0 = top-left corner of the image) where each line enters; circles: centre
    direction: tuple[float, float]  # (ux, uy) along the lines; circles: (radius of the largest, 0)
    pixel_exact: bool = False  # rows or columns: every pixel of the line, 4-adjacent steps
    wobbles: bool = False  # samples rounded to pixels off the true path: circles, lines at odd angles
    corner_steps: tuple[int, int] | None = None  # diagonals: flat offsets from a sample to the two pixels
    # that share the corner it steps through to the next sample (see `count_crossings`)

    @property
    def line_of(self) -> np.ndarray:
        """(N,) path index of every sample."""
        return np.repeat(np.arange(self.length.size), np.diff(self.first))

    def offset(self, k: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Distance along path k of its sample j (fractional j allowed)."""
        return (j + (0.0 if self.closed else 0.5)) * self.step[k]


@dataclass(frozen=True)
class Crossings:
    """The crossings of one family of test paths."""

    label: str  # "0", "45", ... (degrees) or "circles"
    path: np.ndarray  # (P,) int64: index of the path of each crossing, sorted by path then position
    position: np.ndarray  # (P,) float64: distance along the path (px)
    open_count: int  # how many of them cross an open boundary (the rest separate two grains)
    length_px: float  # total length of the paths
    path_lengths: np.ndarray  # (n,) float64: length of each path (px); its samples are not kept
    closed: bool  # circles (a path's last piece joins its first)
    corner_bonus: float = 0.0  # diagonals: crossings of grain tips between two samples (see _corner_grains)

    @property
    def count(self) -> float:
        """Number of crossings, E112's P (a grain tip grazed between two diagonal samples counts 1/2)."""
        return self.path.size + self.corner_bonus

    def totals(self) -> CrossingTotals:
        """The family's totals without its per-sample arrays (what summaries read)."""
        return CrossingTotals(self.label, self.count, self.open_count, self.length_px)


@dataclass(frozen=True)
class CrossingTotals:
    """The totals of one family of test paths: label, E112's P, open crossings and path length (px)."""

    label: str
    count: float
    open_count: int
    length_px: float


def nearest_grain(grain_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(id of the nearest grain for every pixel, distance to it in px); grain pixels keep their id (0s if no grain)."""
    seeds = grain_map > 0
    if not seeds.any():
        return np.zeros_like(grain_map), np.zeros(grain_map.shape, np.float32)
    distance, nearest = cv2.distanceTransformWithLabels(
        np.logical_not(seeds).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL)
    lookup = np.zeros(int(nearest.max()) + 1, grain_map.dtype)
    lookup[nearest[seeds]] = grain_map[seeds]  # each seed pixel is its own label
    return lookup[nearest], distance


def open_boundary(boundary: np.ndarray, near: np.ndarray, distance: np.ndarray,
                  specks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boundary pixels with one nearest grain all around them: boundaries that separate no two grains.

    The neighbourhood is a disc a little wider than the band's half-width (90th percentile of the
    boundary pixels' distance to a grain, + 1.5 px), so the edge pixels of a band between two grains
    still see both. Pieces touching a speck (`specks`: background too small to be a grain) are its
    walls, not boundaries, and are left out. Returned twice: as found, for rows and columns (which cannot pass an 8-connected
    line without touching it), and widened by a 4-neighbour cross for the other lines and circles.
    """
    if not boundary.any():
        return np.zeros(boundary.shape, bool), np.zeros(boundary.shape, bool)
    radius = int(math.ceil(float(np.percentile(distance[boundary], 90)) + 1.5))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    ids = near.astype(np.uint16) if near.dtype != np.uint16 else near
    uniform = cv2.dilate(ids, disc) == cv2.erode(ids, disc)
    opened = boundary & uniform
    if specks is not None and specks.any():  # the walls of debris (specks) are no boundary crossed
        count, pieces = cv2.connectedComponents(opened.view(np.uint8), connectivity=8)
        walls = np.unique(pieces[cv2.dilate(specks.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)])
        opened &= ~np.isin(pieces, walls[walls > 0])
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return opened, cv2.dilate(opened.view(np.uint8), cross).view(bool) & uniform


def line_paths(shape: tuple[int, int], angle_deg: float, spacing: float = 1.0, step: float = 1.0) -> Paths:
    """Parallel test lines at `angle_deg` (0 = rows, 90 = columns, 45 = bottom-left to top-right).

    At 0, 45, 90 and 135 degrees the lines run through pixel centres and sample every pixel once:
    rows and columns 1 px apart, diagonals 1/sqrt(2) px apart sampled every sqrt(2) px. At other
    angles they are `spacing` px apart, centred on the image, sampled every `step` px from where
    they enter the image, at the pixel under the point.
    """
    angle = float(angle_deg) % 180.0
    if angle in (0.0, 90.0):
        return _axis_paths(shape, angle == 90.0)
    if angle in (45.0, 135.0):
        return _diagonal_paths(shape, angle == 135.0)
    return _sampled_paths(shape, angle, spacing, step)


def _axis_paths(shape: tuple[int, int], columns: bool) -> Paths:
    height, width = shape
    if not columns:  # rows, left to right
        flat = np.arange(height * width, dtype=np.int64)
        origin = np.stack([np.zeros(height), np.arange(height) + 0.5], axis=1)
        return Paths(flat, np.arange(height + 1) * width, np.ones(height), np.full(height, float(width)), False,
                     origin, (1.0, 0.0), True)
    # columns, bottom to top: column c holds (height - 1 - r) * width + c for r = 0, 1, ... (no copy of the rows' array)
    flat = (np.arange(height - 1, -1, -1, dtype=np.int64) * width + np.arange(width, dtype=np.int64)[:, None]).ravel()
    origin = np.stack([np.arange(width) + 0.5, np.full(width, float(height))], axis=1)
    return Paths(flat, np.arange(width + 1) * height, np.ones(width), np.full(width, float(height)), False,
                 origin, (0.0, -1.0), True)


def _diagonal_paths(shape: tuple[int, int], leftward: bool) -> Paths:
    """45 degrees: the anti-diagonals r + c = d from bottom-left; 135 degrees: c - r = e from bottom-right."""
    height, width = shape
    if not leftward:
        d = np.arange(height + width - 1)
        r0 = np.minimum(d, height - 1)
        c0 = d - r0
        count = r0 - np.maximum(0, d - width + 1) + 1
        stride, origin_x, direction = 1 - width, c0.astype(np.float64), (math.sqrt(0.5), -math.sqrt(0.5))
    else:
        e = np.arange(-(height - 1), width)
        r0 = np.minimum(height - 1, width - 1 - e)
        c0 = r0 + e
        count = r0 - np.maximum(0, -e) + 1
        stride, origin_x, direction = -(width + 1), c0 + 1.0, (-math.sqrt(0.5), -math.sqrt(0.5))
    first = np.concatenate([[0], np.cumsum(count)])
    # line by line: no image-sized temporaries (four of them took 128 MB at 2048 px)
    flat = np.empty(int(first[-1]), np.int64)
    steps = np.arange(int(count.max()), dtype=np.int64) * stride
    for start, size, pixel in zip(first[:-1].tolist(), count.tolist(), (r0 * width + c0).tolist()):
        np.add(steps[:size], pixel, out=flat[start:start + size])
    origin = np.stack([origin_x, r0 + 1.0], axis=1)  # the corner of the first pixel the line enters by
    beside = (1, -width) if not leftward else (-1, -width)  # the pixels right/left of and above a sample
    return Paths(flat, first, np.full(count.size, math.sqrt(2)), count * math.sqrt(2), False, origin, direction,
                 corner_steps=beside)


def _sampled_paths(shape: tuple[int, int], angle_deg: float, spacing: float, step: float) -> Paths:
    height, width = shape
    theta = math.radians(angle_deg)
    ux, uy = math.cos(theta), -math.sin(theta)  # along the line (y points down)
    nx, ny = math.sin(theta), math.cos(theta)  # across
    ux, uy, nx, ny = (0.0 if abs(v) < 1e-12 else v for v in (ux, uy, nx, ny))
    cx, cy = width / 2, height / 2
    corners = [(x - cx) * nx + (y - cy) * ny for x in (0, width) for y in (0, height)]
    low, high = min(corners), max(corners)
    offsets = low + (np.arange(int(math.floor((high - low) / spacing + 1e-9))) + 0.5) * spacing
    start = np.full(offsets.size, -np.inf)
    stop = np.full(offsets.size, np.inf)
    for u, n, c, size in ((ux, nx, cx, width), (uy, ny, cy, height)):
        base = c + offsets * n  # coordinate at t = 0
        if u == 0:
            inside = (base >= 0) & (base <= size)
            start[~inside], stop[~inside] = 0.0, 0.0
        else:
            a, b = (0 - base) / u, (size - base) / u
            start, stop = np.maximum(start, np.minimum(a, b)), np.minimum(stop, np.maximum(a, b))
    length = np.maximum(stop - start, 0.0)
    count = np.floor(length / step + 1e-9).astype(np.int64)
    keep = count > 0
    offsets, start, length, count = offsets[keep], start[keep], length[keep], count[keep]
    origin = np.stack([cx + offsets * nx + start * ux, cy + offsets * ny + start * uy], axis=1)
    first = np.concatenate([[0], np.cumsum(count)])
    # float32 is exact enough here (1e-4 px at 2048 px) and halves the time of the biggest step
    line = np.repeat(np.arange(count.size, dtype=np.int32), count)
    t = np.arange(int(first[-1]), dtype=np.float32)
    t -= (first[:-1] - 0.5).astype(np.float32)[line]
    t *= np.float32(step)
    x = t * np.float32(ux)
    x += origin[:, 0].astype(np.float32)[line]
    y = t * np.float32(uy)
    y += origin[:, 1].astype(np.float32)[line]
    cols = np.clip(x, 0, width - 1, out=x).astype(np.int32)
    flat = np.clip(y, 0, height - 1, out=y).astype(np.int32).astype(np.int64)
    flat *= width
    flat += cols
    return Paths(flat, first, np.full(count.size, step), length, False, origin, (ux, uy), wobbles=True)


def circle_paths(shape: tuple[int, int], step: float = 1.0) -> Paths:
    """E112's three concentric circles (diameters 3 : 2 : 1), centred, the largest as wide as the image allows."""
    height, width = shape
    radius = (min(height, width) - 1) / 2
    cx, cy = width / 2, height / 2
    radii = np.array([radius * r for r in CIRCLE_RATIOS])
    count = np.array([max(8, int(math.ceil(2 * math.pi * r / step))) for r in radii])
    flats = []
    for r, m in zip(radii, count):
        phi = 2 * math.pi * (np.arange(m + 1) % m) / m  # the last sample repeats the first
        x = np.clip(np.floor(cx + r * np.cos(phi)), 0, width - 1).astype(np.int64)
        y = np.clip(np.floor(cy - r * np.sin(phi)), 0, height - 1).astype(np.int64)
        flats.append(y * width + x)
    return Paths(np.concatenate(flats), np.concatenate([[0], np.cumsum(count + 1)]), 2 * np.pi * radii / count,
                 2 * np.pi * radii, True, np.array([[cx, cy]] * 3), (float(radius), 0.0), wobbles=True)


def _rotate_closed(paths: Paths, marks: np.ndarray) -> Paths:
    """Closed paths rotated to start (and end) at a sample outside `marks`, so no run wraps around."""
    flat = paths.flat.copy()
    for k in range(paths.length.size):
        a, b = int(paths.first[k]), int(paths.first[k + 1]) - 1  # b: the repeated first sample
        free = np.flatnonzero(~marks[a:b])
        shift = int(free[0]) if free.size else 0
        order = (np.arange(b - a + 1) % (b - a) + shift) % (b - a)
        flat[a:b + 1] = paths.flat[a + order]
    return Paths(flat, paths.first, paths.step, paths.length, True, paths.origin, paths.direction, paths.pixel_exact,
                 paths.wobbles, paths.corner_steps)


def _drop_wobbles(change: np.ndarray, ids: np.ndarray, samples: int = 2) -> np.ndarray:
    """`change` without the pairs A -> B -> A that last at most `samples` samples.

    A rounded path (a circle, a line at an odd angle) wanders up to 0.7 px off its true course, so it
    can step over a boundary it runs along and back: two crossings the true path never makes.
    """
    if change.size < 2:
        return change
    close = (np.diff(change) <= samples) & (ids[change[:-1] - 1] == ids[change[1:]])
    drop = np.zeros(change.size, bool)
    for i in np.flatnonzero(close).tolist():
        if not drop[i]:
            drop[i] = drop[i + 1] = True
    return change[~drop]


def _split_at_paths(first: np.ndarray, last: np.ndarray, starts: np.ndarray,
                    stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs [first, last] of the flat sample array cut at the paths' ends (a run never spans two paths)."""
    path_first = np.searchsorted(starts, first, side="right") - 1
    path_last = np.searchsorted(starts, last, side="right") - 1
    if np.array_equal(path_first, path_last):
        return first, last
    spans = np.flatnonzero(path_first != path_last)
    extra_first = [first[~np.isin(np.arange(first.size), spans)]]
    extra_last = [last[~np.isin(np.arange(last.size), spans)]]
    for k in spans.tolist():  # rare: an open run at the end of one path and the start of the next
        a, b = int(path_first[k]), int(path_last[k])
        extra_first.append(np.concatenate([[first[k]], starts[a + 1:b + 1]]))
        extra_last.append(np.concatenate([stops[a:b], [last[k]]]))
    first, last = np.concatenate(extra_first), np.concatenate(extra_last)
    order = np.argsort(first)
    return first[order], last[order]


def count_crossings(label: str, paths: Paths, near: np.ndarray, opened: np.ndarray,
                    grain: np.ndarray | None = None) -> Crossings:
    """The crossings of `paths`: changes of nearest-grain id, plus runs through open boundary.

    A run of open boundary counts once when grain pixels (`grain`, default: all) lie on both sides
    of it: not one that touches an end of its line (the line starts or stops inside the band), nor
    the wall of a speck (debris walled in beside a boundary is no boundary crossed).
    """
    near, opened = near.ravel(), opened.ravel()
    if paths.closed:
        paths = _rotate_closed(paths, opened[paths.flat])
    ids = near[paths.flat]
    starts, stops = paths.first[:-1], paths.first[1:] - 1  # first and last sample of each path
    differs = ids[1:] != ids[:-1]
    differs[starts[1:] - 1] = False  # no change between one path's last sample and the next one's first
    change = np.flatnonzero(differs) + 1  # sample after the change
    if paths.wobbles:
        change = _drop_wobbles(change, ids)
    marks = opened[paths.flat]
    if marks.any():
        zero = np.zeros(1, np.int8)  # a plain 0 makes the padded copy and the differences int64: 64 MB at 2048 px
        edge = np.diff(marks.view(np.int8), prepend=zero, append=zero)  # +1: a run begins; -1: one ended before
        run_first, run_last = np.flatnonzero(edge[:-1] == 1), np.flatnonzero(edge[1:] == -1)
        # runs across two paths are cut where one path ends, runs touching an end are no crossing
        run_first, run_last = _split_at_paths(run_first, run_last, starts, stops)
        whole = ~np.isin(run_first, starts) & ~np.isin(run_last, stops)
        run_first, run_last = run_first[whole], run_last[whole]
    else:
        run_first = run_last = np.zeros(0, np.int64)
    if grain is not None:
        grain = grain.ravel()
        flanked = grain[paths.flat[run_first - 1]] & grain[paths.flat[run_last + 1]]
        run_first, run_last = run_first[flanked], run_last[flanked]
    path = np.searchsorted(paths.first, np.concatenate([change, run_first]), side="right") - 1
    j = np.concatenate([change - 0.5, (run_first + run_last) / 2]) - paths.first[path]
    position = paths.offset(path, j)
    order = np.lexsort((position, path))
    bonus = 0.0
    if paths.corner_steps is not None:
        bonus = _corner_grains(paths, near, ids, change)
    return Crossings(label, path[order], position[order], int(run_first.size), float(paths.length.sum()),
                     paths.length, paths.closed, bonus)


def _corner_grains(paths: Paths, near: np.ndarray, ids: np.ndarray, change: np.ndarray) -> float:
    """Crossings a diagonal misses by stepping through a pixel corner past the tip of a third grain.

    From sample A to the next sample C a diagonal passes exactly through the corner the two share
    with two other pixels. If both of those belong to a third grain B, the line went A -> B -> C:
    one crossing more; if one of them does, it grazed B's tip: half a crossing (E112 counts a
    line through a triple point as 1.5).
    """
    before = paths.flat[change - 1]
    a, c = ids[change - 1], ids[change]
    foreign = np.zeros(change.size)
    for step in paths.corner_steps:
        b = near[before + step]
        foreign += (b != a) & (b != c)
    return float(np.count_nonzero(foreign == 2) + 0.5 * np.count_nonzero(foreign == 1))


def intercept_lengths(crossings: Crossings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(path index, length px, complete) of every intercept: the pieces of each path between crossings.

    Pieces cut by a line's ends are not complete (E112 counts them as half); on a circle the piece
    through the start point is one whole intercept, and a circle crossed once is one intercept.
    """
    paths, lengths, complete = [], [], []
    starts = np.searchsorted(crossings.path, np.arange(crossings.path_lengths.size + 1))
    for k, total in enumerate(crossings.path_lengths.tolist()):
        at = crossings.position[starts[k]:starts[k + 1]]
        if crossings.closed:
            if at.size == 0:
                continue
            pieces = np.append(np.diff(at), total - at[-1] + at[0])
            whole = np.ones(pieces.size, bool)
        else:
            pieces = np.diff(np.concatenate([[0.0], at, [total]]))
            whole = np.ones(pieces.size, bool)
            whole[0] = whole[-1] = False
        paths.append(np.full(pieces.size, k))
        lengths.append(pieces)
        complete.append(whole)
    if not paths:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
    return np.concatenate(paths), np.concatenate(lengths), np.concatenate(complete)


def pattern_paths(shape: tuple[int, int], pattern: str, angles: tuple[float, ...]) -> Iterator[tuple[str, Paths]]:
    """The test paths of a pattern: ("lines", angles) gives one family per angle, ("circles", _) the three
    circles. Made one family at a time (at 2048 px a family's samples take 32 MB)."""
    if pattern == "circles":
        yield "circles", circle_paths(shape)
        return
    for a in angles:
        yield f"{a:g}", line_paths(shape, a)
