"""`cli.py train` on a tiny library: run directory, reload, resume after a kill, bad input."""

from __future__ import annotations

import csv
import json
import re

import keras
import numpy as np
import pytest

import model.training.train
from conftest import SMALL_RUN as SMALL, one_error_line
from model.data import LibraryReader
from model.inference.postprocess import probability_to_mask
from model.inference.settings import load_settings
from pipeline.config import GenerationConfig
from pipeline.store import LibraryStore



def history(run_dir):
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows):
    """History rows without their wall times (the only column that may differ between runs)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_a_run_writes_every_file_and_the_best_model_reloads_plainly(trained_run, tiny_library):
    run_dir, output = trained_run
    assert "samples: train 14, val 2, test 4" in output
    assert "Epoch 3/3" in output
    files = {p.name for p in run_dir.iterdir()}
    assert {"best_reconstruction_model.keras", "checkpoints", "config.json", "history.csv",
            "learning_curves.png", "metrics.json", "report.md", "evaluation.png"} <= files
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["epoch-0003"]
    assert [row["epoch"] for row in history(run_dir)] == ["1", "2", "3"]

    config = json.loads((run_dir / "config.json").read_text())
    assert config["options"]["epochs"] == 3 and config["options"]["preset"] == "small"
    assert config["store"]["path"] == str(tiny_library) and config["store"]["config"]["size"] == 64
    assert config["model"] == {"filters": 16, "depth": 3, "kernel_size": 3, "input_size": 64,
                               "parameters": config["model"]["parameters"]}
    assert {"tensorflow", "keras", "numpy", "zarr"} <= set(config["versions"])

    # No custom objects, safe mode: a plain Keras model.
    best = keras.models.load_model(run_dir / "best_reconstruction_model.keras")
    assert best.predict(np.zeros((2, 64, 64, 1), np.float32), verbose=0).shape == (2, 64, 64, 1)

    # The printed test mIoU is Keras' MeanIoU over every test pixel, computed here independently,
    # with the threshold and speck filter the run chose on the validation split and stored.
    settings = load_settings(run_dir / "best_reconstruction_model.keras")
    assert settings.chosen_on.startswith("val split of")
    reader = LibraryReader(tiny_library, limit=20)
    meter = keras.metrics.MeanIoU(num_classes=2)
    for index in reader.indices("test"):
        micro, label = reader.read_pair(index)
        probability = best.predict(micro[None, ..., None] / np.float32(255), verbose=0)
        mask = probability_to_mask(probability[0, ..., 0], settings.threshold, settings.min_speck,
                                   settings.link_threshold)
        meter.update_state((label > 127).astype(np.int32), (mask == 255).astype(np.int32))
    scored = json.loads((run_dir / "metrics.json").read_text())
    assert scored["samples"] == 4 and scored["split"] == "test"
    assert scored["rows"]["model"]["miou"] == pytest.approx(float(meter.result()), abs=1e-6)
    # The evaluation table: the model's default method first (model+bridge when the tuning chose the
    # bridge, as `predict` runs it without --method), the network alone, then the baselines.
    headline = "model+bridge" if settings.bridge else "model"
    assert scored["headline"] == headline and scored["miou"] == scored["rows"][headline]["miou"]
    rows = [line.split(" | ")[:2] for line in output.splitlines() if line.startswith("| ")][2:]
    assert rows == [[f"| {name}", f"{scored['rows'][name]['miou']:.4f}"] for name in scored["rows"]]
    assert [name for name, _ in rows] == [f"| {headline}", *["| model"] * settings.bridge, "| identity", "| bridge"]
    # Header, rule, three rows, and the model's output followed by the bridge when the tuning chose that.
    assert (run_dir / "report.md").read_text().count("\n| ") == 5 + settings.bridge


def test_resume_after_a_kill_continues_at_the_next_epoch_as_if_never_stopped(run_cli, tmp_path, monkeypatch,
                                                                               tiny_library, trained_run):
    run_dir = tmp_path / "run"
    checkpoint = model.training.train._Run._checkpoint

    def killed_after_epoch_two(self, keras_model):
        checkpoint(self, keras_model)
        if self.state.epoch == 2:
            raise KeyboardInterrupt  # as a kill between epochs 2 and 3

    monkeypatch.setattr(model.training.train._Run, "_checkpoint", killed_after_epoch_two)
    result = run_cli("train", "--data", tiny_library, "--out", run_dir, "--epochs", "3", *SMALL)
    assert result.exit_code != 0
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.undo()

    result = run_cli("train", "--out", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 2" in result.output and "Epoch 3/3" in result.output
    assert "Epoch 1/3" not in result.output
    # Weights, optimizer and order of epoch 3 are those of the uninterrupted run.
    assert without_seconds(history(run_dir)) == without_seconds(history(trained_run[0]))
    assert json.loads((run_dir / "metrics.json").read_text()) == \
        json.loads((trained_run[0] / "metrics.json").read_text())


def test_early_stopping_counts_epochs_without_a_lower_validation_loss():
    state = model.training.train.RunState()
    improved = [state.end_epoch({"epoch": e, "val_loss": v}, patience=2)
                for e, v in enumerate([0.5, 0.4, 0.45, float("nan")], start=1)]
    assert improved == [True, True, False, False]
    assert (state.epoch, state.best_epoch, state.best_val_loss, state.wait) == (4, 2, 0.4, 2)
    assert state.stopped_early


def test_resume_of_a_finished_run_trains_no_more_and_more_epochs_continue_it(run_cli, tmp_path, trained_run):
    import shutil

    run_dir = shutil.copytree(trained_run[0], tmp_path / "run")
    result = run_cli("train", "--out", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert "run finished at epoch 3; nothing left to train" in result.output and "Epoch" not in result.output
    result = run_cli("train", "--out", run_dir, "--resume", "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 3" in result.output and "Epoch 4/4" in result.output
    assert [row["epoch"] for row in history(run_dir)] == ["1", "2", "3", "4"]


def test_dry_run_describes_and_writes_nothing(run_cli, tmp_path, tiny_library):
    result = run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "samples: train 23, val 3, test 6" in result.output
    assert "157,605,505 parameters" in result.output
    assert not (tmp_path / "run").exists()


def test_mixed_precision_trains_and_exports_a_float32_model(run_cli, tmp_path, tiny_library):
    result = run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--epochs", "1", *SMALL,
                     "--mixed-precision", "--loss", "bce+dice")
    assert result.exit_code == 0, result.output
    best = keras.models.load_model(tmp_path / "run" / "best_reconstruction_model.keras")
    assert best.get_layer("enc1_conv1").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # the run restores the policy


@pytest.fixture
def empty_store(tmp_path):
    """A store with its arrays but no sample done."""
    LibraryStore.create(tmp_path / "empty.zarr", GenerationConfig(size=64), seed=0, count=10)
    return tmp_path / "empty.zarr"


@pytest.mark.parametrize("args, message", [
    (["--data", "{missing}"], "does not exist"),
    (["--data", "{tmp}"], "is not a Reconstruction-GB store"),
    (["--data", "{empty}"], "has no done samples in the train split"),
    (["--data", "{tiny}", "--depth", "7"], "input size 64 is not divisible by 2^depth = 128"),
    (["--data", "{tiny}", "--batch", "0"], "Invalid value for '--batch': 0 is not in the range x>=1"),
    (["--data", "{tiny}", "--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range x>=1"),
    (["--data", "{tiny}", "--preset", "huge"], "Invalid value for '--preset': 'huge' is not one of"),
    (["--data", "{tiny}", "--loss", "l2"], "Invalid value for '--loss': 'l2' is not one of"),
    (["--data", "{tiny}", "--out", "{tiny}"], "itself; choose a folder outside it"),  # a run directory in the store
    (["--out", "{tmp}", "--resume"], "holds no run to resume"),
    ([], "Missing option '--data'"),
    (["--data", "{garbage}"], "cannot read the per-sample array 'split'"),
    (["--data", "{tiny}", "--init", "{missing}"], "no such model file"),
    (["--data", "{tiny}", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    # Trained on NaN losses and exited 0 without a model.
    (["--data", "{tiny}", "--loss", "bce+cldice", "--cldice-weight", "inf"],
     "--cldice-weight must be a finite number >= 0, got inf"),
    # TensorFlow tracebacks, after trying to allocate the model.
    (["--data", "{tiny}", "--filters", "100000"], "filters 100000, depth 3 and kernel size 3 make a model of"),
    (["--data", "{tiny}", "--kernel-size", "1000"], "more than the 1,000,000,000 train builds"),
    (["--data", "{tiny}", "--kernel-size", "99"], "kernel size 99 is larger than the 64 px input"),
    (["--data", "{tiny}", "--corrupt", "--corrupt-scale", "inf"], "--corrupt-scale must be a finite number > 0, got inf"),
    (["--data", "{tiny}", "--corrupt", "--corrupt-scale", "100"],
     "--corrupt-scale 100 makes holes of up to 900 px, larger than the 64 px images"),
    (["--data", "{tiny}", "--out", "/proc/sys/rgb-run"],  # a read-only folder, even for root
     "--out: cannot create /proc/sys/rgb-run: /proc/sys is not writable; nothing was written"),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(run_cli, tmp_path, tiny_library, empty_store, args,
                                                         message):
    import shutil

    garbage = shutil.copytree(tiny_library, tmp_path / "garbage.zarr")
    (garbage / "split" / "c.0").write_bytes(b"garbage")
    names = {"missing": tmp_path / "missing.zarr", "tmp": tmp_path, "empty": empty_store, "tiny": tiny_library,
             "garbage": garbage}
    args = [a.format(**names) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert message in one_error_line(run_cli("train", "--preset", "small", *args))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_lost_training_image_stops_the_run_naming_the_sample(run_cli, tmp_path, tiny_library):
    import shutil

    lost = shutil.copytree(tiny_library, tmp_path / "lost.zarr")
    (lost / "micro" / "c.0.0.0").unlink()  # samples 0 and 1, both in the train split
    result = run_cli("train", "--data", lost, "--out", tmp_path / "run", "--epochs", "1", *SMALL)
    line = result.output.strip().splitlines()[-1]  # after the line naming the splits
    assert result.exit_code == 1 and line.startswith("Error: ") and "Traceback" not in result.output
    assert re.search(r"sample [01]: micro: shard file micro/c\.0\.0\.0 is missing; run `python cli.py verify", line)


def test_resume_refuses_options_that_would_change_the_run(run_cli, tmp_path, trained_run):
    import shutil

    run_dir = shutil.copytree(trained_run[0], tmp_path / "run")
    line = one_error_line(run_cli("train", "--out", run_dir, "--resume", "--loss", "dice", "--epochs", "4"))
    assert "--resume continues the run with its own options" in line and "--loss ('bce' -> 'dice')" in line


def test_kill_9_mid_run_then_resume_matches_the_uninterrupted_run(run_cli, tmp_path, tiny_library, trained_run):
    """A real SIGKILL of a training process, at a random point after its first checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    run_dir = tmp_path / "run"
    log = tmp_path / "train.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "cli.py", "train", "--data", str(tiny_library), "--out",
                                    str(run_dir), "--epochs", "3", *SMALL], cwd=REPO, stdout=output,
                                   stderr=subprocess.STDOUT)
    # The event is the first checkpoint (or the process's end): no wall-clock guess, which a
    # loaded machine outlasts while training is still running.
    while not (run_dir / "checkpoints" / "epoch-0001").exists() and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, (f"training exited ({process.returncode}) before its first checkpoint was seen; "
                                    f"it printed:\n{log.read_text()[-2000:]}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert not (run_dir / "metrics.json").exists(), f"training finished before the kill (checkpoints: {checkpoints})"

    result = run_cli("train", "--out", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch" in result.output
    assert not list((run_dir / "checkpoints").glob("*.partial"))
    assert without_seconds(history(run_dir)) == without_seconds(history(trained_run[0]))


def test_a_half_written_checkpoint_is_ignored_on_resume(run_cli, tmp_path, trained_run):
    import shutil

    run_dir = shutil.copytree(trained_run[0], tmp_path / "run")
    partial = run_dir / "checkpoints" / "epoch-0004.partial"
    partial.mkdir()
    (partial / "model.keras").write_bytes(b"cut short")  # a kill while epoch 4 was being saved
    result = run_cli("train", "--out", run_dir, "--resume", "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 3" in result.output and "Epoch 4/4" in result.output
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["epoch-0004"]


def test_init_starts_from_a_trained_models_weights(run_cli, tmp_path, trained_run, tiny_library):
    start = trained_run[0] / "best_reconstruction_model.keras"
    run_dir = tmp_path / "tuned"
    # A learning rate this small leaves the weights where --init put them.
    result = run_cli("train", "--data", tiny_library, "--out", run_dir, "--epochs", "1", *SMALL,
                     "--init", start, "--lr", "1e-12")
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "config.json").read_text())["options"]["init"] == str(start.absolute())
    tuned = keras.models.load_model(run_dir / "best_reconstruction_model.keras")
    source = keras.models.load_model(start)
    kernels = [(a, b) for a, b in zip(source.get_weights(), tuned.get_weights()) if a.ndim == 4]
    assert kernels and all(np.allclose(a, b, atol=1e-6) for a, b in kernels)
    fresh = keras.models.load_model(trained_run[0] / "checkpoints" / "epoch-0003" / "model.keras")
    assert all(a.shape == b.shape for a, b in zip(fresh.get_weights(), tuned.get_weights()))


def test_init_from_a_model_with_a_lambda_layer_quotes_keras_safe_mode(run_cli, tmp_path, tiny_library):
    inputs = keras.Input((64, 64, 1))
    risky = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    risky.save(tmp_path / "lambda.keras")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--epochs", "1", *SMALL,
                     "--init", tmp_path / "lambda.keras")
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: --init {tmp_path / 'lambda.keras'}: not a readable Keras model (ValueError: "), last
    assert "Lambda" in last and "safe_mode" in last, last
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_init_from_a_model_of_another_size_is_one_line(run_cli, tmp_path, trained_run, tiny_library):
    start = trained_run[0] / "best_reconstruction_model.keras"
    result = run_cli("train", "--data", tiny_library, "--out", tmp_path / "run", "--epochs", "1", *SMALL,
                     "--filters", "3", "--init", start)
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: --init ") and "its layers differ from this run's network" in last
    assert not (tmp_path / "run").exists()
