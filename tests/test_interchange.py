"""`python cli.py export` and `import`: PNG folders in the published study's layout, driven as a user would."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cli import cli
from conftest import declared_png, one_error_line, store_arrays, tree
from pipeline.sample import split_of

COUNT, SIZE = 12, 64


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A small generated store, and its export."""
    root = tmp_path_factory.mktemp("lib")
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", "--count", str(COUNT), "--size", str(SIZE), "--out",
                                 str(root / "lib.zarr"), "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["export", str(root / "lib.zarr"), "--out", str(root / "png")])
    assert result.exit_code == 0, result.output
    return root / "lib.zarr", root / "png"


@pytest.fixture
def folder(tmp_path, library):
    """A private copy of the exported folder, to damage."""
    return shutil.copytree(library[1], tmp_path / "png")


def test_export_writes_pngs_that_decode_to_the_stored_arrays(library):
    store, png = library
    arrays = store_arrays(store)
    for name in ("micro", "label"):
        assert sorted(p.name for p in (png / name).iterdir()) == sorted(f"{i}.png" for i in range(COUNT))
        for i in range(COUNT):
            image = cv2.imread(str(png / name / f"{i}.png"), cv2.IMREAD_UNCHANGED)
            assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE)
            assert np.array_equal(image, arrays[name][i])


def test_export_summary_and_a_range_that_skips_samples_not_done(run_cli, tmp_path, library):
    store = shutil.copytree(library[0], tmp_path / "lib.zarr")
    zarr.open_group(str(store), mode="r+")["done"][[3, 5]] = False
    out = tmp_path / "part"
    result = run_cli("export", store, "--out", out, "--start", 2, "--count", 5)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["skipped 2 samples not done", f"exported 3 pairs to {out}"]
    assert tree(out) == ["label", "label/2.png", "label/4.png", "label/6.png",
                         "micro", "micro/2.png", "micro/4.png", "micro/6.png"]
    # A later range goes into the same folder; --count past the end stops at the last sample.
    result = run_cli("export", store, "--out", out, "--start", 10, "--count", 100)
    assert result.exit_code == 0 and result.output.strip() == f"exported 2 pairs to {out}", result.output
    assert len(tree(out)) == 2 + 2 * 5


def test_export_then_import_gives_the_same_images_and_the_split_rule(run_cli, tmp_path, library):
    store, png = library
    out = tmp_path / "imported.zarr"
    result = run_cli("import", png, "--out", out, "--seed", 5)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"imported {COUNT} pairs ({SIZE} x {SIZE}) -> {out}"
    original, imported = store_arrays(store), store_arrays(out)
    # Numeric order: 10.png and 11.png come after 9.png, so sample i is the original sample i.
    for name in ("micro", "label", "erased_fraction"):
        assert imported[name].tobytes() == original[name].tobytes(), name
    assert imported["split"].tolist() == [split_of(5, i) for i in range(COUNT)]
    assert imported["done"].all() and not imported["grains"].any()
    for name in ("num_grains", "seed", "nucleation_rate", "growth_rate", "dilation", "gap_patches"):
        assert not imported[name].any(), name
    assert np.isnan(imported["avrami_exponent"]).all()
    attrs = zarr.open_group(str(out), mode="r").attrs
    assert attrs["seed"] == 5 and attrs["count"] == COUNT and attrs["config"]["size"] == SIZE
    assert attrs["source"] == {"kind": "import", "directory": str(png), "threshold": 128,
                               "files": [f"{i}.png" for i in range(COUNT)], "skipped": [],
                               "images": ["micro", "label"]}
    assert [p.name for p in tmp_path.iterdir()] == ["imported.zarr"]  # no .partial left


def test_gray_values_are_thresholded_and_names_sorted_by_number(run_cli, tmp_path):
    for name in ("micro", "label"):
        (tmp_path / "png" / name).mkdir(parents=True)
    label = np.full((SIZE, SIZE), 255, np.uint8)
    label[:, 10], label[:, 20] = 0, 127  # 128 boundary pixels: 127 is dark
    micro = label.copy()
    micro[:32, 10] = 128  # 32 of them erased: 128 is light
    for number, shift in (("10", 2), ("2", 0), ("007", 1)):  # sample order 2, 007, 10
        cv2.imwrite(str(tmp_path / "png" / "micro" / f"{number}.png"), np.roll(micro, shift, axis=1))
        cv2.imwrite(str(tmp_path / "png" / "label" / f"{number}.png"), np.roll(label, shift, axis=1))
    result = run_cli("import", tmp_path / "png", "--out", tmp_path / "s.zarr")
    assert result.exit_code == 0, result.output
    arrays = store_arrays(tmp_path / "s.zarr")
    expected_label = np.where(label >= 128, 255, 0).astype(np.uint8)
    expected_micro = np.where(micro >= 128, 255, 0).astype(np.uint8)
    for i, shift in enumerate((0, 1, 2)):
        assert np.array_equal(arrays["label"][i], np.roll(expected_label, shift, axis=1))
        assert np.array_equal(arrays["micro"][i], np.roll(expected_micro, shift, axis=1))
    assert arrays["erased_fraction"].tolist() == [0.25] * 3  # 32 of 128 boundary pixels
    source = zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs["source"]
    assert source["files"] == ["2.png", "007.png", "10.png"]


