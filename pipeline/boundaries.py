"""True boundary images drawn from a grain-id map (boundary = 0, background = 255, uint8)."""

from __future__ import annotations

import cv2
import numpy as np

from .sample import BACKGROUND, BOUNDARY


def boundaries(grains: np.ndarray) -> np.ndarray:
    """The study's boundary image of a grain-id map: 0 where the 4-neighbour Laplacian is non-zero, else 255.

    Edge pixels see themselves beyond the border (scipy's 'reflect'), so the border itself
    is no boundary.
    """
    laplacian = cv2.Laplacian(grains, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    return cv2.compare(laplacian, 0.0, cv2.CMP_EQ)


def thicken(image: np.ndarray, side: int) -> np.ndarray:
    """Dilate the boundary (dark) pixels with a side x side square; side 1 leaves it as is."""
    if side == 1:
        return image
    return cv2.erode(image, np.ones((side, side), np.uint8), borderType=cv2.BORDER_REPLICATE)


def line_of(grains: np.ndarray) -> np.ndarray:
    """One-pixel boundary (boolean): pixels whose right or lower neighbour is another grain."""
    line = np.zeros(grains.shape, bool)
    line[:, :-1] |= grains[:, :-1] != grains[:, 1:]
    line[:-1] |= grains[:-1] != grains[1:]
    return line


def triple_junctions(grains: np.ndarray) -> np.ndarray:
    """(y, x) of the 2x2 windows that hold three or more grain ids."""
    a, b, c, d = grains[:-1, :-1], grains[:-1, 1:], grains[1:, :-1], grains[1:, 1:]
    distinct = 1 + (b != a) + ((c != a) & (c != b)) + ((d != a) & (d != b) & (d != c))
    return np.argwhere(distinct >= 3)


def draw_label(grains: np.ndarray, width: int, pockets: int, radius: tuple[int, int],
               rng: np.random.Generator) -> np.ndarray:
    """True boundaries: the one-pixel line dilated to `width` px, with filled pockets at triple junctions."""
    label = np.where(line_of(grains), BOUNDARY, BACKGROUND).astype(np.uint8)
    if width > 1:
        label = cv2.erode(label, np.ones((width, width), np.uint8), borderType=cv2.BORDER_REPLICATE)
    junctions = triple_junctions(grains)
    for _ in range(pockets if len(junctions) else 0):
        y, x = junctions[int(rng.integers(len(junctions)))]
        pocket = int(rng.integers(*radius, endpoint=True)) + width // 2
        cv2.circle(label, (int(x), int(y)), pocket, BOUNDARY, -1, cv2.LINE_8)
    return label
