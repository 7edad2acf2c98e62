"""Classical restoration methods: the input itself (identity), and a direction-guided gap closer (bridge).

Both take the fragmented input `micro` (uint8, boundary 0, background 255) and return a uint8
image in the same convention. numpy and OpenCV only (cv2.ximgproc is not in the headless wheel,
so the thinning is written here). Algorithm and parameter choice: docs/metrics.md.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable

import cv2
import numpy as np

from .masks import remove_specks

THRESHOLD = 128  # pixels below are boundary, as in model.scoring.metrics
BOUNDARY, BACKGROUND = 0, 255
# Longest link drawn, as a fraction of the image side: 72 px at 512 px. Erased patches are
# 2-8 % of the side, but overlapping ones erase longer stretches (measured: docs/metrics.md).
MAX_GAP_FRACTION = 0.14
# Skeleton pixels behind an end point used to estimate its direction.
WINDOW = 8
# End points whose branch reaches a junction within this many pixels are thinning spurs.
MIN_BRANCH = 2
# Half-angle (degrees) of the fan of rays cast from an end point, and the angle between rays.
CONE_DEG = 20.0
RAY_STEP_DEG = 4.0
# Boundary pixels connected to an end point within this square half-side are its own branch.
OWN_RADIUS = 10
# A link closes the other end points within CLOSE_RADIUS boundary widths (+1 px) of its target
# that face back along it within CLOSE_DEG: their gap is the one just bridged. An end hit from
# the side keeps its own ray (its line went on past an erased junction).
CLOSE_RADIUS = 2.0
CLOSE_DEG = 55.0
# Extra cost per degree off the estimated direction when choosing among the rays' hits.
ANGLE_PENALTY = 0.01

# Neighbour bits of the 8-neighbourhood code: P2 (north) = bit 0, then clockwise to P9 (north-west).
_CODE_KERNEL = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], dtype=np.float32)
_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def identity(micro: np.ndarray) -> np.ndarray:
    """The fragmented input itself (the do-nothing baseline)."""
    return np.asarray(micro)


def _bits(code: int) -> list[int]:
    return [(code >> k) & 1 for k in range(8)]


def _transitions(p: list[int]) -> int:
    """Number of 0 -> 1 steps around the 8-neighbourhood (P2, P3, ..., P9, P2)."""
    return sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))


def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two Zhang-Suen sub-iterations, indexed by the neighbour code."""
    first, second = np.zeros(256, np.uint8), np.zeros(256, np.uint8)
    for code in range(256):
        p = _bits(code)  # p[0] = P2 (N), p[2] = P4 (E), p[4] = P6 (S), p[6] = P8 (W)
        if not (2 <= sum(p) <= 6 and _transitions(p) == 1):
            continue
        first[code] = p[0] * p[2] * p[4] == 0 and p[2] * p[4] * p[6] == 0
        second[code] = p[0] * p[2] * p[6] == 0 and p[0] * p[4] * p[6] == 0
    return first, second


def _end_table() -> np.ndarray:
    """1 where a skeleton pixel with this neighbour code ends a line: one neighbour, or two adjacent ones."""
    table = np.zeros(256, np.uint8)
    for code in range(256):
        p = _bits(code)
        table[code] = sum(p) == 1 or (sum(p) == 2 and _transitions(p) == 1)
    return table


_DELETE_FIRST, _DELETE_SECOND = _zhang_suen_tables()
_END = _end_table()


