"""The last traceback paths of the hostile run (issue 33, item 8): one line, a non-zero exit, nothing left."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import one_error_line


def test_import_with_out_under_proc_is_one_line(run_cli, tmp_path, tiny_library):
    png = tmp_path / "png"
    assert run_cli("export", tiny_library, "--out", png, "--count", 2).exit_code == 0
    line = one_error_line(run_cli("import", png, "--out", "/proc/x.zarr"))
    assert line.startswith("Error: cannot write /proc/x.zarr: ") and "nothing written" in line, line
    assert not Path("/proc/x.zarr").exists()


def test_evaluate_with_out_under_proc_is_one_line(run_cli, tiny_library):
    result = run_cli("evaluate", "--data", tiny_library, "--baseline", "identity", "--out", "/proc/ev",
                     "--no-progress")
    line = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert line.startswith("Error: ") and "/proc/ev" in line and "nothing written" in line, line


def test_info_on_a_name_too_long_for_the_filesystem_is_one_short_line(run_cli, tmp_path):
    line = one_error_line(run_cli("info", tmp_path / ("a" * 5000)))
    assert "File name too long" in line and len(line) < 300, line



# The hostile run of benchmarks/hostile.py (issue 33's closing check): numbers past any machine.

def test_generate_with_a_400_digit_count_is_one_line(run_cli, tmp_path):
    line = one_error_line(run_cli("generate", "--count", "9" * 400, "--size", 64, "--out", tmp_path / "x.zarr",
                                  "--workers", 0))
    assert "need about 10^402 bytes on disk" in line and "nothing was written" in line and len(line) < 300, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", ["99999999999999999999", "9" * 400])
def test_generate_with_a_size_past_the_largest_is_one_line_without_the_train_warning(run_cli, tmp_path, size):
    line = one_error_line(run_cli("generate", "--count", 4, "--size", size, "--out", tmp_path / "x.zarr"))
    assert "is not in the range 64<=x<=65536" in line and len(line) < 300, line
    assert list(tmp_path.iterdir()) == []


def test_a_config_of_a_400_digit_size_is_a_config_error():
    from pipeline.config import ConfigError, GenerationConfig

    with pytest.raises(ConfigError, match="size must be at most 65536 px"):
        GenerationConfig(size=10**400)


@pytest.mark.parametrize("option, value, words", [
    ("--filters", "99999999999999999999", "make a model of 1.94e43 parameters"),
    ("--filters", "9" * 400, "parameters, more than the 1,000,000,000 train builds"),
    ("--kernel-size", "99999999999999999999", "parameters, more than the 1,000,000,000 train builds"),
    ("--depth", "99999999999999999999", "is more than the 16 levels train builds"),  # counting them never ended
])
def test_train_with_a_model_past_any_machine_is_one_line(run_cli, tmp_path, tiny_library, option, value, words):
    line = one_error_line(run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--preset", "small",
                                  "--dry-run", option, value))
    assert words in line and len(line) < 400, line


def test_an_option_value_of_5000_characters_is_not_echoed_whole(run_cli, tmp_path):
    line = one_error_line(run_cli("export", tmp_path, "--out", tmp_path / "out", "--start", "x" * 5000))
    assert "Invalid value for '--start'" in line and "(5,002 characters)" in line and len(line) < 300, line


@pytest.mark.parametrize("command", [["info"], ["verify"], ["export", "--out", "out"]])
def test_a_store_name_with_a_newline_is_still_one_line(run_cli, tmp_path, command):
    line = one_error_line(run_cli(command[0], tmp_path / "a\nb.zarr", *command[1:]))
    assert line.endswith("a\\nb.zarr does not exist"), line


def test_train_with_holes_past_a_float_is_one_line(run_cli, tmp_path, tiny_library):
    # 9 px x 1e308 is inf: round() of it was an OverflowError traceback.
    line = one_error_line(run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--preset", "small",
                                  "--dry-run", "--corrupt", "--corrupt-scale", "1e308"))
    assert "--corrupt-scale 1e+308 makes holes of up to inf px, larger than the 64 px images" in line, line


@pytest.mark.parametrize("min_speck", ["99999999999999999999", "9" * 30, "9" * 400])
def test_predict_with_a_speck_filter_past_any_image_removes_every_speck(run_cli, tmp_path, tiny_library, min_speck):
    # It was "failed: 0.png: OverflowError: int too large to convert to float" for every image.
    from pipeline.interchange import export_pairs

    export_pairs(tiny_library, tmp_path / "png", count=1)
    result = run_cli("predict", tmp_path / "png" / "label", "--method", "bridge", "--min-speck", min_speck,
                     "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0 and "Error" not in result.output, result.output
    assert (tmp_path / "out" / "0.png").is_file()


def _label_probabilities(model, reader, indices, batch, tta):
    """The sweep's model stand-in: each sample's own boundary map as P(background)."""
    for index in indices:
        yield int(index), (reader.read_pair(int(index))[1] / 255).astype(np.float32)


def test_tune_never_chooses_a_setting_whose_objective_is_nan(monkeypatch, tiny_library):
    # `min` over rows whose first objective was NaN (grain ARI undefined: no grain at that
    # setting) kept the first row, whatever the others scored.
    import model.training.tune as tune
    from model.data import LibraryReader

    monkeypatch.setattr(tune, "_probabilities", _label_probabilities)
    real, calls = tune.objective, []

    def objective(metrics):
        calls.append(metrics)
        return math.nan if len(calls) == 1 else real(metrics)

    monkeypatch.setattr(tune, "objective", objective)
    tuning = tune.sweep(None, LibraryReader(tiny_library), "val", samples=2)
    first, best = tuning.sweep[0], tuning.settings.details["best"]
    assert math.isnan(first["objective"]) and best["objective"] is not None and not math.isnan(best["objective"])
    assert best["objective"] == min(row["objective"] for row in tuning.sweep[1:])
    json.dumps(tuning.settings.to_dict(), allow_nan=False)  # the settings file is plain JSON: no NaN


def test_tune_where_no_setting_scores_writes_nothing_and_says_why(monkeypatch, tiny_library):
    import model.training.tune as tune
    from model.data import LibraryReader

    monkeypatch.setattr(tune, "_probabilities", _label_probabilities)
    monkeypatch.setattr(tune, "objective", lambda metrics: math.nan)
    with pytest.raises(tune.TuneError, match="no setting can be scored on the 2 val samples"):
        tune.sweep(None, LibraryReader(tiny_library), "val", samples=2)


def test_tune_with_a_batch_past_int64_is_not_a_tensorflow_traceback(tiny_library):
    from model.scoring.predictions import predict_probabilities

    class Model:
        def predict_on_batch(self, batch):
            return np.ones(batch.shape[:3] + (1,), np.float32)

    from model.data import LibraryReader

    reader = LibraryReader(tiny_library)
    got = list(predict_probabilities(Model(), reader, reader.indices("val")[:2], 10**20))
    assert len(got) == 2 and got[0][1].shape == (64, 64)


@pytest.mark.parametrize("command", ["predict", "measure", "evaluate"])
def test_a_truncated_tiff_is_one_line_without_pillow_or_opencv_noise(tmp_path, tiny_library, command):
    # Pillow's "UserWarning: Corrupt EXIF data" (with its source line) and OpenCV's
    # "[ERROR:0@0.5] global grfmt_tiff.cpp ... TIFF_Error" lines came before the one line.
    import subprocess
    import sys

    import cv2

    from conftest import REPO

    data = cv2.imencode(".tiff", np.full((64, 64), 255, np.uint8))[1].tobytes()
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(32 if command == "evaluate" else 1):  # the tiny library: 32 samples
        (folder / f"{k}.{'png' if command == 'evaluate' else 'tif'}").write_bytes(data[: len(data) // 2])
    args = {"predict": ["predict", folder, "--method", "bridge", "--no-progress", "--out", tmp_path / "out"],
            "measure": ["measure", folder, "--out", tmp_path / "out"],
            "evaluate": ["evaluate", "--data", tiny_library, "--split", "all", "--predictions", folder, "--out",
                         tmp_path / "out", "--no-progress"]}[command]
    run = subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True, text=True)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert "0.tif: cannot be decoded as an image" in lines[0] or "0.png is not an 8-bit gray PNG" in lines[0], lines


def test_an_empty_worker_timeout_setting_is_one_line_not_an_index_error():
    # DASK_RECONSTRUCTION_GB__WORKER_TIMEOUT= (set to nothing): dask's parse_timedelta("") raised IndexError.
    import dask

    from pipeline.executors import ExecutorError, worker_timeout

    with dask.config.set({"reconstruction-gb.worker-timeout": ""}):
        with pytest.raises(ExecutorError, match="must be a duration such as 60s, got ''"):
            worker_timeout()


@pytest.mark.parametrize("content", [b"", b"this is not a model\n"])
def test_train_init_from_a_file_that_is_no_keras_zip_says_so(run_cli, tmp_path, tiny_library, content):
    # Keras' own reason was "File not found: filepath=...": the file was there.
    model = tmp_path / "model.keras"
    model.write_bytes(content)
    result = run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--preset", "small", "--epochs", 1,
                     "--limit", 8, "--init", model)
    line = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert line == f"Error: --init {model}: not a .keras file (not a zip archive)", line
