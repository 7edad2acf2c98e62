"""Boundary masks in the store's convention (0 boundary, 255 background): from probabilities, and without specks."""

from __future__ import annotations

import cv2
import numpy as np

# P(background) at or above this is background: the threshold of Keras' MeanIoU on rounded outputs.
THRESHOLD = 0.5


def to_mask(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Background probabilities -> uint8 image in the store's convention (0 boundary, 255 background)."""
    return np.where(probability >= threshold, 255, 0).astype(np.uint8)


def remove_specks(mask: np.ndarray, min_speck: int) -> np.ndarray:
    """`mask` (0 boundary, 255 background) without boundary components of fewer than `min_speck` px.

    Components are 8-connected, so a speck is a patch of boundary that touches no other boundary.
    """
    if min_speck <= 1:
        return mask
    min_speck = min(min_speck, mask.size + 1)  # no fewer specks, and no integer past int64 for NumPy to compare
    boundary = (mask == 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(boundary, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_speck)
    small = small[small != 0]  # label 0 is the background
    if not len(small):
        return mask
    out = mask.copy()
    out[np.isin(labels, small)] = 255
    return out
