"""Gap styles (the study's blurred squares, hard cuts, faded and thinned stretches) and binarisation noise.

Each function draws only from the generator it is given, so a caller that passes a per-image
generator keeps its images pure functions of (seed, index). Used by the presets
(pipeline/presets/) and by the generalisation benchmark (benchmarks/generalisation.py),
whose sets `sharp-cuts`, `faded` and `noisy` are these functions on the test split.
Images: boundary = 0, background = 255, uint8.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .sample import BACKGROUND, BOUNDARY

if TYPE_CHECKING:
    from .config import GenerationConfig

# Gaussian kernels reach 4 sigma each side, as scipy.ndimage.gaussian_filter does.
BLUR_TRUNCATE = 4.0
# The order of this tuple is part of the format: a sample of the general family draws an index into it.
GAP_STYLES = ("blur", "cuts", "faded", "thinned")
# Constants of the gap styles other than the study's blurred squares (as the generalisation benchmark).
CUT_COUNT, CUT_LENGTH = (20, 50), (3, 48)
FADE_DIPS, FADE_SIGMA, FADE_NOISE = (20, 50), (6.0, 20.0), (10.0, 30.0)
THIN_COUNT, THIN_RADIUS, THIN_DROPOUT = (10, 40), (5, 25), (0.2, 0.7)
NOISE_PEPPER, NOISE_POROSITY, NOISE_BLOBS = (0.0005, 0.004), (0.0, 0.06), (5, 60)


def fragment_in_style(label: np.ndarray, line: np.ndarray, style: str, config: GenerationConfig, width: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The fragmented input of one of GAP_STYLES, and the number of gaps (patches, cuts, dips or stretches) drawn."""
    if style == "blur":
        return blurred_fragments(label, rng, config)
    if style == "cuts":
        count = int(rng.integers(*CUT_COUNT, endpoint=True))
        return sharp_cuts(label, rng, (count, count), CUT_LENGTH, width + 6, config.patch_side_range), count
    if style == "faded":
        count = int(rng.integers(*FADE_DIPS, endpoint=True))
        return faded(label, rng, (count, count), FADE_SIGMA, FADE_NOISE), count
    count = int(rng.integers(*THIN_COUNT, endpoint=True))
    return thinned(label, line, rng, (count, count), THIN_RADIUS, THIN_DROPOUT), count


def blurred_fragments(label: np.ndarray, rng: np.random.Generator, config: GenerationConfig) -> tuple[np.ndarray, int]:
    """The study's fragmented input of `label`: blurred square patches (`fragment`), then Otsu's
    threshold; and the number of patches."""
    micro = label.copy()
    count = fragment(micro, rng, config.patch_count_range, config.patch_side_range, config.blur_sigma)
    cv2.threshold(micro, 0, BACKGROUND, cv2.THRESH_BINARY | cv2.THRESH_OTSU, dst=micro)
    return micro, count


def fragment(
    image: np.ndarray,
    rng: np.random.Generator,
    count_range: tuple[int, int],
    side_range: tuple[int, int],
    sigma: float,
) -> int:
    """Blur random square patches of `image` in place, one after another; returns the count."""
    size = image.shape[0]
    count = int(rng.integers(count_range[0], count_range[1], endpoint=True))
    for _ in range(count):
        side = int(rng.integers(side_range[0], side_range[1], endpoint=True))
        top = int(rng.integers(0, size - side, endpoint=True))
        left = int(rng.integers(0, size - side, endpoint=True))
        patch = image[top : top + side, left : left + side]
        weights = blur_matrix(side, sigma)
        # Rows of `weights` are non-negative and sum to 1: the result stays within [0, 255].
        patch[...] = np.rint(weights @ patch.astype(np.float64) @ weights.T)
    return count


@lru_cache(maxsize=None)
def blur_matrix(side: int, sigma: float) -> np.ndarray:
    """Matrix B with B @ x == 1-D Gaussian blur of a length-`side` signal, edge mode 'nearest'.

    Taps falling outside the signal are folded onto its first or last sample, so
    B @ P @ B.T is the 2-D blur of a square patch P with replicated edges.
    """
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    matrix = np.zeros((side, side))
    rows = np.arange(side)[:, None]
    columns = np.clip(rows + offsets[None, :], 0, side - 1)
    np.add.at(matrix, (np.broadcast_to(rows, columns.shape), columns), np.broadcast_to(kernel, columns.shape))
    matrix.flags.writeable = False
    return matrix


