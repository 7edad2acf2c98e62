"""A run leaves only what it was asked for: no --out for a run whose every input is bad, no empty
summary, no measure outputs read back as micrographs, no export inside a store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import one_error_line, tree


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_library) -> Path:
    """Two boundary maps of the tiny library as PNGs (0.png, 1.png)."""
    from pipeline.interchange import export_pairs

    folder = tmp_path_factory.mktemp("png") / "png"
    export_pairs(tiny_library, folder, count=2)
    return folder / "label"


@pytest.fixture
def bad_inputs(tmp_path) -> Path:
    """A folder of two files with image names that hold no image."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    (folder / "b.tif").write_bytes(b"")
    return folder


def test_predict_whose_every_input_is_bad_makes_no_out_folder(run_cli, tmp_path, bad_inputs):
    result = run_cli("predict", bad_inputs, "--method", "bridge", "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 1 and "failed: " in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_measure_whose_every_input_is_bad_writes_no_summary_and_no_out_folder(run_cli, tmp_path, bad_inputs):
    result = run_cli("measure", bad_inputs, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == "measured 0 of 2 images: nothing written"
    assert not (tmp_path / "out").exists()


def test_measure_does_not_read_back_what_an_earlier_measure_wrote_beside_the_images(run_cli, tmp_path, labels):
    folder = shutil.copytree(labels, tmp_path / "F")
    assert run_cli("measure", folder, "--out", folder).exit_code == 0
    assert (folder / "0_overlay.png").is_file() and (folder / "0_grains.tif").is_file()
    result = run_cli("measure", folder, "--out", tmp_path / "G")
    assert result.exit_code == 0, result.output
    assert "left out 6 files measure wrote itself" in result.output
    assert result.output.strip().splitlines()[-1].startswith("measured 2 of 2 images")
    assert not (tmp_path / "G" / "0_overlay_grains.csv").exists()


def test_export_into_the_store_itself_is_refused_in_one_line(run_cli, tmp_path, tiny_library):
    store = shutil.copytree(tiny_library, tmp_path / "S.zarr")
    before = tree(store)
    line = one_error_line(run_cli("export", store, "--out", store / "exported"))
    assert f"--out {store / 'exported'} is inside the Zarr store {store}" in line
    assert tree(store) == before


def test_import_into_a_store_is_refused_in_one_line(run_cli, tmp_path, tiny_library, labels):
    store = shutil.copytree(tiny_library, tmp_path / "S.zarr")
    before = tree(store)
    line = one_error_line(run_cli("import", labels.parent, "--out", store / "new.zarr"))
    assert "is inside the Zarr store" in line
    assert tree(store) == before


@pytest.mark.parametrize("command", [
    ["generate", "--count", "2", "--size", "64", "--workers", "0", "--out", "{store}/sub.zarr"],
    ["upgrade", "{store}", "--out", "{store}/new.zarr"],
    ["predict", "{labels}", "--method", "bridge", "--no-progress", "--out", "{store}/restored"],
    ["predict", "{labels}", "--method", "bridge", "--no-progress", "--out", "{store}"],
    ["measure", "{labels}", "--out", "{store}/measured"],
    ["evaluate", "--data", "{store}", "--baseline", "identity", "--no-progress", "--out", "{store}/evaluation"],
    ["train", "--data", "{store}", "--preset", "small", "--dry-run", "--out", "{store}/micro/run"],
])
def test_every_writer_refuses_an_out_inside_a_store_in_one_line(run_cli, tmp_path, tiny_library, labels, command):
    # Only export and import refused it: the others wrote their files into the user's store.
    store = shutil.copytree(tiny_library, tmp_path / "S.zarr")
    before = tree(store)
    args = [a.format(store=store, labels=labels) for a in command]
    line = one_error_line(run_cli(*args))
    assert f"the Zarr store {store}" in line and "choose a folder outside it" in line, line
    assert tree(store) == before


@pytest.mark.parametrize("command", [
    ["export", "{store}", "--out", ""],
    ["predict", "{labels}", "--method", "bridge", "--no-progress", "--out", ""],
    ["measure", "{labels}", "--out", ""],
    ["measure", "", "--out", "m"],
    ["evaluate", "--data", "{store}", "--baseline", "identity", "--no-progress", "--out", ""],
    ["generate", "--count", "2", "--size", "64", "--workers", "0", "--out", ""],
])
def test_an_empty_path_is_refused_not_read_as_this_folder(run_cli, tmp_path, tiny_library, labels, monkeypatch,
                                                          command):
    # `--out "$DIR"` with DIR unset: every file went into the current folder, exit 0.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    line = one_error_line(run_cli(*[a.format(store=tiny_library, labels=labels) for a in command]))
    assert "is empty (an unset shell variable?)" in line, line
    assert tree(work) == []
