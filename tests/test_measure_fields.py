"""The field measured (--roi, --mask, data bars left out) and the archived report, on the hand-worked grid.

The grid: 100 x 100, 2 px lines at rows and columns 24-25, 49-50, 74-75 (tests/test_measure.py).
"""

from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest

from conftest import one_error_line
from model.measure.databar import DataBar, find_data_bars
from model.measure.grains import measure_boundary
from measure_images import grid, rows






def with_data_bar(image: np.ndarray, depth: int = 20) -> np.ndarray:
    """`image` above a black band `depth` px deep holding white text and a scale bar, as a microscope burns in."""
    bar = np.zeros((depth, image.shape[1]), np.uint8)
    cv2.putText(bar, "50 um", (4, depth - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 255, 1)
    bar[depth // 2:depth // 2 + 3, 60:90] = 255
    return np.vstack([image, bar])


def g_of(n_a: float) -> float:
    return 3.321928 * math.log10(n_a) - 2.954


# --- rectangles and masks ---------------------------------------------------------------------------------
def test_roi_is_a_rectangular_field_of_its_own(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "grid.png"), grid())
    result = run_cli("measure", tmp_path / "grid.png", "--out", tmp_path / "out", "--pixel-size", "10",
                     "--roi", "26,26,48,48")
    assert result.exit_code == 0, result.output
    (image, _) = rows(tmp_path / "out" / "summary.csv")
    # rows and columns 26-73: four 23 x 23 grains, each holding one corner of the field: 4 x 1/4 in 0.48 x 0.48 mm
    assert (image["grains"], image["grains_weighted"], image["field_px"]) == ("4", "1", "2304")
    assert float(image["astm_g_planimetric"]) == pytest.approx(g_of(1 / 0.48**2), abs=1e-5)  # -0.8362
    grains = rows(tmp_path / "out" / "grid_grains.csv")
    assert (grains[0]["centroid_x_px"], grains[0]["centroid_y_px"], grains[0]["area_px"]) == ("37", "37", "529")
    grain_map = cv2.imread(str(tmp_path / "out" / "grid_grains.tif"), cv2.IMREAD_UNCHANGED)
    assert grain_map.shape == (100, 100) and grain_map[10, 10] == 0 and grain_map[37, 37] == 1


def test_a_mask_leaves_a_quadrant_out(run_cli, tmp_path) -> None:
    mask = np.full((100, 100), 255, np.uint8)
    mask[:50, 50:] = 0  # the top-right quadrant is left out; its edge runs along boundary lines
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    found = measure_boundary(grid(), 10.0, 10, angles=(0, 90), field=mask > 0)
    # 12 grains: 3 inside, 9 cut by the image border (a masked field has no corners: 1/2 each): 7.5 in 0.75 mm^2
    assert found.table.count == 12 and found.grains_weighted == 7.5 and found.field_area_px == 7500
    assert found.astm_g_planimetric == pytest.approx(g_of(10), abs=1e-5)  # 0.3679
    assert found.line_length_px == 50 * 50 + 50 * 100 + 50 * 100 + 50 * 50  # the lines' pieces inside the field
    cv2.imwrite(str(tmp_path / "grid.png"), grid())
    result = run_cli("measure", tmp_path / "grid.png", "--out", tmp_path / "out", "--pixel-size", "10",
                     "--mask", tmp_path / "mask.png", "--min-grain", "10")
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "out" / "summary.csv")[0]["grains_weighted"] == "7.5"
    overlay = cv2.imread(str(tmp_path / "out" / "grid_overlay.png"))
    assert overlay[10, 90].max() < 100 and overlay[60, 90].max() > 200  # outside the field drawn dark


