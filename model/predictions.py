"""A trained model's predictions over one split of a library, streamed batch by batch."""

from __future__ import annotations

from typing import Iterator

import keras
import numpy as np

from .data import LibraryReader

# P(background) at or above this is background: the threshold of Keras' MeanIoU on rounded outputs.
THRESHOLD = 0.5


def to_mask(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Background probabilities -> uint8 image in the store's convention (0 boundary, 255 background)."""
    return np.where(probability >= threshold, 255, 0).astype(np.uint8)


def predict_split(model: keras.Model, reader: LibraryReader, split: str, batch: int,
                  indices: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(sample index, predicted mask) for the done samples of `split` (or the given `indices`), in order.

    Only one batch of images is in memory at a time.
    """
    plan = reader.epoch_plan(split, epoch=0, seed=0, shuffle=False, augment=False)
    order = plan.indices if indices is None else np.asarray(indices, np.int64)
    dataset = reader.batches(order, batch)
    position = 0
    for inputs, _ in dataset:
        probabilities = np.asarray(model.predict_on_batch(inputs))[..., 0]
        for probability in probabilities:
            yield int(order[position]), to_mask(probability)
            position += 1
