"""The Attention U-Net: the study's size, named layers, attention maps, size checks."""

from __future__ import annotations

import numpy as np
import pytest

from model.network.presets import PAPER_PARAMETERS, PRESETS, ModelConfig, ModelConfigError, model_config
from model.network.unet import attention_model, build_unet


@pytest.mark.parametrize("size", [None, 256])
def test_paper_preset_has_the_studys_parameter_count_at_any_input_size(size):
    assert PAPER_PARAMETERS == 157_605_505
    assert build_unet(PRESETS["paper"], size).count_params() == PAPER_PARAMETERS
    assert PRESETS["paper"].parameters == PAPER_PARAMETERS  # counted without building


@pytest.mark.parametrize("config", [PRESETS["small"], PRESETS["medium"], ModelConfig(filters=3, depth=1, kernel_size=4),
                                    ModelConfig(filters=8, depth=2, kernel_size=5)])
def test_the_parameter_count_without_keras_is_the_built_models(config):
    assert config.parameters == build_unet(config, None).count_params()


def test_layers_have_stable_names_and_attention_maps_come_out_by_name():
    model = build_unet(model_config("small"), 64)
    names = {layer.name for layer in model.layers}
    for level in (1, 2, 3):
        assert {f"enc{level}_conv1", f"enc{level}_bn2", f"dec{level}_up", f"dec{level}_att_map",
                f"dec{level}_concat", f"dec{level}_conv2"} <= names
    assert {"micro", "bridge_conv1", "output"} <= names
    maps = attention_model(model)(np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 64, 1), (2, 32, 32, 1), (2, 16, 16, 1)]
    assert all(0 <= float(np.min(m)) and float(np.max(m)) <= 1 for m in maps)
    out = model(np.zeros((1, 64, 64, 1), np.float32))
    assert tuple(out.shape) == (1, 64, 64, 1)


def test_width_depth_and_kernel_override_the_preset():
    config = model_config("small", filters=8, depth=2, kernel_size=5)
    assert config == ModelConfig(filters=8, depth=2, kernel_size=5)
    model = build_unet(config, 32)
    assert model.get_layer("enc1_conv1").kernel.shape == (5, 5, 1, 8)
    assert model.get_layer("bridge_conv1").kernel.shape == (5, 5, 16, 32)
    assert "enc3_conv1" not in {layer.name for layer in model.layers}


@pytest.mark.parametrize("call, message", [
    (lambda: build_unet(model_config("paper"), 500), "input size 500 is not divisible by 2^depth = 16"),
    (lambda: build_unet(model_config("small", depth=7), 64), "not divisible by 2^depth = 128"),
    (lambda: model_config("huge"), "unknown preset 'huge'"),
    (lambda: model_config("small", filters=0), "filters must be > 0"),
    # A TensorFlow traceback after minutes of allocation, before these limits.
    (lambda: model_config("paper", filters=100000), "filters 100000, depth 4 and kernel size 7 make a model of "
                                                    "384,690,057,000,001 parameters, more than the 1,000,000,000"),
    (lambda: model_config("paper", kernel_size=1000), "kernel size 1000 make a model of 3,137,603,863,105 parameters"),
    (lambda: model_config("small", kernel_size=101).check_size(64), "kernel size 101 is larger than the 64 px input"),
])
def test_impossible_models_are_refused_before_any_work(call, message):
    with pytest.raises(ModelConfigError, match=message.replace("^", r"\^")):
        call()
