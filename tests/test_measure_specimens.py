"""`measure` groups fields into specimens, never re-measures its own outputs, and refuses what it cannot measure.

Fields: the 100 x 100 grid of tests/test_measure.py (N_A = 9 per mm² at 10 µm/px) and the 62 x 62
three-by-three grid (N_A = 4 / 0.3844 mm² = 10.406), worked by hand there.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import one_error_line
from measure_images import gray_fragmented_grid, grid, rows, write






def three() -> np.ndarray:
    image = np.full((62, 62), 255, np.uint8)
    for v in (20, 40):
        image[v:v + 2, :] = 0
        image[:, v:v + 2] = 0
    return image




def g_of(n_a: float) -> float:
    return 3.321928 * math.log10(n_a) - 2.954


# --- specimens ----------------------------------------------------------------------------------------
def test_a_folder_of_subfolders_is_one_specimen_per_subfolder(run_cli, tmp_path) -> None:
    write(tmp_path / "in" / "steel_a" / "x.png", grid())
    write(tmp_path / "in" / "steel_a" / "y.png", three())
    write(tmp_path / "in" / "steel_b" / "z.png", three())
    result = run_cli("measure", tmp_path / "in", "--out", tmp_path / "out", "--pixel-size", "10")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "out" / "summary.csv")
    assert [(r["level"], r["image"], r["specimen"], r["fields"]) for r in table] == [
        ("image", "x", "steel_a", "1"), ("image", "y", "steel_a", "1"), ("specimen", "", "steel_a", "2"),
        ("image", "z", "steel_b", "1"), ("specimen", "", "steel_b", "1")]
    steel_a, steel_b = table[2], table[4]
    assert float(steel_a["astm_g_planimetric"]) == pytest.approx(g_of((9 + 4 / 0.3844) / 2), abs=1e-5)
    assert steel_a["planimetric_ra_pct"] != "" and steel_a["grains"] == "25"
    # steel_b is one field: its G is its own, no interval, and it never entered steel_a's statistics
    assert float(steel_b["astm_g_planimetric"]) == pytest.approx(g_of(4 / 0.3844), abs=1e-5)
    assert steel_b["astm_g_planimetric_ci95"] == "" and steel_b["source"] == "1 field"
    assert "specimen steel_a: 2 fields (E112 section 15)" in result.output
    assert "steel_b: 2 fields" not in result.output and "3 fields" not in result.output


def test_two_folders_are_two_specimens_and_a_csv_regroups_them(run_cli, tmp_path) -> None:
    write(tmp_path / "a" / "x.png", grid())
    write(tmp_path / "b" / "y.png", three())
    write(tmp_path / "b" / "z.png", grid())
    plain = run_cli("measure", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "plain", "--pixel-size", "10")
    assert plain.exit_code == 0, plain.output
    assert [r["specimen"] for r in rows(tmp_path / "plain" / "summary.csv") if r["level"] == "specimen"] == ["a", "b"]
    (tmp_path / "map.csv").write_text("image,specimen\nx.png,S1\nb/y.png,S1\nz,S2\n")
    mapped = run_cli("measure", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "mapped", "--pixel-size", "10",
                     "--specimens", tmp_path / "map.csv")
    assert mapped.exit_code == 0, mapped.output
    table = rows(tmp_path / "mapped" / "summary.csv")
    assert [(r["image"], r["specimen"]) for r in table] == [("x", "S1"), ("y", "S1"), ("", "S1"), ("z", "S2"),
                                                            ("", "S2")]
    assert float(table[2]["astm_g_planimetric"]) == pytest.approx(g_of((9 + 4 / 0.3844) / 2), abs=1e-5)


@pytest.mark.parametrize("content, message", [
    ("image,specimen\nx.png,S1\n", "is not in --specimens"),
    ("name,group\nx.png,S1\n", "needs a header line 'image,specimen'"),
    ("image,specimen\nx.png,S1\nx.png,S2\n", "two specimens"),
])
def test_a_bad_specimens_csv_is_one_line_and_nothing_is_written(run_cli, tmp_path, content, message) -> None:
    write(tmp_path / "in" / "x.png", grid())
    write(tmp_path / "in" / "y.png", grid())
    (tmp_path / "map.csv").write_text(content)
    line = one_error_line(run_cli("measure", tmp_path / "in", "--out", tmp_path / "out",
                                  "--specimens", tmp_path / "map.csv"))
    assert message in line and not (tmp_path / "out").exists()


# --- outputs that are never inputs ------------------------------------------------------------------------


RESTORE = ("--restore", "--method", "bridge", "--binarize", "otsu", "--min-speck", "10")


def test_restore_keeps_the_boundary_map_and_measuring_it_again_gives_the_same_grains(run_cli, tmp_path) -> None:
    folder = tmp_path / "F"
    write(folder / "gray.png", gray_fragmented_grid())
    first = run_cli("measure", folder, "--out", folder, *RESTORE)
    assert first.exit_code == 0, first.output
    kept = cv2.imread(str(folder / "gray_boundaries.png"), cv2.IMREAD_UNCHANGED)
    assert kept.dtype == np.uint8 and set(np.unique(kept)) == {0, 255} and kept.shape == (100, 100)
    # measuring the folder again measures the micrograph only, not what measure wrote beside it
    again = run_cli("measure", folder, "--out", tmp_path / "G", *RESTORE)
    assert again.exit_code == 0, again.output
    assert "left out 4 files measure wrote itself" in again.output
    assert [r["image"] for r in rows(tmp_path / "G" / "summary.csv")] == ["gray", ""]
    # the kept map, measured as a boundary map, gives the restored grains
    alone = run_cli("measure", folder / "gray_boundaries.png", "--out", tmp_path / "H")
    assert alone.exit_code == 0, alone.output
    assert rows(tmp_path / "H" / "summary.csv")[0]["grains"] == rows(folder / "summary.csv")[0]["grains"] == "16"


def test_a_folder_of_kept_boundary_maps_is_measured(run_cli, tmp_path) -> None:
    write(tmp_path / "raw" / "gray.png", gray_fragmented_grid())
    assert run_cli("measure", tmp_path / "raw", "--out", tmp_path / "G", *RESTORE).exit_code == 0
    result = run_cli("measure", tmp_path / "G", "--out", tmp_path / "H")  # only gray_boundaries.png is an input
    assert result.exit_code == 0, result.output
    assert [r["image"] for r in rows(tmp_path / "H" / "summary.csv")] == ["gray_boundaries", ""]


# --- what cannot be measured: one line, nothing written ---------------------------------------------------
def test_a_run_whose_every_input_fails_writes_nothing(run_cli, tmp_path) -> None:
    write(tmp_path / "one.png", np.full((1, 1), 255, np.uint8))
    result = run_cli("measure", tmp_path / "one.png", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [
        f"failed: {tmp_path / 'one.png'}: 1 x 1 px is too small to measure (at least 8 x 8)",
        "measured 0 of 1 images: nothing written"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, reason", [
    (["--pattern", "circles"], "too small to measure"),
    (["--exclude-border"], "too small to measure"),
    (["--min-grain", "1000000000000", "--tiny", "no"], "--min-grain 1000000000000 px is larger than the field"),
])
def test_tiny_images_and_huge_min_grain_are_one_line(run_cli, tmp_path, args, reason) -> None:
    image = grid() if "--tiny" in args else np.full((1, 1), 255, np.uint8)
    args = [a for a in args if a not in ("--tiny", "no")]
    write(tmp_path / "in.png", image)
    result = run_cli("measure", tmp_path / "in.png", "--out", tmp_path / "out", *args)
    assert result.exit_code == 1 and "boolean index" not in result.output and "Traceback" not in result.output
    assert reason in result.output.splitlines()[0] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["1e300", "1e-300"])
def test_implausible_pixel_size_is_refused(run_cli, tmp_path, value) -> None:
    write(tmp_path / "g.png", grid())
    line = one_error_line(run_cli("measure", tmp_path / "g.png", "--out", tmp_path / "out", "--pixel-size", value))
    assert "implausible" in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("description, reason", [
    ('<OME><Image><Pixels PhysicalSizeX="1e9" PhysicalSizeY="1e9"/></Image></OME>',
     "its OME metadata give 1e+09 um per pixel, outside 1e-05 to 10000: give the scale with --pixel-size UM"),
    ('<OME><Image><Pixels PhysicalSizeX="0.5" PhysicalSizeY="0.7"/></Image></OME>',
     "its OME metadata give pixels of 0.5 um (x) by 0.7 um (y): measure needs square pixels"),
])
def test_unusable_file_scales_are_named_and_the_others_measured(run_cli, tmp_path, description, reason) -> None:
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(grid()).save(tmp_path / "in" / "odd.tif", description=description)
    write(tmp_path / "in" / "fine.png", grid())
    result = run_cli("measure", tmp_path / "in", "--out", tmp_path / "out", "--min-grain", "10")
    assert result.exit_code == 1
    assert f"failed: {tmp_path / 'in' / 'odd.tif'}: {reason}" in result.output
    assert [r["image"] for r in rows(tmp_path / "out" / "summary.csv")] == ["fine", ""]
    given = run_cli("measure", tmp_path / "in" / "odd.tif", "--out", tmp_path / "given", "--pixel-size", "10")
    assert given.exit_code == 0, given.output  # --pixel-size is the way out the line names


def test_two_folders_of_one_name_are_two_specimens(run_cli, tmp_path) -> None:
    write(tmp_path / "lab1" / "steel" / "x.png", grid())
    write(tmp_path / "lab2" / "steel" / "x.png", three())
    result = run_cli("measure", tmp_path / "lab1" / "steel", tmp_path / "lab2" / "steel", "--out", tmp_path / "out",
                     "--pixel-size", "10")
    assert result.exit_code == 0, result.output
    assert [(r["image"], r["specimen"]) for r in rows(tmp_path / "out" / "summary.csv")] == [
        ("x", "steel"), ("", "steel"), ("x_2", "steel_2"), ("", "steel_2")]
