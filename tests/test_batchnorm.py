"""Batch-norm statistics re-estimated at the final weights: the averages of the batches' own statistics."""

from __future__ import annotations

import numpy as np

from model.training.batchnorm import recalibrate_batchnorm


def test_moving_statistics_become_the_mean_of_the_batch_statistics_and_momentum_is_restored():
    import keras

    inputs = keras.Input((4, 4, 2))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(inputs))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=(5.0, -3.0), scale=(1.0, 2.0), size=(8, 4, 4, 2)).astype("float32") for _ in range(3)]
    assert recalibrate_batchnorm(model, [(b, None) for b in batches]) == 3
    means = np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0)
    variances = np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0)
    np.testing.assert_allclose(np.asarray(norm.moving_mean), means, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(norm.moving_variance), variances, rtol=1e-3)
    assert norm.momentum == 0.99
    # Inference now normalises these inputs to mean ~0, variance ~1.
    out = np.asarray(model(np.concatenate(batches), training=False))
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=0.05)
    np.testing.assert_allclose(out.var(axis=(0, 1, 2)), 1.0, rtol=0.1)


def test_a_model_without_batch_norm_is_left_alone():
    import keras

    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    assert recalibrate_batchnorm(model, [np.zeros((1, 4, 4, 1), "float32")]) == 0
