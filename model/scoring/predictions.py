"""A trained model's predictions over samples of a library, streamed batch by batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    import keras

    from model.data import LibraryReader

# P(background) at or above this is background: the threshold of Keras' MeanIoU on rounded outputs.
THRESHOLD = 0.5


def to_mask(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Background probabilities -> uint8 image in the store's convention (0 boundary, 255 background)."""
    return np.where(probability >= threshold, 255, 0).astype(np.uint8)


def predict_samples(model: keras.Model, reader: LibraryReader, indices: np.ndarray,
                    batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """(sample index, predicted mask) for the given samples, in order; one batch in memory at a time."""
    indices = np.asarray(indices, np.int64)
    position = 0
    for inputs, _ in reader.batches(indices, batch):
        for probability in np.asarray(model.predict_on_batch(inputs))[..., 0]:
            yield int(indices[position]), to_mask(probability)
            position += 1
