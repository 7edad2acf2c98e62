"""Hand-worked boundary images and file helpers shared by the tests of `measure` (tests/test_measure*.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np


def grid() -> np.ndarray:
    """100 x 100, 2-px boundary lines at rows/columns 24-25, 49-50, 74-75: 4 x 4 grains.

    Grain sides along each axis: 24 (0-23), 23 (26-48), 23 (51-73), 24 (76-99). Corner grains
    24 x 24 = 576 px, edge grains 24 x 23 = 552 px (8), inner grains 23 x 23 = 529 px (4).
    """
    image = np.full((100, 100), 255, np.uint8)
    for v in (24, 49, 74):
        image[v:v + 2, :] = 0
        image[:, v:v + 2] = 0
    return image


def gray_fragmented_grid(seed: int = 0) -> np.ndarray:
    """The grid as a noisy gray micrograph (grains ~180, boundaries ~60) with 6 px gaps cut in 3 lines."""
    boundary = grid()
    boundary[60:66, 24:26] = 255
    boundary[49:51, 10:16] = 255
    boundary[85:91, 74:76] = 255
    rng = np.random.default_rng(seed)
    gray = np.where(boundary > 0, 180.0, 60.0) + rng.normal(0, 12, boundary.shape)
    return np.clip(gray, 0, 255).astype(np.uint8)


def write(path: Path, image: np.ndarray) -> Path:
    """Write an 8-bit image (parent folders made); the path back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
