"""`cli.py evaluate`: perfect and do-nothing predictions, baselines, a trained model, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import psutil
import pytest

from conftest import REPO, declared_png, one_error_line
from pipeline.config import GenerationConfig
from pipeline.store import LibraryStore

TEST_SPLIT = [1, 2, 15, 17, 20, 28]  # the tiny library's test samples (split rule, seed 0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_library):
    """The tiny library as PNGs: micro/<i>.png (the inputs) and label/<i>.png (the ground truth)."""
    from click.testing import CliRunner

    from cli import cli

    folder = tmp_path_factory.mktemp("png") / "png"
    result = CliRunner().invoke(cli, ["export", str(tiny_library), "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def scores(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_ground_truth_as_predictions_scores_perfectly(run_cli, tmp_path, tiny_library, exported):
    result = run_cli("evaluate", "--data", tiny_library, "--predictions", exported / "label", "--out", tmp_path,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    metrics = scores(tmp_path)
    assert metrics["samples"] == len(TEST_SPLIT) and metrics["split"] == "test"
    assert metrics["miou"] == 1 and metrics["boundary_iou"] == 1 and metrics["gap_recall"] == 1
    assert metrics["spurious_rate"] == 0 and metrics["boundary_f1"] == 1
    assert metrics["grain_count_error"] == 0 and metrics["grain_ari"] == 1 and metrics["astm_g_error"] == 0
    assert "| predictions label | 1.0000 | 1.0000 | 1.000 |" in result.output
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.json", "report.md", "evaluation.png"}


def test_inputs_as_predictions_equal_the_identity_baseline(run_cli, tmp_path, tiny_library, exported):
    for name, args in {"png": ["--predictions", exported / "micro"], "identity": ["--baseline", "identity"]}.items():
        result = run_cli("evaluate", "--data", tiny_library, *args, "--out", tmp_path / name, "--split", "all",
                         "--no-progress")
        assert result.exit_code == 0, result.output
    png, identity = scores(tmp_path / "png"), scores(tmp_path / "identity")
    assert png["samples"] == identity["samples"] == 32
    for key in ("miou", "boundary_iou", "gap_recall", "spurious_rate", "boundary_f1", "grain_count_error",
                "grain_ari", "astm_g_error"):
        assert png[key] == identity[key], key
    assert identity["gap_recall"] == 0  # the input never has an erased pixel


def test_bridge_beats_identity_on_grain_count_error(run_cli, tmp_path, tiny_library):
    result = run_cli("evaluate", "--data", tiny_library, "--baseline", "bridge", "--split", "all", "--out", tmp_path,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    metrics = scores(tmp_path)
    assert metrics["grain_count_error"] < metrics["baselines"]["identity"]["grain_count_error"]
    assert metrics["gap_recall"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "| bridge |" in report and "| identity |" in report


def test_a_trained_model_scores_as_its_training_run_did(run_cli, tmp_path, tiny_library, trained_run):
    model = trained_run[0] / "best_reconstruction_model.keras"
    result = run_cli("evaluate", "--data", tiny_library, "--model", model, "--limit", "4", "--out", tmp_path,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    mine, runs = scores(tmp_path), scores(trained_run[0])
    assert mine["samples"] == runs["samples"] == 4
    # The same rows (model+bridge first when the run's tuning chose the bridge), with the same figures.
    assert mine["headline"] == runs["headline"] and list(mine["rows"]) == list(runs["rows"])
    for key in ("miou", "gap_recall", "grain_count_error", "grain_ari"):
        assert mine[key] == runs[key], key
        for row in runs["rows"]:
            assert mine["rows"][row][key] == runs["rows"][row][key], (row, key)


@pytest.fixture
def damaged(tmp_path, exported, tiny_library):
    """Copies of the label folder with one file missing, one of the wrong size; damaged copies of the library."""
    import shutil

    missing = shutil.copytree(exported / "label", tmp_path / "missing")
    (missing / "15.png").unlink()
    resized = shutil.copytree(exported / "label", tmp_path / "resized")
    cv2.imwrite(str(resized / "17.png"), cv2.imread(str(resized / "17.png"), cv2.IMREAD_UNCHANGED)[:32])
    lost = shutil.copytree(tiny_library, tmp_path / "lost.zarr")
    (lost / "label" / "c.7.0.0").unlink()  # samples 14 and 15 (2 a shard); 15 is a test sample
    flipped = shutil.copytree(tiny_library, tmp_path / "flipped.zarr")
    data = bytearray((flipped / "micro" / "c.10.0.0").read_bytes())  # samples 20 and 21
    data[30] ^= 4
    (flipped / "micro" / "c.10.0.0").write_bytes(bytes(data))
    garbage = shutil.copytree(tiny_library, tmp_path / "garbage.zarr")
    (garbage / "split" / "c.0").write_bytes(b"garbage")
    return {"missing": missing, "resized": resized, "lost": lost, "flipped": flipped, "garbage": garbage}


@pytest.mark.parametrize("args, message", [
    (["--predictions", "{missing}"], "lacks 1 of the 6 predictions of the split: 15.png"),
    (["--predictions", "{resized}"], "17.png is 64x32; the library's images are 64x64"),
    (["--predictions", "{tmp}/nowhere"], "is not a directory"),
    (["--baseline", "identity", "--data", "{empty}"], "has no done samples in the test split"),
    (["--baseline", "identity", "--data", "{tmp}/nothing.zarr"], "does not exist"),
    (["--baseline", "closing"], "Invalid value for '--baseline'"),
    (["--baseline", "identity", "--predictions", "{missing}"], "give one of --model, --predictions, --baseline"),
    (["--baseline", "identity", "--threshold", "0.6", "--tta"], "--threshold, --tta apply only to a model"),
    (["--model", "{tmp}/none.keras"], "none.keras"),
    # A done sample's lost image used to be scored as all white (mIoU 0.9507 -> 0.9092), exit 0.
    (["--baseline", "identity", "--data", "{lost}"], "sample 15: label: shard file label/c.7.0.0 is missing"),
    (["--baseline", "identity", "--data", "{flipped}"], "sample 20: micro: chunk fails its CRC32C checksum"),
    (["--baseline", "identity", "--data", "{garbage}"], "cannot read the per-sample array 'split'"),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(run_cli, tmp_path, tiny_library, damaged, args, message):
    LibraryStore.create(tmp_path / "empty.zarr", GenerationConfig(size=64), seed=0, count=5)
    names = {"tmp": tmp_path, "empty": tmp_path / "empty.zarr", **damaged}
    args = [a.format(**names) for a in args]
    if "--data" not in args:
        args += ["--data", str(tiny_library)]
    line = one_error_line(run_cli("evaluate", *args, "--out", tmp_path / "out", "--no-progress"))
    assert message in line
    assert not (tmp_path / "out").exists()


def test_a_prediction_declaring_32000_px_is_refused_from_its_header(run_cli, tmp_path, tiny_library, exported):
    """Its 2.1 GB of pixels used to be decoded (8 s) before its size was compared with the library's."""
    import shutil

    predictions = shutil.copytree(exported / "label", tmp_path / "predictions")
    (predictions / "15.png").write_bytes(declared_png(32000, 32000))
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--predictions", predictions,
                                  "--out", tmp_path / "out", "--no-progress"))
    assert line == f"Error: {predictions / '15.png'} is 32000x32000; the library's images are 64x64"
    assert not (tmp_path / "out").exists()


