"""A trained model's predictions over samples of a library, streamed batch by batch (scoring imports
inference and model/methods, never the other way round)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np

from model.inference.images import _quiet_opencv, header_size
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
    batch = max(1, min(batch, len(indices)))  # `--batch 99999999999999999999` is no int64 for TensorFlow
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


class PredictionFileError(ValueError):
    """A prediction PNG of `evaluate --predictions` that cannot be scored; one line naming it."""


def read_prediction(path: Path, size: int) -> np.ndarray:
    """The prediction `path` as 8-bit gray (size, size), thresholded by the caller.

    Its header's size is checked before it is decoded: a small PNG can declare 32000 x 32000 px,
    and decoding it first took seconds and gigabytes only to refuse it afterwards.
    """
    declared = header_size(path)
    if declared is not None and declared != (size, size):
        raise PredictionFileError(f"{path} is {declared[0]}x{declared[1]}; the library's images are {size}x{size}")
    with _quiet_opencv():  # OpenCV's own "[ERROR:0@0.556] ... TIFF_Error" lines: the file is named below
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or image.ndim != 2:
        raise PredictionFileError(f"{path} is not an 8-bit gray PNG")
    if image.shape != (size, size):
        raise PredictionFileError(f"{path} is {image.shape[1]}x{image.shape[0]}; "
                                  f"the library's images are {size}x{size}")
    return image
