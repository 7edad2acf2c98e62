"""From a model's background probability to a boundary image: threshold, link, speck filter, TTA.

Pure numpy/OpenCV, shared by `predict` and `evaluate`, so both turn probabilities into masks
the same way. The mask helpers (`to_mask`, `remove_specks`) and the bridge live in model/methods.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from model.data import TRANSFORMS, dihedral
from model.methods import remove_specks, thin, to_mask

__all__ = ["batch_probabilities", "dihedral_mean", "link_line", "linked_mask", "probability_to_mask", "remove_specks",
           "undo_dihedral"]


def link_line(probability: np.ndarray, link_threshold: float) -> np.ndarray:
    """The one-pixel centre line (8-connected skeleton) of the pixels with P(background) below
    `link_threshold` (boolean).

    A network is least sure inside gaps: there P(background) sits between the values of clear
    boundary and clear background. A high threshold keeps those pixels, and so closes gaps, but
    thickens every line; the centre line of that wide reading closes the same gaps one pixel wide.
    """
    return thin(probability < link_threshold)


def linked_mask(probability: np.ndarray, threshold: float, line: np.ndarray | None = None) -> np.ndarray:
    """Threshold P(background) (>= threshold is background); the pieces of `line` (a `link_line`),
    if given, that touch that boundary join it.

    A piece of the line touching no boundary closes no gap: it is the centre line of a faint,
    isolated patch of doubt, e.g. in the middle of a large grain, and as a skeleton of a textured
    patch it can be a mesh of tiny loops, each counted as a grain. Such pieces are left out.
    """
    mask = to_mask(probability, threshold)
    if line is None or not line.any():
        return mask
    count, pieces = cv2.connectedComponents(line.view(np.uint8), connectivity=8)
    near = cv2.dilate((mask == 0).view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    touching = np.zeros(count, bool)
    touching[pieces[near & line]] = True
    touching[0] = False  # label 0: not on the line
    mask[touching[pieces]] = 0
    return mask


def probability_to_mask(probability: np.ndarray, threshold: float, min_speck: int = 0,
                        link_threshold: float | None = None) -> np.ndarray:
    """Threshold P(background) (>= threshold is background); with `link_threshold` above
    `threshold`, add the centre line of the wider reading at `link_threshold` (`link_line`);
    then drop specks below `min_speck` px."""
    linked = link_threshold is not None and link_threshold > threshold
    line = link_line(probability, link_threshold) if linked else None
    return remove_specks(linked_mask(probability, threshold, line), min_speck)


def undo_dihedral(image: np.ndarray, transform: int) -> np.ndarray:
    """The inverse of `model.data.dihedral(image, transform)`."""
    if transform >= 4:
        image = image[:, ::-1]
    return np.rot90(image, k=-(int(transform) % 4))


def dihedral_mean(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of `predict` over the 8 dihedral transforms of a batch.

    `batch` is (B, H, W, C); `predict` maps such a batch to (B, H, W, 1), and must take (B, W, H, C)
    too when H != W (the quarter turns). Each transformed
    prediction is transformed back before averaging, so a model that commutes with the
    transforms gives exactly its plain prediction.
    """
    total = np.zeros(batch.shape[:3] + (1,), np.float64)
    for transform in range(TRANSFORMS):
        moved = np.ascontiguousarray(np.stack([dihedral(image, transform) for image in batch]))
        answer = np.asarray(predict(moved), np.float64)
        total += np.stack([undo_dihedral(image, transform) for image in answer])
    return (total / TRANSFORMS).astype(np.float32)


def batch_probabilities(model: Any, batch: np.ndarray, tta: bool = False) -> np.ndarray:
    """A Keras model's P(background) for a (B, S, S, 1) float32 batch as float32, with or without
    test-time augmentation."""
    answer = dihedral_mean(model.predict_on_batch, batch) if tta else model.predict_on_batch(batch)
    return np.asarray(answer, np.float32)