def damage(folder):
    """A corrupt PNG, a missing partner, a wrong size and a stray file."""
    (folder / "micro" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (folder / "label" / "5.png").unlink()
    cv2.imwrite(str(folder / "label" / "7.png"), np.zeros((80, 80), np.uint8))
    (folder / "micro" / "notes.txt").write_text("mine")


def test_bad_files_are_reported_by_name_and_skipped(run_cli, tmp_path, library, folder):
    damage(folder)
    out = tmp_path / "s.zarr"
    result = run_cli("import", folder, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "skipped micro/3.png: cannot be decoded as an image",
        "skipped label/3.png: its partner micro/3.png cannot be imported",
        "skipped micro/5.png: no partner label/5.png",
        "skipped label/7.png: is 80 x 80; most images are 64 x 64",
        "skipped micro/7.png: its partner label/7.png cannot be imported",
        "skipped micro/notes.txt: not a numbered .png file",
        f"imported 9 pairs (64 x 64) -> {out}",
    ]
    kept = [0, 1, 2, 4, 6, 8, 9, 10, 11]
    original, imported = store_arrays(library[0]), store_arrays(out)
    for name in ("micro", "label"):
        assert np.array_equal(imported[name], original[name][kept])
    source = zarr.open_group(str(out), mode="r").attrs["source"]
    assert source["files"] == [f"{i}.png" for i in kept] and len(source["skipped"]) == 6


def test_strict_refuses_the_whole_import(run_cli, tmp_path, folder):
    damage(folder)
    before = tree(tmp_path)
    line = one_error_line(run_cli("import", folder, "--out", tmp_path / "s.zarr", "--strict"))
    assert "--strict: 6 files cannot be imported, nothing written" in line
    assert "micro/3.png: cannot be decoded" in line and "micro/5.png: no partner label/5.png" in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("image, reason", [
    (np.zeros((64, 64, 3), np.uint8), "is not 8-bit gray (3 channel(s) of uint8)"),
    (np.zeros((64, 64), np.uint16), "is not 8-bit gray (1 channel(s) of uint16)"),
    (np.zeros((64, 80), np.uint8), "is 64 x 80, not square"),
    (np.zeros((32, 32), np.uint8), "is 32 x 32, smaller than 64 x 64"),
    (np.zeros((96, 96), np.uint8), "is 96 x 96; most images are 64 x 64"),
    (None, "cannot be decoded as an image"),  # an empty file
])
def test_each_kind_of_unusable_image_is_named(run_cli, tmp_path, folder, image, reason):
    target = folder / "label" / "2.png"
    if image is None:
        target.write_bytes(b"")
    else:
        cv2.imwrite(str(target), image)
    result = run_cli("import", folder, "--out", tmp_path / "s.zarr")
    assert result.exit_code == 0, result.output
    assert f"skipped label/2.png: {reason}" in result.output.splitlines()
    assert f"imported {COUNT - 1} pairs" in result.output


def test_a_png_declaring_32000_px_is_refused_from_its_header_not_decoded(run_cli, tmp_path, folder):
    """Its 2.1 GB of pixels used to be decoded (8 s) before the import could refuse it."""
    (folder / "micro" / "2.png").write_bytes(declared_png(32000, 32000))
    result = run_cli("import", folder, "--out", tmp_path / "s.zarr")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "skipped micro/2.png: declares 32000 x 32000 px (1,024 megapixels), above the limit of 100 megapixels "
        "(set RECONSTRUCTION_GB_MAX_PIXELS to allow more); not decoded",
        "skipped label/2.png: its partner micro/2.png cannot be imported"]
    assert f"imported {COUNT - 1} pairs" in result.output


