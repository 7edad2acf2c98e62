"""Ctrl-C and SIGTERM during any command: one line saying what is kept and how to go on, exit 130 (Ctrl-C)
or 143 (SIGTERM), never click's "Aborted!" with exit 1, a traceback, or a silent death (issue 33, item 8)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

CLI = [sys.executable, str(REPO / "cli.py")]


@pytest.mark.parametrize("command, line", [
    ("measure", "interrupted: the images measured so far are kept, whole, but no summary was written; "
                "run the same command again"),
    ("evaluate", "interrupted: nothing was written; run the same command again"),
    ("predict", "interrupted: the images restored so far are kept, whole; run the same command to restore them all"),
])
def test_ctrl_c_in_a_command_is_one_line_and_exit_130(run_cli, tmp_path, monkeypatch, command, line):
    import model.commands

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.commands, command, stopped)
    args = {"measure": ["measure", tmp_path, "--out", tmp_path / "m"],
            "evaluate": ["evaluate", "--data", tmp_path, "--baseline", "identity"],
            "predict": ["predict", tmp_path, "--out", tmp_path / "p", "--method", "bridge"]}[command]
    result = run_cli(*args)
    assert result.exit_code == 130 and result.output.strip() == line, result.output


def test_ctrl_c_in_train_says_how_to_resume(run_cli, tmp_path, monkeypatch):
    import model.commands

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.commands, "train", stopped)
    result = run_cli("train", "--data", tmp_path, "--out", tmp_path / "run")
    assert result.exit_code == 130, result.output
    assert result.output.startswith("interrupted: the run keeps its last finished epoch; to continue, run: ")
    assert result.output.strip().endswith(" --resume")


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_measure_is_one_line_with_its_status(tmp_path, tiny_library, signum, status, word):
    from pipeline.interchange import export_pairs

    export_pairs(tiny_library, tmp_path / "png", count=1)
    images = tmp_path / "images"
    images.mkdir()
    for k in range(400):  # far more than are measured before the signal lands
        shutil.copy(tmp_path / "png" / "label" / "0.png", images / f"{k}.png")
    out = tmp_path / "out"
    # As from a terminal: a job started in the background (a CI runner's) inherits SIGINT ignored.
    process = subprocess.Popen([*CLI, "measure", images, "--out", out], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        while process.poll() is None and not list(out.glob("*_grains.csv")):  # the run proper, not start-up
            time.sleep(0.05)
        assert process.poll() is None, f"measure ended (exit {process.returncode}) before its first image"
        os.kill(process.pid, signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == status, stderr
    assert "Traceback" not in stdout + stderr and "Aborted" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{word}: the images measured so far are kept"), stderr
    assert not (out / "summary.csv").exists()


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_signal_while_cli_py_loads_is_one_line_with_its_status(tmp_path, signum, status, word):
    # The imports were guarded, the click decorators after them not: Ctrl-C there printed a
    # KeyboardInterrupt traceback (exit -2), and SIGTERM before a command began killed it without a line (-15).
    process = subprocess.Popen([*CLI, "predict", tmp_path, "--method", "bridge", "--out", tmp_path / "out"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.15)  # past the interpreter's own start-up, inside cli.py's loading (about 0.4 s)
    os.kill(process.pid, signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert stderr.strip() == f"{word} before the command started: nothing was done", stderr
    assert not (tmp_path / "out").exists()


def test_generate_stopped_by_sigterm_says_terminated(tmp_path):
    process = subprocess.Popen([*CLI, "generate", "--count", "20000", "--size", "64", "--workers", "0", "--no-progress",
                                "--out", tmp_path / "lib.zarr"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        while process.poll() is None and not list((tmp_path / "lib.zarr" / "micro").glob("c.*")):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert stderr.strip().startswith("terminated: ") and "pairs done; run the same command to continue" in stderr


def test_a_signal_that_lands_in_a_modules_initialisation_stops_measure_not_one_image(tmp_path, monkeypatch):
    # An extension module whose initialisation is cut by the signal raises ImportError("initialization
    # failed") from the KeyboardInterrupt: every later image failed with it, exit 1 instead of 130/143.
    import model.measure.run as run
    from measure_images import grid, write

    for k in range(3):
        write(tmp_path / "in" / f"{k}.png", grid())

    def cut(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise ImportError("initialization failed") from stop

    monkeypatch.setattr(run, "_measure_one", cut)
    with pytest.raises(KeyboardInterrupt):
        run.measure_files([tmp_path / "in"], tmp_path / "out")
    assert not (tmp_path / "out" / "summary.csv").exists()
