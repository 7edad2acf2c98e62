"""What `train` tells a user: where its run is, what it wrote, and nothing that looks like an error."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, SMALL_RUN

from model.step_time import warning_line


def test_train_prints_its_run_directory_and_the_files_it_wrote(trained_run):
    run_dir, output = trained_run
    lines = output.splitlines()
    assert f"run directory: {run_dir}" in lines
    wrote = [line for line in lines if line.startswith(f"wrote {run_dir}: ")]
    assert len(wrote) == 1 and wrote == lines[-1:]
    files = wrote[0].split(": ", 1)[1].split(", ")
    assert files == sorted(p.name + "/" * p.is_dir() for p in run_dir.iterdir())
    assert {"best_reconstruction_model.keras", "checkpoints/", "history.csv", "report.md"} <= set(files)


def test_paper_preset_without_gpu_warns_once_and_stderr_stays_clean(tiny_library, tmp_path):
    # The paper preset's code path at a toy width (a real step of it would take minutes), in a
    # fresh process as a user runs it: TensorFlow's native logger is set up only once per process.
    run_dir = tmp_path / "paper"
    result = subprocess.run(
        [sys.executable, "cli.py", "train", "--data", str(tiny_library), "--out", str(run_dir), "--epochs", "1",
         *SMALL_RUN[2:], "--preset", "paper", "--filters", "2", "--depth", "1", "--kernel-size", "3"],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: no GPU")]
    assert len(warnings) == 1, result.stdout
    assert "one step of 4 at 64 px" in warnings[0] and "`--preset small`" in warnings[0]
    assert "E0000" not in result.stderr and "oneDNN" not in result.stderr, result.stderr


def test_warning_line_names_step_and_epoch_time():
    line = warning_line(31.2, 4, 256, 2625)
    assert line == ("warning: no GPU: the paper preset took 31 s for one step of 4 at 256 px here, "
                    "about 22.8 h an epoch of 2625 steps; `--preset small` trains on a CPU")
    assert "an epoch" not in warning_line(0.5, 4, 64, None)


def test_a_run_that_diverges_fails_in_one_line_instead_of_exit_0_without_a_model(run_cli, tiny_library, tmp_path):
    # --lr 1e308 passes the option checks (a finite number > 0) and makes every loss NaN: no epoch is
    # ever best, so no model exists. It said so and exited 0, as if the run had trained one.
    run_dir = tmp_path / "diverged"
    result = run_cli("train", "--data", tiny_library, "--out", run_dir, "--epochs", "1", *SMALL_RUN, "--lr", "1e308")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: no epoch had a finite validation loss") and "no model was written" in line, line
    assert not list(run_dir.glob("*.keras"))
