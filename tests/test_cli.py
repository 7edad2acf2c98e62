"""The command line a newcomer meets: help on everything, --version, one-line errors and warnings."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import click
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeline
from cli import cli
from tests.conftest import REPO, one_error_line


def test_version_is_the_package_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0, result.output
    assert result.output == f"reconstruction-gb {pipeline.__version__}\n"
    # One place for the version: pyproject.toml reads it from pipeline/__init__.py.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pipeline.__version__"}


def test_top_level_help_lists_every_command_in_full(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0, result.output
    listing = result.output.split("Commands:")[1]
    listed = [line.split()[0] for line in listing.strip().splitlines()]
    assert listed == list(cli.commands)  # generate ... predict, evaluate: the order of a first run
    assert "predict" in listed and "..." not in listing


def test_no_arguments_prints_the_help_as_click_programs_do():
    # It used to end in AttributeError: 'NoneType' object has no attribute 'color'.
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "cli.py"], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True)
    assert run.returncode == 2, run.stdout + run.stderr  # click's status for "no command given"
    output = run.stdout + run.stderr
    assert output.startswith("Usage: cli.py [OPTIONS] COMMAND [ARGS]...") and "Commands:" in output, output
    assert "Traceback" not in output and "Error" not in output


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_and_option_has_help(run_cli, name):
    command = cli.commands[name]
    assert (command.help or "").strip(), name
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{name} {param.opts[0]} has no help line"
        else:  # an argument is described in the command's own help
            assert param.human_readable_name in command.help, f"{name} does not describe {param.human_readable_name}"
    result = run_cli(name, "--help")
    assert result.exit_code == 0, result.output


def test_train_help_says_data_is_optional_with_resume(run_cli):
    output = run_cli("train", "--help").output
    assert "not needed with" in output and "--resume" in output


def test_a_python_without_the_dependencies_gets_one_line(tmp_path):
    # click made unimportable, as in a Python that never ran `make install`.
    blocker = ("import runpy, sys; sys.modules['click'] = None; sys.argv = ['cli.py', '--help']; "
               "runpy.run_path('cli.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", blocker], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'click'" in lines[0] and "make install" in lines[0] and ".venv/bin/python" in lines[0]


def test_a_png_folder_given_as_a_store_points_to_import(run_cli, tiny_library, tmp_path):
    pngs = tmp_path / "pngs"
    assert run_cli("export", tiny_library, "--out", pngs, "--count", "2").exit_code == 0
    for args in (("info", pngs), ("verify", pngs), ("evaluate", "--data", pngs, "--baseline", "identity")):
        line = one_error_line(run_cli(*args))
        assert "not a Reconstruction-GB store" in line and f"`import {pngs} --out pngs.zarr`" in line, args


def test_info_of_an_imported_store_shows_no_generation_config(run_cli, tiny_library, tmp_path):
    pngs, store = tmp_path / "pngs", tmp_path / "imported.zarr"
    run_cli("export", tiny_library, "--out", pngs, "--count", "3")
    assert run_cli("import", pngs, "--out", store).exit_code == 0
    output = run_cli("info", store).output
    assert "imported from" in output and "config:" not in output
    assert "config:" in run_cli("info", tiny_library).output


@pytest.mark.parametrize("size, warned", [(64, False), (128, False), (72, True), (100, True)])
def test_generate_warns_of_a_size_train_refuses(tmp_path, size, warned):
    result = CliRunner().invoke(
        cli, ["generate", "--count", "1", "--size", str(size), "--workers", "0", "--no-progress",
              "--out", str(tmp_path / "lib.zarr")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    if not warned:
        assert warnings == []
        return
    assert len(warnings) == 1
    assert f"refuses {size} px" in warnings[0] and "16 for paper, 8 for small" in warnings[0]
    nearest = (size // 16 * 16, size // 16 * 16 + 16)
    assert f"e.g. {nearest[0]} or {nearest[1]}" in warnings[0]


def test_predict_draws_no_empty_bar_first(trained_run, tiny_library, tmp_path):
    run_dir, _ = trained_run
    pngs = tmp_path / "pngs"
    CliRunner().invoke(cli, ["export", str(tiny_library), "--out", str(pngs), "--count", "1"])
    result = CliRunner().invoke(cli, ["predict", "--model", str(run_dir / "best_reconstruction_model.keras"),
                                      str(pngs / "micro"), "--out", str(tmp_path / "restored")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "image/s" in result.stderr  # the bar counts images, its total known from the start ...
    assert not re.search(r"(^|[\r\n])0(tile|it|image)", result.stderr)  # ... never an empty "0it" bar
    assert "1/1 tiles" in result.stderr  # the current image's tiles beside it


def test_report_is_readable_away_from_the_source_tree(trained_run):
    report = (trained_run[0] / "report.md").read_text()
    assert "- gap recall: " in report and "docs/metrics.md in the Reconstruction-GB" in report
    assert "Metric definitions: docs/metrics.md." not in report


def test_figures_name_the_loss_and_the_method(monkeypatch, tmp_path):
    import numpy as np

    from model import figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1 / e, "miou": 0.5, "val_miou": 0.5} for e in (1, 2, 3)]
    figures.learning_curves(history, tmp_path / "curves.png", loss="bce+dice")
    loss_axes, miou_axes = saved[0].axes
    assert loss_axes.get_title() == "loss (bce+dice)" and miou_axes.get_title() == "miou"
    saved[0].canvas.draw()
    ticks = [t for t in loss_axes.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no 1.5-th epoch
    image = np.zeros((8, 8), np.uint8)
    figures.panels([[image, image]], ("input", "prediction"), tmp_path / "p.png", title="model m.keras, test split")
    assert saved[1]._suptitle.get_text() == "model m.keras, test split"