def _neighbour_code(mask: np.ndarray) -> np.ndarray:
    """8-neighbour code of every pixel of a 0/1 uint8 mask (outside the image counts as 0)."""
    # The weights sum to 255, so the uint8 result is exact.
    return cv2.filter2D(mask, -1, _CODE_KERNEL, borderType=cv2.BORDER_CONSTANT)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean mask to a one-pixel-wide 8-connected skeleton (boolean)."""
    skeleton = np.ascontiguousarray(mask, dtype=bool).view(np.uint8).copy()
    while True:
        removed = 0
        for table in (_DELETE_FIRST, _DELETE_SECOND):
            delete = cv2.LUT(_neighbour_code(skeleton), table) & skeleton
            count = cv2.countNonZero(delete)
            if count:
                skeleton -= delete
                removed += count
        if not removed:
            return skeleton.view(bool)


def end_points(skeleton: np.ndarray) -> np.ndarray:
    """(row, col) of every end point of a skeleton, shape (n, 2), in raster order."""
    skeleton = np.ascontiguousarray(skeleton, dtype=bool).view(np.uint8)
    ends = cv2.LUT(_neighbour_code(skeleton), _END) & skeleton
    return np.argwhere(ends)


def _trace(skeleton: np.ndarray, start: tuple[int, int], length: int) -> tuple[list[tuple[int, int]], bool]:
    """Walk the skeleton from an end point for up to `length` pixels.

    Returns the pixels visited (start first) and whether the walk stopped at a junction.
    `skeleton` is padded by one pixel, so neighbours never leave the array.
    """
    path = [start]
    seen = {start}
    y, x = start
    for _ in range(length):
        ahead = [(y + dy, x + dx) for dy, dx in _OFFSETS
                 if skeleton[y + dy, x + dx] and (y + dy, x + dx) not in seen]
        if not ahead:
            return path, False
        # Mutually adjacent candidates are one line making a stair step; others are a junction.
        if any(abs(a[0] - b[0]) > 1 or abs(a[1] - b[1]) > 1 for a in ahead for b in ahead):
            return path, True
        seen.update(ahead)
        y, x = min(ahead, key=lambda p: abs(p[0] - y) + abs(p[1] - x))  # prefer the 4-neighbour
        path.append((y, x))
    return path, False


def _own_branch(boundary: np.ndarray, start: tuple[int, int], radius: int) -> tuple[np.ndarray, int, int]:
    """The boundary pixels 8-connected to `start` inside the square of half-side `radius` around it.

    Returns the mask of that square and its top-left corner (row, col).
    """
    row, col = start
    top, left = max(0, row - radius), max(0, col - radius)
    crop = boundary[top : row + radius + 1, left : col + radius + 1].view(np.uint8)
    _, labels = cv2.connectedComponents(crop, connectivity=8)
    return labels == labels[row - top, col - left], top, left


def _cast(boundary: np.ndarray, start: np.ndarray, directions: np.ndarray, reach: int,
          to_border: bool, own: tuple[np.ndarray, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """March rays from `start` (row, col) along unit `directions` (k, 2) in half-pixel steps.

    A ray stops at the first boundary pixel that is not on the end point's own branch `own`
    (see `_own_branch`), or, with `to_border`, at the last pixel inside the image once it has
    crossed background (unless the own branch touches the image edge already). Returns the hit distance per ray (inf: no hit within `reach`) and the
    hit pixel (k, 2).
    """
    height, width = boundary.shape
    steps = np.arange(1, 2 * reach + 1) / 2.0
    points = np.rint(start + directions[:, None, :] * steps[None, :, None]).astype(np.int64)  # (k, n, 2)
    rows, cols = points[..., 0], points[..., 1]
    # Beyond the image edge nothing counts.
    inside = np.cumprod((rows >= 0) & (rows < height) & (cols >= 0) & (cols < width), axis=1).astype(bool)
    rows, cols = np.where(inside, rows, 0), np.where(inside, cols, 0)
    mask, top, left = own
    bottom, right = top + mask.shape[0], left + mask.shape[1]
    if to_border and ((top == 0 and mask[0].any()) or (left == 0 and mask[:, 0].any())
                      or (bottom == height and mask[-1].any()) or (right == width and mask[:, -1].any())):
        to_border = False  # this branch reaches the border already
    local_r, local_c = rows - top, cols - left
    in_crop = (local_r >= 0) & (local_r < mask.shape[0]) & (local_c >= 0) & (local_c < mask.shape[1])
    mine = in_crop & mask[np.where(in_crop, local_r, 0), np.where(in_crop, local_c, 0)]
    on_boundary = boundary[rows, cols] & inside
    hit = on_boundary & ~mine
    crossed = np.cumsum(~on_boundary & inside, axis=1) > 0
    first = np.where(hit.any(1), hit.argmax(1), -1)
    distance = np.full(len(directions), np.inf)
    target = np.zeros((len(directions), 2), dtype=np.int64)
    for k, index in enumerate(first):
        if index >= 0:
            distance[k], target[k] = steps[index], points[k, index]
        elif to_border and not inside[k, -1]:
            last = int(np.argmin(inside[k])) - 1  # last step inside the image
            if last >= 0 and crossed[k, last]:
                distance[k], target[k] = steps[last], points[k, last]
    return distance, target


def _directed_ends(skeleton: np.ndarray, window: int, min_branch: int) -> tuple[np.ndarray, np.ndarray]:
    """End points (n, 2) of a skeleton that have a direction, and their unit directions (n, 2).

    The direction points from the `window`-th skeleton pixel behind an end point to the end
    point. Spurs (a junction within `min_branch` pixels) and specks (< 3 pixels) are dropped.
    """
    padded = np.pad(skeleton, 1)
    starts, directions = [], []
    for row, col in end_points(skeleton):
        path, junction = _trace(padded, (int(row) + 1, int(col) + 1), window)
        if len(path) <= min_branch and junction or len(path) < 3:
            continue
        axis = np.subtract(path[0], path[-1], dtype=np.float64)
        starts.append((row, col))
        directions.append(axis / np.hypot(*axis))
    return np.array(starts, dtype=np.float64).reshape(-1, 2), np.array(directions).reshape(-1, 2)


def _line_width(boundary: np.ndarray, skeleton: np.ndarray) -> int:
    """Typical boundary thickness in pixels.

    A w-pixel line has its skeleton at chessboard distance m = ceil(w / 2) from the background,
    so w is 2m - 1 or 2m: the one nearer to boundary pixels per skeleton pixel (which diagonals
    and shortened line ends push up) is taken.
    """
    distance = cv2.distanceTransform(boundary.view(np.uint8), cv2.DIST_C, 3)
    m = int(np.median(distance[skeleton]))
    per_pixel = np.count_nonzero(boundary) / np.count_nonzero(skeleton)
    return max(1, min((2 * m - 1, 2 * m), key=lambda w: abs(w - per_pixel)))


def bridge(
    micro: np.ndarray,
    max_gap: float | None = None,
    window: int = WINDOW,
    min_branch: int = MIN_BRANCH,
    cone_deg: float = CONE_DEG,
    to_border: bool = True,
) -> np.ndarray:
    """Close gaps of a fragmented boundary image by extending skeleton end points along their direction.

    The boundary (< 128) is thinned; every end point whose branch is at least `min_branch`
    pixels long gets a direction from the last `window` skeleton pixels behind it. From each
    such end, a fan of rays within +-`cone_deg` of its direction looks for the nearest boundary
    pixel that is not on the end's own branch (or the image border, with `to_border`) within
    `max_gap` pixels (default 14 % of the image side); a small penalty per degree off-axis
    breaks near-ties in favour of the straight continuation. Links are drawn shortest first,
    each into the image the next rays see (a ray whose target moved is put back in line). An
    end that a link reaches head-on (see CLOSE_DEG) counts as closed and casts no ray. Links
    are as thick as the boundary (boundary pixels per skeleton pixel, rounded).
    """
    micro = np.asarray(micro)
    boundary = micro < THRESHOLD
    if max_gap is None:
        max_gap = MAX_GAP_FRACTION * max(boundary.shape)
    reach = int(math.ceil(max_gap))
    out = np.where(boundary, BOUNDARY, BACKGROUND).astype(np.uint8)
    skeleton = thin(boundary)
    starts, directions = _directed_ends(skeleton, window, min_branch)
    if len(starts) == 0 or reach < 1:
        return out
    width = _line_width(boundary, skeleton)
    fan = np.deg2rad(np.arange(-cone_deg, cone_deg + 1e-9, RAY_STEP_DEG))
    penalty = 1 + ANGLE_PENALTY * np.rad2deg(np.abs(fan))
    cos_close = math.cos(math.radians(CLOSE_DEG))

    working = boundary.view(np.uint8).copy()  # boundary plus the links drawn so far
    links = np.zeros_like(working)
    closed = np.zeros(len(starts), dtype=bool)

    def ray(k: int) -> tuple[float, np.ndarray | None]:
        """Cost and target of end k's best ray on the working image (inf, None: no hit)."""
        heading = math.atan2(directions[k, 0], directions[k, 1])
        rays = np.stack([np.sin(heading + fan), np.cos(heading + fan)], axis=1)
        own = _own_branch(working.view(bool), (int(starts[k, 0]), int(starts[k, 1])), OWN_RADIUS)
        distance, target = _cast(working.view(bool), starts[k], rays, reach, to_border, own)
        cost = distance * penalty
        best = int(np.argmin(cost))
        return (float(cost[best]), target[best]) if np.isfinite(cost[best]) else (math.inf, None)

    # Shortest first; ends with no hit yet go last, as links drawn meanwhile may give them one.
    queue = [(ray(k)[0], k) for k in range(len(starts))]
    heapq.heapify(queue)
    while queue:
        cost, k = heapq.heappop(queue)
        if closed[k]:
            continue
        fresh, target = ray(k)
        if target is None:
            continue
        if fresh > cost + 1e-9 and queue and fresh > queue[0][0]:
            heapq.heappush(queue, (fresh, k))  # an earlier link moved this end's target away
            continue
        start = (int(starts[k, 1]), int(starts[k, 0]))
        cv2.line(links, start, (int(target[1]), int(target[0])), 1, 1, cv2.LINE_8)
        cv2.line(working, start, (int(target[1]), int(target[0])), 1, 2, cv2.LINE_8)  # rays cannot slip through
        closed[k] = True
        # Ends near the target that face back along the link are closed by it.
        back = starts[k] - starts
        near = np.hypot(*(starts - target).T) <= CLOSE_RADIUS * width + 1
        closed |= near & ((directions * back).sum(1) >= cos_close * np.hypot(*back.T))
    if width > 1:
        links = cv2.dilate(links, np.ones((width, width), np.uint8))
    out[links.view(bool)] = BOUNDARY
    return out


def bridged(mask: np.ndarray, min_speck: int = 0) -> np.ndarray:
    """The bridge after the speck filter: boundary specks of fewer than `min_speck` px are removed
    first, since the bridge would link them into the network. It leaves no new specks (every link
    starts at an end point of existing boundary, so components only grow or merge), so no second
    filter is needed after it.

    `model+bridge` is `bridged(model's mask)`, the same recipe in `predict`, `measure --restore`,
    `evaluate`'s `model+bridge` row, `tune` and the benchmarks, so that the figures they report are
    those of the masks users get.
    """
    return bridge(remove_specks(mask, min_speck))


BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"identity": identity, "bridge": bridge}
