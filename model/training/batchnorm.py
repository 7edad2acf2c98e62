"""Batch-norm statistics re-estimated at a model's final weights ("precise BN").

Training normalises with each batch's own statistics and keeps moving averages for inference
(momentum 0.99). While the weights still change quickly, those averages lag behind them: a
model measured here after one epoch labelled 0.4% of a validation image boundary in inference
mode against 7.6% with batch statistics (truth: 6.9%). Re-estimating the averages over a few
training batches at the current weights removes the lag; it changes no trainable weight.
"""

from __future__ import annotations

from typing import Any, Iterable

import keras

# Training batches averaged per re-estimation: enough for stable per-channel means and variances.
BATCHES = 32


def recalibrate_batchnorm(model: keras.Model, batches: Iterable[Any]) -> int:
    """Set every BatchNormalization layer's moving mean and variance to the average of its batch
    statistics over `batches` (inputs only, or (input, target) pairs); returns the batches used."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    saved = [layer.momentum for layer in norms]
    used = 0
    try:
        for used, batch in enumerate(batches, start=1):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in norms:
                layer.momentum = (used - 1) / used  # a running mean: the k-th batch weighs 1/k
            model(inputs, training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
    return used
