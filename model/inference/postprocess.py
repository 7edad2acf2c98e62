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

__all__ = ["ModelOutputError", "batch_probabilities", "check_finite", "dihedral_mean", "link_line", "linked_mask",
           "probability_to_mask", "remove_specks", "undo_dihedral"]


class ModelOutputError(ValueError):
    """A model answered NaN or infinite probabilities: every mask and score made of them would be
    silently wrong (all boundary, ARI nan). One line."""


def check_finite(probabilities: np.ndarray) -> np.ndarray:
    """`probabilities` as they are, or ModelOutputError if any is NaN or infinite."""
    finite = np.isfinite(probabilities)
    if not finite.all():
        raise ModelOutputError(f"the model answered NaN or infinite probabilities ({finite.size - int(finite.sum()):,} "
                               f"of {finite.size:,} pixels): its weights or its arithmetic overflow; it cannot be used")
    return probabilities


def link_line(probability: np.ndarray, link_threshold: float) -> np.ndarray:
    """The one-pixel centre line (8-connected skeleton) of the pixels with P(background) below
    `link_threshold` (boolean).

    A network is least sure inside gaps: there P(background) sits between the values of clear
    boundary and clear background. A high threshold keeps those pixels, and so closes gaps, but
    thickens every line; the centre line of that wide reading closes the same gaps one pixel wide.
    """
    return thin(probability < link_threshold)


def linked_mask(probability: np.ndarray, threshold: float, line: np.ndarray | None = None) -> np.ndarray:
    """Threshold P(background) (>= threshold is background); then add the parts of `line` (a
    `link_line`) that close a gap between boundary pieces, and nothing else.

    A part of the line off the thresholded boundary (a segment) is a bridge only when it meets
    the boundary at two or more separate places and encloses nothing itself: a segment meeting
    it once is a dead end, one meeting it nowhere the centre line of an isolated patch of doubt,
    and a segment with a hole of its own (the skeleton of a textured patch is a mesh of tiny
    loops) would draw new grains inside a grain. The kept segments lose their dead-end branches
    (`prune_spurs`), so no line ends inside a grain.
    """
    mask = to_mask(probability, threshold)
    if line is None or not line.any():
        return mask
    boundary = mask == 0
    near = cv2.dilate(boundary.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    added = line & ~boundary
    count, segments = cv2.connectedComponents(added.view(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    # Separate places where each segment meets the boundary: 8-connected clusters of its contact pixels.
    _, clusters = cv2.connectedComponents((added & near).view(np.uint8), connectivity=8)
    pairs = np.unique(np.stack([segments[clusters > 0], clusters[clusters > 0]]), axis=1)
    meetings = np.bincount(pairs[0], minlength=count)
    keep = meetings >= 2
    keep[holed_segments(added, segments)] = False
    keep[0] = False
    mask[prune_spurs(keep[segments], boundary)] = 0
    return mask


def holed_segments(added: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Labels (in `segments`) of the pieces of `added` that enclose a hole of their own."""
    contours, hierarchy = cv2.findContours(added.view(np.uint8).copy(), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return np.zeros(0, np.int64)
    holes = [c for c, h in zip(contours, hierarchy[0]) if h[3] != -1]
    return np.unique([segments[c[0, 0, 1], c[0, 0, 0]] for c in holes]).astype(np.int64)


def prune_spurs(added: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """`added` (boolean line pixels off `boundary`) without its dead ends: pixels with at most one
    neighbour on the line or the boundary are removed, repeatedly, until none is left."""
    kernel = np.ones((3, 3), np.float32)
    kernel[1, 1] = 0
    added = added.copy()
    while True:
        neighbours = cv2.filter2D((added | boundary).view(np.uint8), cv2.CV_8U, kernel,
                                  borderType=cv2.BORDER_CONSTANT)
        ends = added & (neighbours <= 1)
        if not ends.any():
            return added
        added &= ~ends


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
    test-time augmentation; ModelOutputError if any is NaN or infinite."""
    answer = dihedral_mean(model.predict_on_batch, batch) if tta else model.predict_on_batch(batch)
    return check_finite(np.asarray(answer, np.float32))
