"""Per-grain shape, size distributions, the E1181 duplex check and the E930 largest grain, worked out by hand."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from model.measure.distribution import size_distribution
from model.measure.grains import measure_boundary
from measure_images import grid, rows




def one_grain(mask: np.ndarray) -> np.ndarray:
    """A boundary image (0) whose only background is `mask` (255)."""
    return np.where(mask, 255, 0).astype(np.uint8)


def ellipse_mask(size: int, a: float, b: float, angle_deg: float) -> np.ndarray:
    """Pixels whose centres lie in the ellipse of semi-axes a, b centred in the image, major axis at angle_deg
    counter-clockwise from the rows (as seen on screen, y up)."""
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    t = math.radians(angle_deg)
    along = x * math.cos(t) - y * math.sin(t)  # screen y is -row
    across = x * math.sin(t) + y * math.cos(t)
    return (along / a) ** 2 + (across / b) ** 2 <= 1


def ramanujan(a: float, b: float) -> float:
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


@pytest.mark.parametrize("rows_, cols, orientation", [((10, 20), (10, 30), 0.0), ((10, 30), (10, 20), 90.0)])
def test_rectangle_shape_by_hand(rows_, cols, orientation) -> None:
    mask = np.zeros((50, 50), bool)
    mask[slice(*rows_), slice(*cols)] = True  # 20 x 10 px (or 10 x 20)
    result = measure_boundary(one_grain(mask), 2.0, 10)
    shapes = result.shapes
    assert result.table.count == 1 and result.table.area_px[0] == 200
    # second moments of a w x h block of unit squares: w^2 / 12 and h^2 / 12: the axes' ratio is w / h exactly
    assert shapes.aspect_ratio[0] == pytest.approx(2.0) and shapes.orientation_deg[0] == pytest.approx(orientation)
    assert shapes.feret_max_px[0] == pytest.approx(math.hypot(20, 10))  # the diagonal, 22.36
    assert shapes.feret_min_px[0] == pytest.approx(10.0)
    assert shapes.perimeter_px[0] == pytest.approx(2 * (19 + 9) + math.pi)  # centres' outline + pi (half a pixel out)
    assert shapes.neighbours[0] == 0


@pytest.mark.parametrize("angle", [0.0, 30.0, 75.0, 135.0])
def test_ellipse_of_known_aspect_and_angle(angle) -> None:
    a, b = 30.0, 10.0
    result = measure_boundary(one_grain(ellipse_mask(90, a, b, angle)), 1.0, 10)
    shapes = result.shapes
    assert shapes.aspect_ratio[0] == pytest.approx(3.0, rel=0.02)
    assert abs((shapes.orientation_deg[0] - angle + 90) % 180 - 90) < 1.0
    assert shapes.feret_max_px[0] == pytest.approx(2 * a, abs=1.5)  # pixel squares reach up to ~0.7 px further
    assert shapes.feret_min_px[0] == pytest.approx(2 * b, abs=1.5)
    assert shapes.perimeter_px[0] == pytest.approx(ramanujan(a, b), rel=0.02)  # 133.65
    assert result.table.diameter_px[0] == pytest.approx(2 * math.sqrt(a * b), rel=0.01)  # equivalent circle




def test_neighbours_across_the_boundaries_of_the_grid() -> None:
    result = measure_boundary(grid(), 10.0, 10)
    neighbours = dict(zip(zip(result.table.centroid_x.round(), result.table.centroid_y.round()),
                          result.shapes.neighbours.tolist()))
    assert sorted(neighbours.values()) == [2] * 4 + [3] * 8 + [4] * 4  # corners, edges, inside (a junction is no side)
    assert neighbours[(12, 12)] == 2 and neighbours[(37, 37)] == 4


def test_grain_csv_has_the_shape_columns(run_cli, tmp_path) -> None:
    image = np.full((50, 50), 255, np.uint8)
    cv2.rectangle(image, (9, 9), (30, 20), 0, 1)  # a 1 px outline around rows 10-19, columns 10-29
    cv2.imwrite(str(tmp_path / "rect.png"), image)
    result = run_cli("measure", tmp_path / "rect.png", "--out", tmp_path / "out", "--pixel-size", "2",
                     "--min-grain", "10")
    assert result.exit_code == 0, result.output
    outside, grain = rows(tmp_path / "out" / "rect_grains.csv")  # grain 1 is the rest of the image
    assert outside["neighbours"] == "1" and outside["touches_border"] == "1"
    assert (grain["perimeter_px"], grain["perimeter_um"]) == ("59.1416", "118.283")
    assert (grain["feret_max_px"], grain["feret_max_um"], grain["feret_min_um"]) == ("22.3607", "44.7214", "20")
    assert (grain["aspect_ratio"], grain["orientation_deg"], grain["neighbours"]) == ("2", "0", "1")
    assert grain["diameter_px"] == "15.9577" and grain["touches_border"] == "0"  # 2 sqrt(200 / pi)


# --- distributions, duplex, largest grain -----------------------------------------------------------------
def cells(size: int, step: int, coarse: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """size x size, 2 px lines every `step` px; `coarse` (top, left, height, width) cleared to one big grain."""
    image = np.full((size, size), 255, np.uint8)
    for v in range(step - 2, size, step):
        image[v:v + 2, :] = 0
        image[:, v:v + 2] = 0
    if coarse is not None:
        top, left, height, width = coarse
        image[top:top + height, left:left + width] = 255
    return image


def test_uniform_cells_are_not_duplex() -> None:
    summary = measure_boundary(cells(200, 12), 1.0, 10).summary()
    assert summary["duplex"] == "no" and summary["coarse_share_pct"] == 0


def test_one_isolated_coarse_grain_is_an_ala_by_e930() -> None:
    # 12 px cells (10 x 10 px grains) and, where 6 x 6 cells were, one grain of 70 x 70 px = 4900 um^2 at
    # 1 um/px: 5.6 G coarser than the rest, about 3 % of the grain area
    image = cells(480, 12, coarse=(132, 132, 70, 70))
    summary = measure_boundary(image, 1.0, 10).summary()
    assert summary["duplex"] == "ala"
    assert summary["largest_grain_um2"] == 4900
    assert summary["ala_g"] == pytest.approx(3.321928 * math.log10(1 / 0.0049) - 2.954, abs=1e-6)  # 4.7190
    assert summary["largest_feret_um"] == pytest.approx(70 * math.sqrt(2))
    assert 0 < summary["coarse_share_pct"] <= 5


def test_two_grain_sizes_are_bimodal() -> None:
    image = np.hstack([cells(240, 12), cells(240, 48)])  # 10 x 10 px grains beside 46 x 46 px grains: 4.4 G apart
    assert measure_boundary(image, 1.0, 10).summary()["duplex"] == "bimodal"


def test_distribution_without_a_scale_still_checks_duplex() -> None:
    # 64 grains of 100 px, 32 of 200, ... 1 of 6400: every G class holds 1/7 of the area, no valley; the mean
    # area is 44800 / 127 = 353 px, so the classes of 3200 and 6400 px (2/7 of the area) are 3+ G coarser
    area = np.concatenate([np.full(n, 100 * 2**k) for k, n in enumerate([64, 32, 16, 8, 4, 2, 1])])
    found = size_distribution(area, np.zeros(area.size, bool), np.full(area.size, 10.0), math.nan, 127.0, 44800.0)
    assert found.duplex == "wide" and math.isnan(found.ala_g) and found.coarse_share == pytest.approx(2 / 7)
    assert found.area_share.tolist() == pytest.approx([1 / 7] * 7) and found.number_share.sum() == pytest.approx(1)
    two = np.array([100] * 50 + [10000])  # one grain 100 times the others (6.6 G) holding 2/3 of the area
    assert size_distribution(two, np.zeros(51, bool), np.ones(51), math.nan, 51.0, 15000.0).duplex == "bimodal"


def test_histogram_png_has_both_weightings(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "g.png"), grid())
    assert run_cli("measure", tmp_path / "g.png", "--out", tmp_path / "out").exit_code == 0
    picture = cv2.imread(str(tmp_path / "out" / "g_histogram.png"))
    assert picture.shape[1] == 900  # two panels side by side: number-weighted and area-weighted