@pytest.mark.parametrize("args, message", [
    (["--roi", "0,0,10"], "--roi: expected x,y,w,h"),
    (["--roi", "0,0,4,4"], "too small to measure"),
    (["--mask", "{tmp}/none.png"], "--mask {tmp}/none.png: no such file"),
    (["--twins", "all"], "--twins"),
])
def test_bad_field_options_are_one_line(run_cli, tmp_path, args, message) -> None:
    cv2.imwrite(str(tmp_path / "grid.png"), grid())
    args = [a.format(tmp=tmp_path) for a in args]
    line = one_error_line(run_cli("measure", tmp_path / "grid.png", "--out", tmp_path / "out", *args))
    assert message.format(tmp=tmp_path) in line and not (tmp_path / "out").exists()


def test_a_mask_or_roi_that_does_not_fit_an_image_names_it(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "grid.png"), grid())
    cv2.imwrite(str(tmp_path / "mask.png"), np.full((50, 60), 255, np.uint8))
    result = run_cli("measure", tmp_path / "grid.png", "--out", tmp_path / "out", "--mask", tmp_path / "mask.png")
    assert result.exit_code == 1 and "--mask is 60 x 50 px, the image 100 x 100 px" in result.output
    result = run_cli("measure", tmp_path / "grid.png", "--out", tmp_path / "out", "--roi", "60,0,50,50")
    assert "--roi 60,0,50,50 reaches outside the 100 x 100 px image" in result.output


# --- data bars --------------------------------------------------------------------------------------------
def noisy_micrograph(seed: int = 0) -> np.ndarray:
    gray = np.where(grid() > 0, 170.0, 70.0) + np.random.default_rng(seed).normal(0, 8, (100, 100))
    return np.clip(gray, 0, 255) / 255.0


@pytest.mark.parametrize("image, expected", [
    (grid() / 255.0, []),  # a boundary map's own background is no bar
    (noisy_micrograph(), []),
    (with_data_bar(np.clip(noisy_micrograph() * 255, 0, 255).astype(np.uint8)) / 255.0, [DataBar("bottom", 20)]),
    (with_data_bar(grid()) / 255.0, [DataBar("bottom", 20)]),
    (np.vstack([with_data_bar(grid(), 12)[::-1][:12], grid()]) / 255.0, [DataBar("top", 12)]),
])
def test_data_bar_detection(image, expected) -> None:
    assert find_data_bars(image) == expected


def test_a_data_bar_is_left_out_and_said(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "sem.png"), with_data_bar(grid()))
    result = run_cli("measure", tmp_path / "sem.png", "--out", tmp_path / "out", "--pixel-size", "10",
                     "--min-grain", "10")
    assert result.exit_code == 0, result.output
    assert "sem: left out a 20 px data bar at the bottom edge (--keep-data-bar measures it)" in result.output
    summary = rows(tmp_path / "out" / "summary.csv")[0]
    assert summary["field_px"] == "10000" and float(summary["astm_g_planimetric"]) == pytest.approx(0.215925, abs=1e-6)
    kept = run_cli("measure", tmp_path / "sem.png", "--out", tmp_path / "kept", "--pixel-size", "10",
                   "--min-grain", "10", "--keep-data-bar")
    assert kept.exit_code == 0 and "data bar" not in kept.output
    assert rows(tmp_path / "kept" / "summary.csv")[0]["field_px"] == "12000"


# --- the report --------------------------------------------------------------------------------------------
def test_report_is_one_self_contained_page(run_cli, tmp_path) -> None:
    from pipeline import __version__

    (tmp_path / "steel").mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "steel" / f"{name}.png"), grid())
    result = run_cli("measure", tmp_path / "steel", "--out", tmp_path / "out", "--pixel-size", "10", "--report")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page) and "<script" not in page
    assert "@import" not in page and "url(" not in page
    assert page.count('src="data:image/png;base64,') == 1  # the specimen's histograms
    assert page.count('src="data:image/jpeg;base64,') == 2  # one overlay thumbnail per field
    assert f"Reconstruction-GB {__version__}" in page and "Specimen steel" in page
    assert "--pixel-size" in page and "0.22" in page  # where the scale came from; G 0.2159
    assert '"twins": "none"' in page  # the settings
