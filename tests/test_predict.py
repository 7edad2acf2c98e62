"""`predict_files` (model/inference/predict.py) with stand-in Keras models whose answer is known exactly."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.inference.images import otsu_binarize, read_image
from model.inference.postprocess import probability_to_mask
from model.inference.predict import PROBABILITY_SUFFIX, PredictError, predict_files
from model.inference.settings import InferenceSettings, save_settings

SHAPES = [(1000, 700), (300, 2000), (100, 100)]


def boundary_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """uint8 image, 255 background with random 0-valued boundary lines."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, 255, np.uint8)
    h, w = shape
    for _ in range(12):
        p, q = (int(rng.integers(w)), int(rng.integers(h))), (int(rng.integers(w)), int(rng.integers(h)))
        cv2.line(image, p, q, 0, int(rng.integers(1, 4)))
    return image


def write(path: Path, image: np.ndarray, *params: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image, list(params))
    return path


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Saved .keras stand-ins: `free` and `fixed` (64 x 64) return their input; `pooled` needs even tiles."""
    import keras

    folder = tmp_path_factory.mktemp("models")

    def identity(shape: tuple[int | None, int | None]) -> keras.Model:
        inputs = keras.Input((*shape, 1))
        return keras.Model(inputs, keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones")(inputs))

    inputs = keras.Input((None, None, 1))
    up = keras.layers.UpSampling2D(2)(keras.layers.MaxPooling2D(2)(inputs))
    pooled = keras.Model(inputs, keras.layers.Conv2D(1, 1)(keras.layers.Concatenate()([inputs, up])))
    paths = {}
    for name, model in {"free": identity((None, None)), "fixed": identity((64, 64)), "pooled": pooled}.items():
        paths[name] = folder / f"{name}.keras"
        with warnings.catch_warnings():  # Keras 3.15's saver trips numpy 2's __array__(copy=) deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            model.save(paths[name])
        # Exact stand-ins: no speck filter, so every output pixel is the thresholded input pixel.
        save_settings(paths[name], InferenceSettings(min_speck=0, chosen_on="test stand-in"))
    return paths


@pytest.fixture(scope="module")
def binary_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("binary")
    for k, shape in enumerate(SHAPES):
        write(folder / f"{shape[0]}x{shape[1]}.png", boundary_image(shape, k))
    return folder


def assert_outputs_equal_inputs(folder: Path, out: Path, probability: bool = False) -> None:
    for source in sorted(folder.glob("*.png")):
        expected = read(source)
        got = read(out / source.name)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        if probability:
            p = read(out / f"{source.stem}{PROBABILITY_SUFFIX}")
            assert p.dtype == np.float32
            np.testing.assert_allclose(p, expected / 255.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("overlap", [0, 16, 37])
def test_free_size_model_gives_back_the_thresholded_input(models, binary_dir, tmp_path, overlap) -> None:
    out = tmp_path / "out"
    report = predict_files(models["free"], [binary_dir], out, tile=128, overlap=overlap,
                           save_probability=overlap == 37, batch=8, progress=False)
    assert report.ok and len(report.outputs) == 3 and report.tile == (128, 128)
    assert len(report.written) == (6 if overlap == 37 else 3)
    assert_outputs_equal_inputs(binary_dir, out, probability=overlap == 37)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in report.written)  # no temporary left


def test_defaults_and_fixed_size_model(models, binary_dir, tmp_path) -> None:
    report = predict_files(models["free"], [binary_dir], tmp_path / "free", progress=False)
    assert report.tile == (256, 256) and report.overlap == 64
    assert_outputs_equal_inputs(binary_dir, tmp_path / "free")
    report = predict_files(models["fixed"], [binary_dir], tmp_path / "fixed", batch=32, progress=False)
    assert report.ok and report.tile == (64, 64) and report.overlap == 16
    assert_outputs_equal_inputs(binary_dir, tmp_path / "fixed")
    predict_files(models["fixed"], [binary_dir / "100x100.png"], tmp_path / "tile64", tile=64, overlap=8,
                  progress=False)
    np.testing.assert_array_equal(read(tmp_path / "tile64" / "100x100.png"), read(binary_dir / "100x100.png"))


def test_16_bit_tiff_rgb_jpeg_rgba_png_and_bmp(models, tmp_path) -> None:
    rng = np.random.default_rng(5)
    levels = np.array([0, 20000, 45000, 65535], np.uint16)  # none near the 0.5 threshold
    deep = write(tmp_path / "in" / "deep.tif", levels[rng.integers(0, 4, (150, 90))])
    binary = boundary_image((120, 170), 6)
    colour = np.where(binary[..., None] > 0, np.array([240, 220, 200], np.uint8),
                      np.array([10, 30, 20], np.uint8))
    jpeg = write(tmp_path / "in" / "colour.jpg", colour, cv2.IMWRITE_JPEG_QUALITY, 95)
    rgba = write(tmp_path / "in" / "rgba.png", np.dstack([colour, np.full(binary.shape, 7, np.uint8)]))
    bmp = write(tmp_path / "in" / "gray.bmp", binary)
    out = tmp_path / "out"
    # Preparation off: what reaches the (identity) model is the decoded image itself.
    report = predict_files(models["free"], [tmp_path / "in"], out, tile=64, overlap=16, save_probability=True,
                           progress=False, denoise="none", binarize="none")
    assert report.ok and len(report.outputs) == 4
    expected16 = np.where(read(deep) >= 32768, 255, 0)
    np.testing.assert_array_equal(read(out / "deep.png"), expected16)
    np.testing.assert_allclose(read(out / "deep_probability.tif"), read(deep) / 65535.0, rtol=0, atol=1e-6)
    decoded = cv2.cvtColor(cv2.imread(str(jpeg), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
    agreement = (read(out / "colour.png") == np.where(decoded >= 128, 255, 0)).mean()
    assert agreement > 0.99 and (read(out / "colour.png") == binary).mean() > 0.99
    np.testing.assert_array_equal(read(out / "rgba.png"), binary)
    np.testing.assert_array_equal(read(out / "gray.png"), read(bmp))
    assert read(rgba).shape[2] == 4


def test_invert_and_otsu(models, tmp_path) -> None:
    binary = boundary_image((130, 210), 7)
    bright = write(tmp_path / "bright.png", 255 - binary)
    report = predict_files(models["free"], [bright], tmp_path / "inverted", tile=64, overlap=8, invert=True,
                           progress=False)
    assert report.ok
    np.testing.assert_array_equal(read(tmp_path / "inverted" / "bright.png"), binary)
    # A gray, noisy micrograph: Otsu separates the dark boundaries from the bright grains.
    noise = np.random.default_rng(8).normal(0, 8, binary.shape)
    gray = np.clip(np.where(binary > 0, 170, 70) + noise, 0, 255).astype(np.uint8)
    micro = write(tmp_path / "gray.png", gray)
    predict_files(models["free"], [micro], tmp_path / "otsu", tile=64, overlap=8, binarize="otsu", denoise="none",
                  progress=False)
    np.testing.assert_array_equal(read(tmp_path / "otsu" / "gray.png"), binary)
    # 16-bit images using a narrow band of levels are split by their own range.
    narrow = np.where(binary > 0, 1200, 1000).astype(np.uint16)
    np.testing.assert_array_equal(otsu_binarize(narrow / 65535.0), binary / 255)
    assert (otsu_binarize(np.full((4, 4), 0.3, np.float32)) == 1).all()


def test_a_corrupt_file_is_reported_and_the_others_written(models, tmp_path) -> None:
    folder = tmp_path / "in"
    good = [write(folder / "a.png", boundary_image((50, 60), 1)), write(folder / "c.png", boundary_image((70, 40), 2))]
    bad = folder / "b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "notes.txt").write_text("not an image, and ignored")
    out = tmp_path / "out"
    report = predict_files(models["free"], [folder], out, tile=64, overlap=16, progress=False)
    assert not report.ok
    assert [source for source, _ in report.failures] == [bad]
    assert [source for source, _ in report.outputs] == good
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    messages = report.messages()
    assert len(messages) == 1 and str(bad) in messages[0] and "decode" in messages[0]
    assert "predicted 2 of 3 images" in report.summary() and "1 failed" in report.summary()


def test_same_names_from_two_folders_do_not_overwrite(models, tmp_path) -> None:
    first = write(tmp_path / "a" / "x.png", boundary_image((40, 50), 1))
    second = write(tmp_path / "b" / "x.png", boundary_image((40, 50), 2))
    own = write(tmp_path / "b" / "X_2.png", boundary_image((40, 50), 3))
    out = tmp_path / "out"
    report = predict_files(models["free"], [tmp_path / "a", tmp_path / "b", first], out, tile=32, overlap=8,
                           progress=False)
    assert report.ok and len(report.outputs) == 3  # `first`, named twice, is predicted once
    assert report.renamed == ((second, out / "x_3.png"),)
    for source, name in [(first, "x.png"), (second, "x_3.png"), (own, "X_2.png")]:
        np.testing.assert_array_equal(read(out / name), read(source))
    assert "x_3.png" in report.messages()[0]


def _garbage_model(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.keras"
    path.write_bytes(b"this is not a zip file")
    return path


@pytest.mark.parametrize("case,kwargs,match", [
    ("missing model", {"model_path": "missing.keras"}, "model file not found"),
    ("garbage model", {"model_path": "GARBAGE"}, "cannot load a Keras model"),
    ("empty dir", {"inputs": ["EMPTY"]}, "no images"),
    ("missing input", {"inputs": ["nowhere.png"]}, "input not found"),
    ("unsupported file", {"inputs": ["EMPTY/notes.txt"]}, "not a supported image type"),
    ("tile = overlap", {"tile": 64, "overlap": 64}, "larger than --overlap"),
    ("tile < overlap", {"tile": 32, "overlap": 40}, "larger than --overlap"),
    ("model tile <= overlap", {"overlap": 256}, "larger than --overlap"),
    ("negative overlap", {"overlap": -1}, "overlap must be >= 0"),
    ("threshold", {"threshold": 1.5}, "threshold"),
    ("binarize", {"binarize": "sauvola"}, "binarize"),
    ("batch", {"batch": 0}, "batch"),
    ("fixed tile", {"model_path": "fixed", "tile": 32}, "64x64 inputs only"),
    ("odd tile", {"model_path": "pooled", "tile": 33}, "does not accept 33x33 tiles"),
])
def test_errors_before_any_work(models, binary_dir, tmp_path, case, kwargs, match) -> None:
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "EMPTY" / "notes.txt").write_text("no image here")
    arguments = {"model_path": models["free"], "inputs": [binary_dir], "out_dir": tmp_path / "out",
                 "progress": False, **kwargs}
    model = arguments["model_path"]
    arguments["model_path"] = (models[model] if model in models else _garbage_model(tmp_path) if model == "GARBAGE"
                               else tmp_path / model)
    arguments["inputs"] = [tmp_path / p if isinstance(p, str) else p for p in arguments["inputs"]]
    with pytest.raises(PredictError, match=match) as error:
        predict_files(**arguments)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_output_may_not_overwrite_an_input(models, tmp_path) -> None:
    source = write(tmp_path / "x.png", boundary_image((30, 30), 1))
    before = source.read_bytes()
    with pytest.raises(PredictError, match="would overwrite the input"):
        predict_files(models["free"], [tmp_path], tmp_path, tile=32, overlap=8, progress=False)
    assert source.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_read_image_scales_and_converts(tmp_path) -> None:
    gray16 = np.array([[0, 65535], [32768, 1]], np.uint16)
    np.testing.assert_allclose(read_image(write(tmp_path / "a.png", gray16)), gray16 / 65535.0, atol=1e-7)
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    np.testing.assert_allclose(read_image(write(tmp_path / "red.png", bgr)), 0.299, atol=1e-3)
    floats = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(read_image(write(tmp_path / "f.tif", floats)), floats)


# --- through the command line -----------------------------------------------------------------
def test_cli_reports_a_corrupt_file_by_name_writes_the_others_and_exits_1(run_cli, models, tmp_path) -> None:
    good = write(tmp_path / "in" / "good.png", boundary_image((90, 130), 1))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = run_cli("predict", "--model", models["free"], tmp_path / "in", "--out", tmp_path / "out",
                     "--tile", "64", "--no-progress")
    assert result.exit_code == 1
    assert f"failed: {tmp_path / 'in' / 'broken.png'}" in result.output
    assert "predicted 1 of 2 images" in result.output
    assert np.array_equal(read(tmp_path / "out" / "good.png"), read(good))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


@pytest.mark.parametrize("args, message", [
    (["--tile", "64", "--overlap", "64"], "overlap"),
    (["--tile", "64", "--overlap", "-1"], "overlap"),
    (["--model", "{tmp}/nothing.keras"], "nothing.keras"),
])
def test_cli_bad_input_is_one_clear_line_before_any_work(run_cli, models, binary_dir, tmp_path, args,
                                                         message) -> None:
    from conftest import one_error_line

    args = [a.format(tmp=tmp_path) for a in args]
    if "--model" not in args:
        args = ["--model", str(models["free"]), *args]
    line = one_error_line(run_cli("predict", *args, binary_dir, "--out", tmp_path / "out", "--no-progress"))
    assert message in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scale, becomes", [
    # 655 megapixels: minutes of work; 65 PB asked of OpenCV; an empty map and exit 0.
    ("200", "25600 x 25600 px (655 megapixels), above the limit of 100 megapixels: choose a smaller --scale "
            "(or set RECONSTRUCTION_GB_MAX_PIXELS to allow more)"),
    ("1e6", "128000000 x 128000000 px (16,384,000,000 megapixels), above the limit of 100 megapixels"),
    ("1e-6", "1 x 1 px: shrunk below 16 px a side, it holds no grain to restore; choose a larger --scale"),
])
def test_cli_a_scale_that_makes_an_image_too_large_or_too_small_is_one_line_before_any_work(
        run_cli, models, tmp_path, scale, becomes) -> None:
    from conftest import one_error_line

    source = write(tmp_path / "in" / "grains.png", boundary_image((128, 128), 1))
    line = one_error_line(run_cli("predict", "--model", models["free"], tmp_path / "in", "--out", tmp_path / "out",
                                  "--scale", scale, "--no-progress"))
    assert line.startswith(f"Error: {source}: at --scale {float(scale):g} the 128 x 128 px image becomes {becomes}")
    assert line.endswith("; nothing was written")
    assert not (tmp_path / "out").exists()


def test_a_restorer_refuses_a_scale_that_makes_the_image_too_large_or_too_small(monkeypatch) -> None:
    """What `measure --restore` and the napari plugin call: the image is refused, not restored for minutes."""
    from model.inference.images import ImageError
    from model.inference.restore import RestoreOptions, Restorer

    image = np.ones((128, 128), np.float32)
    monkeypatch.setenv("RECONSTRUCTION_GB_MAX_PIXELS", "1000000")
    for scale, message in ((8.0, "becomes 1024 x 1024 px (1 megapixels), above the limit of 1 megapixels"),
                           (0.1, "becomes 13 x 13 px: shrunk below 16 px a side")):
        with pytest.raises(ImageError, match=re.escape(message)):
            Restorer(RestoreOptions(method="bridge", scale=scale)).restore(image)
    mask, _ = Restorer(RestoreOptions(method="bridge", scale=7.8)).restore(image)  # 998 x 998: within the limit
    assert mask.shape == (128, 128)


@pytest.mark.parametrize("model, message", [
    ("nan-weights", "its weights hold NaN or infinite values"),
    ("overflow", "the model answers a blank 256x256 tile with NaN or infinite probabilities"),
])
def test_cli_a_model_that_answers_nan_is_one_line_before_any_work(run_cli, tmp_path, model, message) -> None:
    """Its NaN probabilities were read as boundary everywhere: an all-black map, exit 0."""
    from conftest import nan_models, one_error_line

    source = write(tmp_path / "in" / "grains.png", boundary_image((128, 128), 1))
    path = nan_models(tmp_path)[model]
    line = one_error_line(run_cli("predict", "--model", path, source, "--out", tmp_path / "out", "--no-progress"))
    assert message in line
    assert not (tmp_path / "out").exists()


def test_nan_probabilities_of_one_image_fail_that_image(models, tmp_path) -> None:
    """A model answering NaN only for some inputs: the image is named as failed, not written as all boundary."""
    from model.inference.images import ImageError
    from model.inference.predict import Predictor, load_model

    predictor = Predictor(load_model(models["free"]))
    image = np.ones((64, 64), np.float32)
    image[10, 10] = np.nan  # the identity model gives it back
    with pytest.raises(ImageError, match=r"the model answered NaN or infinite probabilities \(1 of 4,096 pixels\)"):
        predictor.predict(image, overlap=0)


def test_a_model_trained_by_train_restores_a_micrograph_folder(run_cli, trained_run, tiny_library, tmp_path) -> None:
    """End to end: `train` -> `predict` on images larger and smaller than its 64 px input."""
    from pipeline.store import LibraryStore

    store = LibraryStore.open(tiny_library)
    big = np.tile(store.read("micro", 1), (2, 3))[:100, :150]  # 100 x 150: several tiles
    write(tmp_path / "in" / "big.png", big)
    write(tmp_path / "in" / "small.png", store.read("micro", 2)[:40, :50])  # smaller than one tile
    result = run_cli("predict", "--model", trained_run[0] / "best_reconstruction_model.keras", tmp_path / "in",
                     "--out", tmp_path / "out", "--save-probability", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "tiles of up to 64x64" in result.output
    from model.inference.restore import DEFAULT_MIN_SPECK
    from model.inference.settings import load_settings, settings_path
    from model.methods import bridge, remove_specks

    model_path = trained_run[0] / "best_reconstruction_model.keras"
    stored = load_settings(model_path)  # `train` may write settings beside its model; else the defaults
    min_speck = stored.min_speck if settings_path(model_path).is_file() else DEFAULT_MIN_SPECK
    for name, shape in {"big": (100, 150), "small": (40, 50)}.items():
        mask = read(tmp_path / "out" / f"{name}.png")
        assert mask.shape == shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        probability = read(tmp_path / "out" / f"{name}{PROBABILITY_SUFFIX}")
        assert probability.shape == shape and probability.dtype == np.float32
        if stored.bridge:  # the run's tuning chose the bridge after the network: predict's default then
            expected = probability_to_mask(probability, stored.threshold, 0, stored.link_threshold)
            expected = remove_specks(bridge(remove_specks(expected, min_speck)), min_speck)
        else:
            expected = probability_to_mask(probability, stored.threshold, min_speck, stored.link_threshold)
        assert np.array_equal(mask, expected)


# --- methods, preparation and settings ---------------------------------------------------------
def specked_lines() -> np.ndarray:
    """60 x 80 background with one 2-px line (160 px) and a 3 x 3 speck touching nothing."""
    image = np.full((60, 80), 255, np.uint8)
    image[20:22, :] = 0
    image[40:43, 40:43] = 0
    return image


def test_min_speck_removes_isolated_specks_only(models, tmp_path) -> None:
    source = write(tmp_path / "in" / "s.png", specked_lines())
    for min_speck, speck_left in [(9, True), (10, False)]:
        out = tmp_path / f"out{min_speck}"
        report = predict_files(models["free"], [source], out, tile=32, overlap=8, min_speck=min_speck, progress=False)
        mask = read(out / "s.png")
        assert (mask[40:43, 40:43] == 0).all() == speck_left
        assert (mask[20:22] == 0).all() and (mask[:20] == 255).all()  # the line stays
        assert f"min-speck {min_speck} (option)" in report.used


def test_settings_file_gives_the_defaults_and_options_override_it(models, tmp_path) -> None:
    source = write(tmp_path / "in" / "s.png", specked_lines())
    model = tmp_path / "m.keras"
    model.write_bytes(models["free"].read_bytes())
    save_settings(model, InferenceSettings(threshold=0.7, min_speck=10, tta=True, chosen_on="val"))
    report = predict_files(model, [source], tmp_path / "a", tile=32, overlap=8, progress=False)
    assert report.used == (f"method model (from m.settings.json, {model}): threshold 0.7 (from m.settings.json), "
                           "link-threshold off (from m.settings.json), min-speck 10 (from m.settings.json), tta True (from m.settings.json)")
    assert (read(tmp_path / "a" / "s.png")[40:43, 40:43] == 255).all()  # the settings' speck filter ran
    report = predict_files(model, [source], tmp_path / "b", tile=32, overlap=8, threshold=0.5, min_speck=0,
                           tta=False, progress=False)
    assert "threshold 0.5 (option), link-threshold off (from m.settings.json), min-speck 0 (option), " \
        "tta False (option)" in report.used
    assert np.array_equal(read(tmp_path / "b" / "s.png"), specked_lines())


def test_settings_that_say_bridge_make_model_plus_bridge_the_default_method(models, tmp_path) -> None:
    """An identity network leaves a 6 px gap open; with `bridge` in its settings and no --method the
    bridge follows it and closes the gap; --method model is the network alone again."""
    image = np.full((64, 96), 255, np.uint8)
    image[30:32, :] = 0
    image[30:32, 40:46] = 255
    source = write(tmp_path / "in" / "gap.png", image)
    model = tmp_path / "m.keras"
    model.write_bytes(models["free"].read_bytes())
    save_settings(model, InferenceSettings(threshold=0.5, bridge=True, chosen_on="val"))
    report = predict_files(model, [source], tmp_path / "a", tile=32, overlap=8, progress=False)
    assert report.used.startswith(f"method model+bridge (from m.settings.json, {model}): threshold 0.5")
    assert (read(tmp_path / "a" / "gap.png")[30:32] == 0).all()
    report = predict_files(model, [source], tmp_path / "b", tile=32, overlap=8, method="model", progress=False)
    assert report.used.startswith(f"method model ({model}): threshold 0.5")
    np.testing.assert_array_equal(read(tmp_path / "b" / "gap.png"), image)


def test_tta_of_an_identity_model_is_the_identity(models, binary_dir, tmp_path) -> None:
    report = predict_files(models["free"], [binary_dir / "100x100.png"], tmp_path / "out", tile=64, overlap=16,
                           tta=True, progress=False)
    assert report.ok and "tta True (option)" in report.used
    np.testing.assert_array_equal(read(tmp_path / "out" / "100x100.png"), read(binary_dir / "100x100.png"))


def test_bridge_needs_no_model_and_closes_a_gap(tmp_path, monkeypatch) -> None:
    import model.pretrained

    monkeypatch.setattr(model.pretrained, "BUNDLED_MODEL", tmp_path / "absent.keras")
    image = np.full((64, 96), 255, np.uint8)
    image[30:32, :] = 0
    image[30:32, 40:46] = 255  # a 6 px gap
    source = write(tmp_path / "gap.png", image)
    report = predict_files(None, [source], tmp_path / "out", method="bridge", progress=False)
    assert report.ok and report.tile is None and "no model" in report.summary()
    assert report.used == "method bridge: min-speck 30 (default)"
    assert (read(tmp_path / "out" / "gap.png")[30:32] == 0).all()
    with pytest.raises(PredictError, match="no --model given"):
        predict_files(None, [source], tmp_path / "other", progress=False)
    assert not (tmp_path / "other").exists()


def test_scale_resamples_and_returns_the_input_size(models, tmp_path) -> None:
    image = np.full((90, 130), 255, np.uint8)
    image[40:44, :] = 0  # a 4 px line: 2 px at scale 0.5, 4 px again after
    source = write(tmp_path / "line.png", image)
    predict_files(models["free"], [source], tmp_path / "out", tile=32, overlap=8, scale=0.5, progress=False)
    np.testing.assert_array_equal(read(tmp_path / "out" / "line.png"), image)


def test_gray_micrograph_binarized_adaptively_despite_shading(models, tmp_path) -> None:
    """Grains shaded from 120 to 240 left to right, a boundary 50 gray levels darker than its surroundings."""
    shading = np.linspace(120, 240, 160)[None, :].repeat(100, 0)
    gray = shading.copy()
    gray[48:51, :] -= 50
    source = write(tmp_path / "gray.png", np.rint(gray).astype(np.uint8))
    predict_files(models["free"], [source], tmp_path / "out", tile=64, overlap=16, binarize="adaptive",
                  min_speck=0, progress=False)
    mask = read(tmp_path / "out" / "gray.png")
    assert (mask[48:51] == 0).all() and (mask[:45] == 255).all() and (mask[55:] == 255).all()
    predict_files(models["free"], [source], tmp_path / "otsu", tile=64, overlap=16, binarize="otsu",
                  min_speck=0, progress=False)
    assert (read(tmp_path / "otsu" / "gray.png")[:, :40] == 0).mean() > 0.9  # one global threshold fails here


def test_cli_prints_the_values_used(run_cli, models, tmp_path) -> None:
    source = write(tmp_path / "s.png", specked_lines())
    result = run_cli("predict", "--model", models["free"], source, "--out", tmp_path / "out", "--tile", "32",
                     "--no-progress", "--denoise", "median")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (f"method model (from free.settings.json, {models['free']}): threshold 0.5 (from "
                                             "free.settings.json), link-threshold off (from free.settings.json), "
                                             "min-speck 0 (from free.settings.json), "
                                             "tta False (from free.settings.json)")


def test_a_free_model_sees_a_small_image_whole_not_mirrored_out_to_the_tile(tmp_path) -> None:
    """An image side below the tile runs as one tile of that side rounded up to the model's multiple:
    with sides already multiples, the prediction is the model's answer on the whole image, exactly."""
    import keras

    from model.inference.predictor import Predictor

    inputs = keras.Input((None, None, 1))
    conv = keras.layers.Conv2D(1, 5, padding="same", kernel_initializer=keras.initializers.RandomUniform(seed=1))
    up = keras.layers.UpSampling2D(4)(keras.layers.MaxPooling2D(2)(keras.layers.MaxPooling2D(2)(conv(inputs))))
    model = keras.Model(inputs, keras.layers.Add()([conv(inputs), up]))  # border-sensitive, needs multiples of 4
    shapes: list[tuple[int, ...]] = []
    image = np.random.default_rng(0).random((48, 80), dtype=np.float32)
    for tta in (False, True):
        predictor = Predictor(model, tile=256, tta=tta)
        assert predictor.multiple == 4 and predictor.tile_for((48, 80)) == (48, 80)
        assert predictor.tile_for((41, 1000)) == (44, 256) and predictor.count_tiles((41, 1000), 64) == 5
        plain = predictor._plain
        predictor._plain = lambda tiles: shapes.append(tiles.shape) or plain(tiles)
        whole = np.asarray(model(image[None, :, :, None]))[0, :, :, 0]
        if tta:  # the mean over the 8 transforms of the whole image, quarter turns included
            from model.inference.postprocess import dihedral_mean
            whole = dihedral_mean(lambda b: np.asarray(model(b)), image[None, :, :, None])[0, :, :, 0]
        np.testing.assert_allclose(predictor.predict(image, overlap=64), whole, rtol=0, atol=1e-5)
    assert set(shapes) == {(1, 48, 80, 1), (1, 80, 48, 1)}


def test_a_free_model_with_another_size_rule_keeps_full_tiles() -> None:
    """A free model downsampling by strides (no pooling layer) cannot take every side: it keeps full tiles."""
    import keras

    from model.inference.predictor import Predictor

    inputs = keras.Input((None, None, 1))
    down = keras.layers.Conv2D(1, 3, strides=4, padding="same")(inputs)
    model = keras.Model(inputs, keras.layers.UpSampling2D(4)(down))
    predictor = Predictor(model, tile=64)
    assert predictor.multiple == 0 and predictor.tile_for((10, 30)) == (64, 64)
    assert predictor.predict(np.ones((10, 30), np.float32), overlap=16).shape == (10, 30)