def boundary_direction(boundary: np.ndarray, y: int, x: int, radius: int = 7) -> float:
    """Angle (radians, image x to the right, y down) of the boundary through (y, x): principal axis nearby."""
    window = boundary[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
    ys, xs = np.nonzero(window)
    if len(ys) < 3:
        return 0.0
    ys, xs = ys - ys.mean(), xs - xs.mean()
    return 0.5 * math.atan2(2 * float((xs * ys).sum()), float((xs * xs).sum() - (ys * ys).sum()))


def fill_rectangle(image: np.ndarray, centre: tuple[float, float], length: float, width: float, angle: float,
                   value: int) -> None:
    """Fill a hard-edged rectangle (length along `angle`, width across), no anti-aliasing."""
    corners = cv2.boxPoints(((centre[1], centre[0]), (length, width), math.degrees(angle)))
    cv2.fillPoly(image, [np.rint(corners).astype(np.int32)], value, lineType=cv2.LINE_8)


def sharp_cuts(label: np.ndarray, rng: np.random.Generator, count: tuple[int, int], length: tuple[int, int],
               cut_width: float, patch_side: tuple[int, int]) -> np.ndarray:
    """`label` with hard-edged gaps: half of them cuts along the local boundary direction (`length`
    long, `cut_width` across), half rotated rectangles of sides in `patch_side` centred on the boundary."""
    micro = label.copy()
    boundary = label == BOUNDARY
    ys, xs = np.nonzero(boundary)
    for _ in range(int(rng.integers(*count, endpoint=True)) if len(ys) else 0):
        k = int(rng.integers(len(ys)))
        y, x = int(ys[k]), int(xs[k])
        if rng.random() < 0.5:
            cut = float(rng.integers(*length, endpoint=True))
            fill_rectangle(micro, (y, x), cut, cut_width, boundary_direction(boundary, y, x), BACKGROUND)
        else:
            sides = rng.integers(patch_side[0], patch_side[1], size=2, endpoint=True)
            fill_rectangle(micro, (y, x), float(sides[0]), float(sides[1]), float(rng.uniform(0, math.pi)),
                           BACKGROUND)
    return micro


def faded(label: np.ndarray, rng: np.random.Generator, dips: tuple[int, int], sigma: tuple[float, float],
          noise: tuple[float, float]) -> np.ndarray:
    """Boundaries of `label` whose contrast fades (a linear ramp across the image and smooth Gaussian
    dips centred on the boundary) under Gaussian noise, Otsu-binarised."""
    size = label.shape[0]
    yy, xx = np.mgrid[0:label.shape[0], 0:label.shape[1]].astype(np.float32) / size
    angle = rng.uniform(0, 2 * math.pi)
    along = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * math.sqrt(2) + 0.5  # 0..1 roughly
    contrast = 1 - (1 - rng.uniform(0.6, 1.0)) * np.clip(along, 0, 1)
    ys, xs = np.nonzero(label == BOUNDARY)
    height, width = label.shape
    for _ in range(int(rng.integers(*dips, endpoint=True)) if len(ys) else 0):
        k = int(rng.integers(len(ys)))
        s, depth = rng.uniform(*sigma), rng.uniform(0.7, 1.0)
        r = int(3 * s)
        y0, y1, x0, x1 = max(0, ys[k] - r), min(height, ys[k] + r + 1), max(0, xs[k] - r), min(width, xs[k] + r + 1)
        dy, dx = np.arange(y0, y1)[:, None] - ys[k], np.arange(x0, x1)[None, :] - xs[k]
        contrast[y0:y1, x0:x1] *= 1 - depth * np.exp(-(dy * dy + dx * dx) / (2 * s * s))
    darkness = (BACKGROUND - label.astype(np.float32)) * contrast
    image = BACKGROUND - darkness + rng.normal(0, rng.uniform(*noise), label.shape)
    micro = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    cv2.threshold(micro, 0, BACKGROUND, cv2.THRESH_BINARY | cv2.THRESH_OTSU, dst=micro)
    return micro


def thinned(micro: np.ndarray, line: np.ndarray, rng: np.random.Generator, count: tuple[int, int],
            radius: tuple[int, int], dropout: tuple[float, float]) -> np.ndarray:
    """`micro` with thinned stretches: inside discs centred on the boundary, the boundary is replaced
    by the one-pixel line `line` (boolean) with a share of its pixels dropped (dotted, faint lines)."""
    out = micro.copy()
    ys, xs = np.nonzero(line)
    disc = np.zeros(micro.shape, np.uint8)
    for _ in range(int(rng.integers(*count, endpoint=True)) if len(ys) else 0):
        k = int(rng.integers(len(ys)))
        cv2.circle(disc, (int(xs[k]), int(ys[k])), int(rng.integers(*radius, endpoint=True)), 1, -1, cv2.LINE_8)
    inside = disc.view(bool)
    kept = line & (rng.random(micro.shape) >= rng.uniform(*dropout))
    out[inside] = BACKGROUND
    out[inside & kept] = BOUNDARY
    return out


def speckle(micro: np.ndarray, rng: np.random.Generator, pepper: tuple[float, float],
            porosity: tuple[float, float], blobs: tuple[int, int]) -> np.ndarray:
    """`micro` with binarisation noise: dark salt-and-pepper pixels and round blobs (etch pits) on the
    background, porous boundaries (single white pixels) and small round holes in the boundary."""
    micro = micro.copy()
    background, boundary = micro == BACKGROUND, micro == BOUNDARY
    micro[background & (rng.random(micro.shape) < rng.uniform(*pepper))] = BOUNDARY
    micro[boundary & (rng.random(micro.shape) < rng.uniform(*porosity))] = BACKGROUND
    height, width = micro.shape
    ys, xs = np.nonzero(boundary)
    for _ in range(int(rng.integers(*blobs, endpoint=True))):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.circle(micro, centre, int(rng.integers(1, 3, endpoint=True)), BOUNDARY, -1, cv2.LINE_8)
    for _ in range(int(rng.integers(*blobs, endpoint=True)) // 2 if len(ys) else 0):
        k = int(rng.integers(len(ys)))
        cv2.circle(micro, (int(xs[k]), int(ys[k])), int(rng.integers(1, 3, endpoint=True)), BACKGROUND, -1,
                   cv2.LINE_8)
    return micro
