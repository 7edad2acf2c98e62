"""Validation-chosen inference settings: stored beside a model, used by evaluate, chosen by tune."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import one_error_line
from model.inference.settings import InferenceSettings, load_settings, save_settings, settings_path

COLUMNS = ("miou", "boundary_iou", "gap_recall", "spurious_rate", "boundary_f1", "grain_count_error",
           "grain_ari", "astm_g_error")


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory):
    """A 1x1 convolution 0.5 x + 0.3: boundary input (0) -> 0.3, background (1) -> 0.8.

    It commutes with flips and quarter turns, and thresholds in (0.3, 0.8] give back the input.
    """
    import keras

    inputs = keras.Input((None, None, 1))
    conv = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(0.5),
                               bias_initializer=keras.initializers.Constant(0.3))
    path = tmp_path_factory.mktemp("models") / "linear.keras"
    keras.Model(inputs, conv(inputs)).save(path)
    return path


def scores(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_settings_round_trip_and_defaults(tmp_path):
    model = tmp_path / "m.keras"
    assert load_settings(model) == InferenceSettings()
    written = save_settings(model, InferenceSettings(threshold=0.7, min_speck=12, tta=True, chosen_on="val"))
    assert written == settings_path(model) == tmp_path / "m.settings.json"
    assert load_settings(model) == InferenceSettings(threshold=0.7, min_speck=12, tta=True, chosen_on="val")
    save_settings(model, InferenceSettings(bridge=True))
    assert load_settings(model).bridge is True and json.loads(settings_path(model).read_text())["bridge"] is True


@pytest.mark.parametrize("text", ["{", "[]", '{"threshold": 2}', '{"threshold": 0.5, "code": "x"}'])
def test_a_bad_settings_file_is_one_clear_error_in_evaluate(run_cli, tmp_path, tiny_library, linear_model, text):
    model = tmp_path / "model.keras"
    model.write_bytes(linear_model.read_bytes())
    settings_path(model).write_text(text)
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--model", model, "--out", tmp_path / "out",
                                  "--no-progress"))
    assert "model.settings.json" in line
    assert not (tmp_path / "out").exists()


def test_evaluate_uses_the_stored_threshold_unless_told_otherwise(run_cli, tmp_path, tiny_library, linear_model):
    model = tmp_path / "model.keras"
    model.write_bytes(linear_model.read_bytes())
    save_settings(model, InferenceSettings(threshold=0.9))  # 0.8 < 0.9: every pixel becomes boundary
    for name, extra in {"stored": [], "override": ["--threshold", "0.5"], "identity": None}.items():
        args = ["--baseline", "identity"] if extra is None else ["--model", model, *extra]
        result = run_cli("evaluate", "--data", tiny_library, *args, "--split", "all", "--out", tmp_path / name,
                         "--no-progress")
        assert result.exit_code == 0, result.output
    stored, override, identity = (scores(tmp_path / n) for n in ("stored", "override", "identity"))
    assert stored["settings"]["threshold"] == 0.9 and override["settings"]["threshold"] == 0.5
    assert stored["boundary_iou"] < 0.2  # all boundary
    for key in COLUMNS:  # 0.5 gives back the input exactly
        assert override[key] == identity[key], key
    assert "Settings: threshold 0.9, link threshold off" in (tmp_path / "stored" / "report.md").read_text()


def test_tta_of_a_symmetric_model_and_plus_bridge_rows(run_cli, tmp_path, tiny_library, linear_model):
    runs = {"plain": ["--no-tta"], "tta": ["--tta", "--plus-bridge"]}
    for name, extra in runs.items():
        result = run_cli("evaluate", "--data", tiny_library, "--model", linear_model, *extra, "--split", "all",
                         "--out", tmp_path / name, "--no-progress")
        assert result.exit_code == 0, result.output
    plain, tta = scores(tmp_path / "plain"), scores(tmp_path / "tta")
    for key in COLUMNS:
        assert plain[key] == tta[key], key
    # Settings without `bridge`: the network alone is the default method, the first row; --plus-bridge
    # adds model+bridge beside it. The model returns its input, so model+bridge is the bridge itself.
    assert tta["headline"] == "model" and list(tta["rows"]) == ["model", "model+bridge", "identity", "bridge"]
    for key in COLUMNS:
        assert tta["rows"]["model+bridge"][key] == tta["baselines"]["bridge"][key], key
    assert "| model+bridge |" in result.output


def test_settings_that_say_bridge_make_model_plus_bridge_the_headline(run_cli, tmp_path, tiny_library, linear_model):
    """The first row and metrics.json's top level are what `predict` runs without --method."""
    model = tmp_path / "model.keras"
    model.write_bytes(linear_model.read_bytes())
    save_settings(model, InferenceSettings(bridge=True, chosen_on="val"))
    result = run_cli("evaluate", "--data", tiny_library, "--model", model, "--split", "all",
                     "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    scored = scores(tmp_path / "out")
    assert scored["method"] == "model model.keras" and scored["headline"] == "model+bridge"
    assert list(scored["rows"]) == ["model+bridge", "model", "identity", "bridge"]
    assert {key: scored[key] for key in COLUMNS} == {key: scored["rows"]["model+bridge"][key] for key in COLUMNS}
    assert scored["baselines"] == {name: scored["rows"][name] for name in ("identity", "bridge")}
    # The model returns its input: the network alone scores as identity, model+bridge as bridge.
    for key in COLUMNS:
        assert scored["rows"]["model"][key] == scored["baselines"]["identity"][key], key
        assert scored[key] == scored["baselines"]["bridge"][key], key
    table = [line.split(" | ")[0] for line in result.output.splitlines() if line.startswith("| ")]
    assert table == ["| method", "| ---", "| model+bridge", "| model", "| identity", "| bridge"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "The first row, `model+bridge`, is the default method" in report and "`model` is the network alone" in report
    assert run_cli("export", tiny_library, "--out", tmp_path / "pngs", "--count", 1).exit_code == 0
    predicted = run_cli("predict", tmp_path / "pngs" / "micro" / "0.png", "--model", model, "--out",
                        tmp_path / "restored", "--no-progress")
    assert predicted.exit_code == 0, predicted.output
    assert predicted.output.startswith("method model+bridge (from model.settings.json")


def test_tune_chooses_on_val_and_evaluate_then_uses_it(run_cli, tmp_path, tiny_library, linear_model):
    model = tmp_path / "model.keras"
    model.write_bytes(linear_model.read_bytes())
    result = run_cli("tune", "--model", model, "--data", tiny_library, "--no-progress")
    assert result.exit_code == 0, result.output
    chosen = load_settings(model)
    # Thresholds of 0.3 or less make everything background, above 0.8 everything boundary:
    # only 0.4 .. 0.8 give back the input, the best grains this model can give.
    assert 0.4 <= chosen.threshold <= 0.8
    assert chosen.chosen_on.startswith("val split of") and "first 3 samples" in chosen.chosen_on
    # No link line: this model's P(background) is below every link threshold everywhere, so the
    # line would be the skeleton of the whole image.
    assert chosen.link_threshold is None
    # 6 thresholds up to 0.8 with 4 link choices, 0.9 with 3 (off, 0.95, 0.98), each with 3 speck
    # filters; and the 7 thresholds without a link line followed by the bridge, with 3 speck filters.
    assert len(chosen.details["sweep"]) == (6 * 4 + 3) * 3 + 7 * 3
    # The network gives back its input, gaps and all; the bridge closes gaps, so it follows the model.
    assert chosen.bridge is True
    bridged = [row for row in chosen.details["sweep"] if row["bridge"]]
    assert min(r["grain_count_error"] for r in bridged) < min(
        r["grain_count_error"] for r in chosen.details["sweep"] if not r["bridge"])
    assert f"threshold {chosen.threshold:g}" in result.output


def test_tune_never_uses_the_test_split(tiny_library, linear_model):
    from model.data import LibraryReader
    from model.inference.predict import load_model
    from model.training.tune import TuneError, sweep

    with pytest.raises(TuneError, match="never on test"):
        sweep(load_model(linear_model), LibraryReader(tiny_library), split="test")


def _saved(path, inputs_shape, channels_out):
    import keras

    inputs = keras.Input(inputs_shape)
    keras.Model(inputs, keras.layers.Conv2D(channels_out, 1, activation="sigmoid")(inputs)).save(path)
    return path


@pytest.mark.parametrize("model, message", [
    # A traceback from the first batch.
    ("rgb", "expected a model input of shape (batch, height, width, 1), got (None, None, None, 3)"),
    # Exit 0, settings chosen on the first channel and written.
    ("two-out", "expected a model output of shape (batch, height, width, 1), got (None, None, None, 2)"),
    ("fixed-128", "the model takes 128x128 inputs; the library's images are 64x64"),
    # NaN probabilities scored as all boundary, settings written.
    ("nan-weights", "its weights hold NaN or infinite values"),
    ("overflow", "the model answered NaN or infinite probabilities"),
])
def test_tune_refuses_a_model_it_cannot_choose_for_in_one_line_and_writes_no_settings(run_cli, tmp_path, tiny_library,
                                                                                      model, message):
    from conftest import nan_models

    paths = {"rgb": lambda: _saved(tmp_path / "rgb.keras", (None, None, 3), 1),
             "two-out": lambda: _saved(tmp_path / "two-out.keras", (None, None, 1), 2),
             "fixed-128": lambda: _saved(tmp_path / "fixed-128.keras", (128, 128, 1), 1)}
    path = paths[model]() if model in paths else nan_models(tmp_path)[model]
    line = one_error_line(run_cli("tune", "--model", path, "--data", tiny_library, "--samples", 2, "--no-progress"))
    assert message in line
    assert not settings_path(path).exists()


@pytest.mark.parametrize("model, message", [
    ("nan-weights", "its weights hold NaN or infinite values"),
    ("overflow", "the model answered NaN or infinite probabilities"),  # it scored ARI nan, exit 0
])
def test_evaluate_refuses_a_model_that_answers_nan_in_one_line(run_cli, tmp_path, tiny_library, model, message):
    from conftest import nan_models

    path = nan_models(tmp_path)[model]
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--model", path, "--out", tmp_path / "out",
                                  "--no-progress"))
    assert message in line
    assert not (tmp_path / "out").exists()


def test_no_model_and_no_bundled_model_is_one_line(run_cli, tmp_path, tiny_library, monkeypatch):
    import model.pretrained

    monkeypatch.setattr(model.pretrained, "BUNDLED_MODEL", tmp_path / "absent.keras")
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--out", tmp_path / "out", "--no-progress"))
    assert "no --model given and no bundled model" in line
    assert not (tmp_path / "out").exists()



def test_the_tuning_objective_adds_the_three_error_fractions():
    from model.training.tune import candidates, objective

    # 10% of grains miscounted, ARI 0.9, mIoU 0.8: 0.1 + 0.1 + 0.2
    assert objective({"grain_count_error": 0.1, "grain_ari": 0.9, "miou": 0.8}) == pytest.approx(0.4)
    # A thicker reading (lower mIoU) at equal grains now loses.
    assert objective({"grain_count_error": 0.02, "grain_ari": 0.99, "miou": 0.90}) > \
        objective({"grain_count_error": 0.02, "grain_ari": 0.99, "miou": 0.95})
    assert candidates((0.5, 0.9), (None, 0.9, 0.95)) == [(0.5, None), (0.5, 0.9), (0.5, 0.95), (0.9, None), (0.9, 0.95)]
