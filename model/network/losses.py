"""Training losses. Registered with Keras, so a checkpoint that names them reloads by name."""

from __future__ import annotations

import keras
from keras import ops

# Smoothing of the Dice ratio: keeps it defined (and = 1 - 0) for a sample with no boundary at all.
SMOOTH = 1.0


@keras.saving.register_keras_serializable(package="reconstruction_gb")
def boundary_dice(y_true, y_pred):
    """1 - Dice of the BOUNDARY class (1 - target), per sample, averaged over the batch.

    Targets are 1 for background; boundaries are about 9% of the pixels, so a Dice on the
    background class would be near 1 whatever the network does at the gaps.
    """
    boundary_true = 1.0 - ops.cast(y_true, y_pred.dtype)
    boundary_pred = 1.0 - y_pred
    axes = tuple(range(1, len(y_pred.shape)))
    overlap = ops.sum(boundary_true * boundary_pred, axis=axes)
    total = ops.sum(boundary_true, axis=axes) + ops.sum(boundary_pred, axis=axes)
    return 1.0 - (2.0 * overlap + SMOOTH) / (total + SMOOTH)


@keras.saving.register_keras_serializable(package="reconstruction_gb")
def bce_dice(y_true, y_pred):
    """Binary cross-entropy (mean over pixels) plus boundary Dice loss, per sample."""
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=tuple(range(1, len(y_pred.shape) - 1)))
    return bce + boundary_dice(y_true, y_pred)


LOSSES = {
    "bce": lambda: keras.losses.BinaryCrossentropy(name="bce"),
    "dice": lambda: boundary_dice,
    "bce+dice": lambda: bce_dice,
}
