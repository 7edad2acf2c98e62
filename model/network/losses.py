"""Training losses. Registered with Keras, so a checkpoint that names them reloads by name.

Targets are 1 for background and 0 for boundary; the network outputs P(background). Every loss
here returns one value per sample (the mean over the batch is Keras' reduction).
"""

from __future__ import annotations

import keras
from keras import ops

# Smoothing of the Dice ratios: keeps them defined for a sample with no boundary at all.
SMOOTH = 1.0
# Soft-skeleton iterations: each erodes one pixel from every side, so it must exceed the
# half-width of the thickest boundary (library boundaries are 2 to 6 px wide).
SKELETON_ITERATIONS = 5
DEFAULT_CLDICE_WEIGHT = 0.5


def _spatial_axes(x) -> tuple[int, ...]:
    return tuple(range(1, len(x.shape)))


@keras.saving.register_keras_serializable(package="reconstruction_gb")
def boundary_dice(y_true, y_pred):
    """1 - Dice of the BOUNDARY class (1 - target), per sample, averaged over the batch.

    Targets are 1 for background; boundaries are about 9% of the pixels, so a Dice on the
    background class would be near 1 whatever the network does at the gaps.
    """
    boundary_true = 1.0 - ops.cast(y_true, y_pred.dtype)
    boundary_pred = 1.0 - y_pred
    axes = _spatial_axes(y_pred)
    overlap = ops.sum(boundary_true * boundary_pred, axis=axes)
    total = ops.sum(boundary_true, axis=axes) + ops.sum(boundary_pred, axis=axes)
    return 1.0 - (2.0 * overlap + SMOOTH) / (total + SMOOTH)


def _bce(y_true, y_pred):
    """Binary cross-entropy, mean over the pixels of each sample."""
    per_pixel = keras.losses.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred)
    return ops.mean(per_pixel, axis=tuple(range(1, len(y_pred.shape) - 1)))


@keras.saving.register_keras_serializable(package="reconstruction_gb")
def bce_dice(y_true, y_pred):
    """Binary cross-entropy (mean over pixels) plus boundary Dice loss, per sample."""
    return _bce(y_true, y_pred) + boundary_dice(y_true, y_pred)


# --- clDice (Shit et al., CVPR 2021), 2-D, channels last -------------------------------------------
def soft_erode(x):
    """Soft erosion of (B, H, W, C) maps in [0, 1]: the minimum over a plus-shaped 3x3 neighbourhood."""
    vertical = -ops.max_pool(-x, pool_size=(3, 1), strides=1, padding="same")
    horizontal = -ops.max_pool(-x, pool_size=(1, 3), strides=1, padding="same")
    return ops.minimum(vertical, horizontal)


def soft_dilate(x):
    """Soft dilation: the maximum over a 3x3 neighbourhood."""
    return ops.max_pool(x, pool_size=3, strides=1, padding="same")


def soft_skeleton(x, iterations: int = SKELETON_ITERATIONS):
    """A differentiable skeleton of (B, H, W, C) maps in [0, 1], by iterated soft opening.

    At each scale, what the opening removes is thin structure; it is added to the skeleton
    where the skeleton does not already hold it.
    """
    skeleton = ops.relu(x - soft_dilate(soft_erode(x)))
    for _ in range(iterations):
        x = soft_erode(x)
        delta = ops.relu(x - soft_dilate(soft_erode(x)))
        skeleton = skeleton + ops.relu(delta - skeleton * delta)
    return skeleton


def cldice(y_true, y_pred, iterations: int = SKELETON_ITERATIONS):
    """1 - clDice of the boundary class, per sample.

    Topology precision: the share of the predicted skeleton lying on true boundary; topology
    sensitivity: the share of the true skeleton covered by predicted boundary. A gap in a
    predicted line removes true-skeleton coverage however few pixels it has.
    """
    boundary_true = 1.0 - ops.cast(y_true, y_pred.dtype)
    boundary_pred = 1.0 - y_pred
    axes = _spatial_axes(y_pred)
    skeleton_pred = soft_skeleton(boundary_pred, iterations)
    skeleton_true = soft_skeleton(boundary_true, iterations)
    precision = (ops.sum(skeleton_pred * boundary_true, axis=axes) + SMOOTH) / (ops.sum(skeleton_pred, axis=axes) + SMOOTH)
    sensitivity = (ops.sum(skeleton_true * boundary_pred, axis=axes) + SMOOTH) / (ops.sum(skeleton_true, axis=axes) + SMOOTH)
    return 1.0 - 2.0 * precision * sensitivity / (precision + sensitivity)


@keras.saving.register_keras_serializable(package="reconstruction_gb")
class BceClDice(keras.losses.Loss):
    """Binary cross-entropy + `weight` x (1 - clDice of the boundary class), per sample."""

    def __init__(self, weight: float = DEFAULT_CLDICE_WEIGHT, iterations: int = SKELETON_ITERATIONS,
                 name: str = "bce_cldice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight = float(weight)
        self.iterations = int(iterations)

    def call(self, y_true, y_pred):
        return _bce(y_true, y_pred) + self.weight * cldice(y_true, y_pred, self.iterations)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight, "iterations": self.iterations}


LOSSES = {
    "bce": lambda weight: keras.losses.BinaryCrossentropy(name="bce"),
    "dice": lambda weight: boundary_dice,
    "bce+dice": lambda weight: bce_dice,
    "bce+cldice": lambda weight: BceClDice(weight),
}
