"""The study's Attention U-Net, built from Keras' own layers with stable names.

Every layer of level l (1 = finest) carries the level in its name: `enc{l}_conv1`, `enc{l}_bn1`,
`enc{l}_relu1`, ..., `enc{l}_pool`, `bridge_conv1`, ..., `dec{l}_up`, the attention gate
`dec{l}_att_theta` (1x1 conv of the skip), `dec{l}_att_phi` (1x1 conv of the gating signal, the
coarser decoder feature), `dec{l}_att_psi`, `dec{l}_att_map` (the attention coefficients in [0, 1],
shape (S/2^(l-1), S/2^(l-1), 1)), `dec{l}_att_gated` (skip x coefficients), `dec{l}_concat`,
`dec{l}_conv1`, ... and `output`. Only built-in layers are used, so a saved model loads with
`keras.models.load_model` in safe mode and without custom objects.
"""

from __future__ import annotations

import keras
from keras import layers

from model.network.presets import ModelConfig


def conv_block(x: keras.KerasTensor, filters: int, kernel_size: int, name: str) -> keras.KerasTensor:
    """Two (conv, batch norm, ReLU) stages."""
    for stage in (1, 2):
        x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_conv{stage}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{stage}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{stage}")(x)
    return x


def attention_gate(skip: keras.KerasTensor, gating: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Weight `skip` by coefficients computed from it and the coarser `gating` feature.

    theta(skip) + upsample(phi(gating)) -> ReLU -> psi -> sigmoid, multiplied onto the skip.
    phi runs at the coarse resolution before nearest-neighbour upsampling: a 1x1 convolution
    commutes with it, so this equals convolving the upsampled gating signal, at a quarter of the cost.
    """
    theta = layers.Conv2D(filters, 1, name=f"{name}_theta")(skip)
    phi = layers.Conv2D(filters, 1, name=f"{name}_phi")(gating)
    phi = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_phi_up")(phi)
    act = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta, phi]))
    # No bias before the sigmoid: theta and phi carry them (this matches the study's parameter count).
    psi = layers.Conv2D(1, 1, use_bias=False, name=f"{name}_psi")(act)
    coefficients = layers.Activation("sigmoid", name=f"{name}_map")(psi)
    return layers.Multiply(name=f"{name}_gated")([skip, coefficients])


def build_unet(config: ModelConfig, size: int | None = None, name: str = "attention_unet") -> keras.Model:
    """The Attention U-Net for (size, size, 1) inputs in [0, 1]; sigmoid P(background) out.

    `size=None` builds a fully convolutional model that accepts any side divisible by 2^depth.
    """
    if size is not None:
        config.check_size(size)
    inputs = keras.Input((size, size, 1), name="micro")
    x = inputs
    skips = []
    for level in range(1, config.depth + 1):
        x = conv_block(x, config.filters * 2 ** (level - 1), config.kernel_size, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = conv_block(x, config.filters * 2**config.depth, config.kernel_size, "bridge")
    for level in range(config.depth, 0, -1):
        filters = config.filters * 2 ** (level - 1)
        gated = attention_gate(skips[level - 1], x, filters, f"dec{level}_att")
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, gated])
        x = conv_block(x, filters, config.kernel_size, f"dec{level}")
    # float32 output even under a mixed-precision policy, so losses and probabilities stay exact.
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def attention_model(model: keras.Model) -> keras.Model:
    """A model returning every attention map of `model` (finest level first), for inspection."""
    names = sorted((layer.name for layer in model.layers if layer.name.endswith("_att_map")))
    return keras.Model(model.input, [model.get_layer(n).output for n in names])
