"""A trained model's predictions over samples of a library, streamed batch by batch (scoring imports
inference and model/methods, never the other way round)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from model.inference.postprocess import batch_probabilities, probability_to_mask
from model.inference.settings import InferenceSettings

if TYPE_CHECKING:
    import keras

    from model.data import LibraryReader


def predict_probabilities(model: keras.Model, reader: LibraryReader, indices: np.ndarray, batch: int,
                          tta: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(sample index, P(background) as float32 (S, S)) for the given samples, in order; one batch in
    memory at a time. With `tta`, the mean over the 8 dihedral transforms of each batch."""
    indices = np.asarray(indices, np.int64)
    position = 0
    for inputs, _ in reader.batches(indices, batch):
        for probability in batch_probabilities(model, np.asarray(inputs), tta)[..., 0]:
            yield int(indices[position]), probability
            position += 1


def predict_samples(model: keras.Model, reader: LibraryReader, indices: np.ndarray, batch: int,
                    settings: InferenceSettings | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(sample index, predicted mask) for the given samples, in order, under `settings`
    (threshold, link threshold, speck filter, test-time augmentation; the defaults when None)."""
    settings = settings or InferenceSettings()
    for index, probability in predict_probabilities(model, reader, indices, batch, settings.tta):
        yield index, probability_to_mask(probability, settings.threshold, settings.min_speck, settings.link_threshold)