@pytest.mark.parametrize("limit, message", [
    ("1000", "micro/0.png: declares 64 x 64 px (4,096 pixels), above the limit of 0.001 megapixels"),
    ("many", "RECONSTRUCTION_GB_MAX_PIXELS must be a positive whole number of pixels, got 'many'"),
])
def test_import_keeps_the_pixel_limit_that_predict_keeps(run_cli, tmp_path, folder, monkeypatch, limit, message):
    monkeypatch.setenv("RECONSTRUCTION_GB_MAX_PIXELS", limit)
    before = tree(tmp_path)
    assert message in one_error_line(run_cli("import", folder, "--out", tmp_path / "s.zarr"))
    assert tree(tmp_path) == before


@pytest.mark.parametrize("setup, args, message", [
    (None, ["missing", "--out", "s.zarr"], "missing does not exist"),
    ("no_label", ["png", "--out", "s.zarr"], "png/label is not a folder"),
    ("empty", ["png", "--out", "s.zarr"], "no usable micro/label pairs in"),
    ("stray", ["png", "--out", "s.zarr"], "no usable micro/label pairs in"),
    ("ok", ["png", "--out", "taken.zarr"], "taken.zarr already exists; import never overwrites"),
    ("ok", ["png", "--out", "notes.txt/s.zarr"], "notes.txt is not a folder"),
    ("ok", ["png", "--out", "s.zarr", "--seed", "-1"], "Invalid value for '--seed'"),
    ("ok", ["png"], "Missing option '--out'"),
])
def test_import_bad_input_is_one_clear_line_and_writes_nothing(run_cli, tmp_path, library, setup, args, message):
    if setup == "ok":
        shutil.copytree(library[1], tmp_path / "png")
        (tmp_path / "taken.zarr").mkdir()
        (tmp_path / "notes.txt").write_text("mine")
    elif setup:
        for name in ("micro",) if setup == "no_label" else ("micro", "label"):
            (tmp_path / "png" / name).mkdir(parents=True)
        if setup == "stray":
            (tmp_path / "png" / "micro" / "a.png").write_bytes(b"x")
    before = tree(tmp_path)
    line = one_error_line(run_cli("import", *[a if a.startswith("-") else tmp_path / a for a in args]))
    assert message in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("args, message", [
    (["missing.zarr", "--out", "x"], "does not exist"),
    (["plain", "--out", "x"], "is not a Reconstruction-GB store"),
    (["lib.zarr", "--out", "x", "--start", "-1"], "Invalid value for '--start'"),
    (["lib.zarr", "--out", "x", "--count", "0"], "Invalid value for '--count'"),
    (["lib.zarr", "--out", "x", "--start", "12"], "start 12 is past the last sample"),
    (["lib.zarr", "--out", "notes.txt"], "notes.txt is a file, not a folder"),
    (["lib.zarr", "--out", "done"], "done/micro/4.png exists; export into a new folder"),
])
def test_export_bad_input_is_one_clear_line_and_writes_nothing(run_cli, tmp_path, library, args, message):
    shutil.copytree(library[0], tmp_path / "lib.zarr")
    (tmp_path / "plain").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "done" / "micro").mkdir(parents=True)
    (tmp_path / "done" / "micro" / "4.png").write_bytes(b"an earlier export")
    before = tree(tmp_path)
    line = one_error_line(run_cli("export", tmp_path / args[0], "--out", tmp_path / args[2], *args[3:]))
    assert message in line
    assert tree(tmp_path) == before and (tmp_path / "done" / "micro" / "4.png").read_bytes() == b"an earlier export"


def test_an_imported_store_says_so_and_generate_will_not_add_to_it(run_cli, tmp_path):
    original, folder, imported = tmp_path / "o.zarr", tmp_path / "pngs", tmp_path / "i.zarr"
    assert run_cli("generate", "--count", 4, "--size", 64, "--out", original, "--workers", 0).exit_code == 0
    assert run_cli("export", original, "--out", folder).exit_code == 0
    assert run_cli("import", folder, "--out", imported).exit_code == 0
    info = run_cli("info", imported)
    assert info.exit_code == 0 and f"source:    imported from {folder}" in info.output
    assert "source:    generated by polySim" in run_cli("info", original).output
    before = sorted(p.name for p in (imported / "micro").iterdir())
    result = run_cli("generate", "--count", 6, "--size", 64, "--out", imported, "--workers", 0)
    assert result.exit_code == 1 and "was built by import, not generated" in result.output
    assert sorted(p.name for p in (imported / "micro").iterdir()) == before