def test_a_read_only_out_is_one_line_before_any_scoring(run_cli, tiny_library):
    # /proc/sys: a folder nobody may create files in, not even root.
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--baseline", "identity", "--out",
                                  "/proc/sys/rgb-evaluation", "--no-progress"))
    assert line == ("Error: --out: cannot create /proc/sys/rgb-evaluation: /proc/sys is not writable; "
                    "nothing was written")


def test_a_model_for_three_channel_inputs_is_one_clear_line(run_cli, tmp_path, tiny_library):
    import keras

    inputs = keras.Input((64, 64, 3))
    keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)).save(tmp_path / "rgb.keras")
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--model", tmp_path / "rgb.keras",
                                  "--out", tmp_path / "out", "--no-progress"))
    assert "the model maps (64, 64, 3) to (64, 64, 1); a restoration model takes (S, S, 1)" in line
    assert not (tmp_path / "out").exists()


def test_scoring_in_worker_processes_gives_the_same_numbers(run_cli, tmp_path, tiny_library, monkeypatch):
    import model.scoring.evaluate

    run_cli("evaluate", "--data", tiny_library, "--baseline", "bridge", "--split", "all", "--out", tmp_path / "one",
            "--no-progress")
    monkeypatch.setattr(model.scoring.evaluate, "SAMPLES_PER_PROCESS", 1)
    monkeypatch.setattr(model.scoring.evaluate, "SCORING_PROCESSES", 2)
    result = run_cli("evaluate", "--data", tiny_library, "--baseline", "bridge", "--split", "all",
                     "--out", tmp_path / "two", "--no-progress")
    assert result.exit_code == 0, result.output
    assert scores(tmp_path / "one") == scores(tmp_path / "two")
    assert (tmp_path / "one" / "report.md").read_text() == (tmp_path / "two" / "report.md").read_text()


def test_scoring_processes_end_when_evaluate_is_killed(tmp_path):
    """`kill -9` of an evaluation runs no clean-up: its scoring processes must still go, not idle forever."""
    script = ("import time\n"
              "from model.scoring.evaluate import scoring_pool\n"
              "pool = scoring_pool(2)\n"
              "for future in [pool.submit(time.sleep, 0.5) for _ in range(2)]:\n"
              "    future.result()\n"
              "print('ready', flush=True)\n"
              "time.sleep(3600)\n")  # until killed below
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    workers = []
    try:
        assert process.stdout.readline().strip() == "ready"
        workers = [p for p in psutil.Process(process.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert workers, "no scoring process was started"
        process.kill()
        process.wait()
        _, alive = psutil.wait_procs(workers, timeout=120)
        assert not alive, f"scoring processes outlived their parent: {[p.pid for p in alive]}"
    finally:
        process.kill()
        for worker in workers:
            try:
                worker.kill()
            except psutil.NoSuchProcess:
                pass
