"""`measure` against ASTM E112 on images whose answers are known: by hand, or from the geometry.

The known-answer images come from benchmarks/measure_known.py (Voronoi diagrams of lattice
seeds, boundary bands of exact width, crossings of the ideal edges with the same test lines).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from measure_known import exact_answer, known_image  # noqa: E402
from model.measure.fields import field_statistics, t_975  # noqa: E402
from model.measure.grains import auto_min_grain, measure_boundary  # noqa: E402
from model.measure.scale import pixel_size_of, scale_from_tags  # noqa: E402
from measure_images import grid, rows  # noqa: E402




def lattice(size: int, step: int, width: int = 2, offset: int = 0) -> np.ndarray:
    """size x size, boundary lines `width` px wide at offset + k * step (rows and columns)."""
    image = np.full((size, size), 255, np.uint8)
    for v in range(offset, size, step):
        image[v:v + width, :] = 0
        image[:, v:v + width] = 0
    return image




# --- known answers from the geometry ----------------------------------------------------------------
@pytest.mark.parametrize("kind, cell", [("squares", 32.0), ("hexagons", 40.0), ("voronoi", 48.0)])
@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_known_answer_images_within_0_05_g_of_exact(kind, cell, width) -> None:
    image, tessellation, cells = known_image(kind, 320, cell, width, seed=1)
    exact = exact_answer(tessellation, cells)
    found = measure_boundary(image, 1.0, None)
    assert found.line_length_px == pytest.approx(exact["length_px"])
    assert abs(found.astm_g_intercept - exact["g_intercept"]) <= 0.05
    assert abs(found.astm_g_planimetric - exact["g_planimetric"]) <= 0.05


def test_square_grid_of_the_issue_counts_every_crossing() -> None:
    # 1024 px, 32 px squares, 2 px lines, rows and columns: 32 boundaries per line, 2 x 1024 lines:
    # 65,536 crossings, l = 32 um, G = -6.643856 log10(0.032) - 3.288 = 6.6439 (before: 61,440, G 6.457).
    found = measure_boundary(lattice(1024, 32, 2, offset=16), 1.0, None, angles=(0, 90))
    assert found.intercepts == 65536
    assert found.astm_g_intercept == pytest.approx(-6.643856 * math.log10(0.032) - 3.288)


# --- by hand ------------------------------------------------------------------------------------------
def test_open_ended_network_counts_every_crossing() -> None:
    """40 x 60: a 2 px band at columns 30-31 from top to bottom (two grains) and, in the left grain, a
    dangling 1 px line on row 20, columns 5-14, that closes nothing."""
    image = np.full((40, 60), 255, np.uint8)
    image[:, 30:32] = 0
    image[20, 5:15] = 0
    found = measure_boundary(image, 1.0, angles=(0, 90))
    assert found.table.count == 2
    # Rows: all 40 cross the band once; row 20 also runs along the dangling line (a line lying along a
    # boundary counts it once, as a tangent). Columns 5-14 cross the dangling line: 10. Columns 30 and
    # 31 run inside the band: nothing. P = 40 + 1 + 10 = 51, of which 11 open.
    assert found.intercepts == 51 and found.open_intercepts == 11
    assert [c.count for c in found.per_path] == [41, 10]
    assert found.line_length_px == 2 * 40 * 60


def test_diagonal_lines_by_hand() -> None:
    """20 x 20 with a 2 px vertical band at columns 9-10 (boundary centre x = 10)."""
    image = np.full((20, 20), 255, np.uint8)
    image[:, 9:11] = 0
    found = measure_boundary(image, 1.0)
    # 45 degrees: the anti-diagonals x + y = d + 1 (d = 0..38) reach past x = 10 on both sides for
    # d = 10..28: 19 crossings; 135 degrees likewise; rows 20; columns none (they never cross it).
    assert [(c.label, c.count) for c in found.per_path] == [("0", 20), ("45", 19), ("90", 0), ("135", 19)]
    assert found.per_path[1].length_px == pytest.approx(400 * math.sqrt(2))  # each pixel once, sqrt(2) apart
    means = found.mean_intercepts_um()
    assert means["0"] == 20 and means["45"] == pytest.approx(400 * math.sqrt(2) / 19) and math.isnan(means["90"])
    assert math.isnan(found.anisotropy)  # one direction crosses nothing


def test_corner_grains_count_a_quarter_on_a_3_by_3_grid() -> None:
    """62 x 62 at 10 um/px, 2 px lines at 20-21 and 40-41: 9 grains, 4 of them at the field's corners."""
    image = np.full((62, 62), 255, np.uint8)
    for v in (20, 40):
        image[v:v + 2, :] = 0
        image[:, v:v + 2] = 0
    found = measure_boundary(image, 10.0)
    assert found.table.count == 9 and found.grains_inside == 1 and found.grains_cut == 8
    # 1 inside + 4 edge grains / 2 + 4 corner grains / 4 = 4 in 0.62 x 0.62 mm = 0.3844 mm^2.
    assert found.grains_weighted == 4.0
    assert found.astm_g_planimetric == pytest.approx(3.321928 * math.log10(4 / 0.3844) - 2.954)


def test_circles_pattern_by_hand() -> None:
    # Circles of radius 49.5, 33, 16.5 px about (50, 50) on the grid, whose boundaries lie at x, y = 25,
    # 50, 75: the largest crosses all six lines twice (12), the middle one too (12), the smallest only
    # x = 50 and y = 50 (4): P = 28 on L = 2 pi (49.5 + 33 + 16.5) px.
    found = measure_boundary(grid(), 1.0, pattern="circles")
    assert found.intercepts == 28 and found.line_length_px == pytest.approx(2 * math.pi * 99)
    assert list(found.mean_intercepts_um()) == ["circles"]


def test_intercepts_csv_lists_every_piece(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "grid.png"), grid())
    result = run_cli("measure", tmp_path / "grid.png", "--out", tmp_path / "out", "--pixel-size", "10",
                     "--angles", "0", "--intercepts")
    assert result.exit_code == 0, result.output
    pieces = rows(tmp_path / "out" / "grid_intercepts.csv")
    # Each row changes grain between columns 24|25, 49|50 and 74|75: pieces of 25 px, the middle two
    # complete; 100 rows.
    assert len(pieces) == 400 and {p["length_px"] for p in pieces} == {"25"}
    assert {p["length_um"] for p in pieces} == {"250"} and sum(int(p["complete"]) for p in pieces) == 200
    assert {p["test_lines"] for p in pieces} == {"0"}


# --- polarity -----------------------------------------------------------------------------------------
def test_white_on_black_is_detected_and_measured_as_its_inverse(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "in" / "dark.png") if (tmp_path / "in").mkdir() is None else "", grid())
    cv2.imwrite(str(tmp_path / "in" / "bright.png"), 255 - grid())
    result = run_cli("measure", tmp_path / "in", "--out", tmp_path / "out", "--pixel-size", "10")
    assert result.exit_code == 0, result.output
    assert "bright: more than 3/4 of it is dark: read as bright boundaries" in result.output
    assert "dark: more than" not in result.output
    summary = {r["image"]: r for r in rows(tmp_path / "out" / "summary.csv")}
    for column in ("grains", "astm_g_planimetric", "astm_g_intercept", "intercepts"):
        assert summary["bright"][column] == summary["dark"][column]
    assert summary["bright"]["grains"] == "16"
    forced = run_cli("measure", tmp_path / "in" / "bright.png", "--out", tmp_path / "forced", "--invert",
                     "--pixel-size", "10")
    assert forced.exit_code == 0, forced.output
    assert "more than 3/4" not in forced.output  # said by the user: nothing to tell
    assert rows(tmp_path / "forced" / "summary.csv")[0]["grains"] == "16"


# --- scale ----------------------------------------------------------------------------------------------
def test_tiff_resolution_gives_the_pixel_size_and_no_scale_leaves_g_empty(run_cli, tmp_path) -> None:
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(grid()).save(tmp_path / "in" / "scaled.tif", resolution_unit=3, x_resolution=1000.0,
                                 y_resolution=1000.0)  # 1000 px per cm: 10 um per px
    cv2.imwrite(str(tmp_path / "in" / "plain.png"), grid())
    assert pixel_size_of(tmp_path / "in" / "scaled.tif") == pytest.approx(10.0)
    assert pixel_size_of(tmp_path / "in" / "plain.png") is None
    result = run_cli("measure", tmp_path / "in", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "no scale for 1 of 2 images (plain): G and µm figures left empty; G needs --pixel-size" in result.output
    summary = {r["image"]: r for r in rows(tmp_path / "out" / "summary.csv")}
    assert float(summary["scaled"]["astm_g_planimetric"]) == pytest.approx(0.215925, abs=1e-6)
    assert summary["scaled"]["pixel_size_um"] == "10"
    assert summary["plain"]["astm_g_planimetric"] == "" and summary["plain"]["astm_g_intercept"] == ""
    assert summary["plain"]["mean_area_um2"] == "" and summary["plain"]["grains"] == "16"
    assert rows(tmp_path / "out" / "plain_grains.csv")[0]["area_px"] == "576"


@pytest.mark.parametrize("description, resolution, unit, expected", [
    (None, 20000.0, 3, 0.5),  # 20,000 px per cm
    (None, 50800.0, 2, 0.5),  # 50,800 px per inch
    (None, 72.0, 2, None),  # a software default, no scale
    (None, 300.0, 2, None),
    (None, 4.0, 1, None),  # unit "none"
    ("ImageJ=1.54f\nunit=micron\n", 4.0, 1, 0.25),  # 4 px per micron
    ("ImageJ=1.54f\nunit=nm\n", 0.5, 1, 0.002),
    ('<OME><Image><Pixels PhysicalSizeX="0.65" PhysicalSizeXUnit="µm"/></Image></OME>', None, None, 0.65),
    ('<OME><Image><Pixels PhysicalSizeX="650" PhysicalSizeXUnit="nm"/></Image></OME>', 72.0, 2, 0.65),
])
def test_scale_from_tiff_tags(description, resolution, unit, expected) -> None:
    scale = scale_from_tags(description, resolution, unit)
    assert (scale.um_per_px if scale else None) == (pytest.approx(expected) if expected else None)


# --- debris ---------------------------------------------------------------------------------------------
def grains_and_specks() -> np.ndarray:
    """200 x 200, 2 px lines at 24, 74, 124, 174 (25 grains, the inner ones 48 x 48 px) with 20 debris
    pockets, 5 x 5 px bright pieces walled in by 1 px of boundary against the lines at columns 74 and
    124 (so part of the network), and 6 etch pits: isolated 4 x 4 dark blobs inside grains."""
    image = lattice(200, 50, 2, offset=24)
    for line in (74, 124):
        for y in (28, 40, 52, 78, 90, 102, 128, 140, 152, 178):
            image[y:y + 7, line + 2:line + 9] = 0
            image[y + 1:y + 6, line + 3:line + 8] = 255
    for y, x in ((8, 8), (8, 100), (100, 40), (100, 150), (150, 100), (188, 188)):
        image[y:y + 4, x:x + 4] = 0
    return image


def test_min_grain_default_leaves_debris_out_and_warns(run_cli, tmp_path) -> None:
    image = grains_and_specks()
    found = measure_boundary(image, 1.0, None)
    pieces = measure_boundary(image, 1.0, 1)
    clean = measure_boundary(lattice(200, 50, 2, offset=24), 1.0, None)
    assert pieces.table.count == 45  # at --min-grain 1 every pocket is a grain
    # The 20 pockets (25 px) are a cluster far below the grains (M = 2,141 px, an inner grain holding 3
    # pockets and a pit): the empty stretch of the size histogram between them and M / 4 = 535 px runs
    # over the bins centred on 10**1.7 ... 10**2.3; its middle is 10**2.0 = 100 px.
    assert found.min_grain == 100
    assert found.table.count == 25 and found.below_min_grain == 20
    assert found.pits == 6  # the etch pits are filled: neither grains nor boundaries
    # No pocket wall counts as a boundary crossed; only the column running inside the band beside each
    # pocket, where the band is a pixel wider, changes grain twice more (a line along a boundary).
    assert found.open_intercepts == 0 and 0 <= found.intercepts - clean.intercepts <= 2 * 20
    assert found.astm_g_planimetric == clean.astm_g_planimetric
    cv2.imwrite(str(tmp_path / "specks.png"), image)
    result = run_cli("measure", tmp_path / "specks.png", "--out", tmp_path / "out", "--pixel-size", "1")
    assert result.exit_code == 0, result.output
    assert "specks: 20 background pieces under --min-grain 100 px were not counted as grains" in result.output
    row = rows(tmp_path / "out" / "summary.csv")[0]
    assert row["grains"] == "25" and row["min_grain_px"] == "100" and row["below_min_grain"] == "20"
    small = run_cli("measure", tmp_path / "specks.png", "--out", tmp_path / "small", "--min-grain", "10")
    assert rows(tmp_path / "small" / "summary.csv")[0]["grains"] == "45"


def test_auto_min_grain_by_hand() -> None:
    # 20 pieces of 25 px and 10 grains of 2,000 px: M = 2000, M / 4 = 500 px. In 0.2-decade bins the
    # pieces fill the bin 1.2-1.4 (log10 25 = 1.40); the longest empty stretch below log10 500 = 2.70 is
    # 1.6-2.8, centres 1.7 ... 2.7: its middle 10**2.2 = 158 px.
    assert auto_min_grain(np.array([25] * 20 + [2000] * 10)) == 158
    # No small-piece cluster: M / 100, with M = 700 (half of the 2,600 px lie in pieces of 700 px or more).
    assert auto_min_grain(np.array([500, 600, 700, 800])) == 7
    assert auto_min_grain(np.array([3, 4, 50])) == 5  # never below 5
    assert auto_min_grain(np.array([], np.int64)) == 5


# --- field statistics -------------------------------------------------------------------------------------
def test_field_statistics_in_summary_csv(run_cli, tmp_path) -> None:
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), grid())  # N_A = 9 / 1 mm^2
    three = np.full((62, 62), 255, np.uint8)
    for v in (20, 40):
        three[v:v + 2, :] = 0
        three[:, v:v + 2] = 0
    cv2.imwrite(str(tmp_path / "in" / "b.png"), three)  # N_A = 4 / 0.3844 mm^2 = 10.406
    result = run_cli("measure", tmp_path / "in", "--out", tmp_path / "out", "--pixel-size", "10")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "out" / "summary.csv")
    assert [(r["level"], r["image"], r["specimen"]) for r in table] == [
        ("image", "a", "in"), ("image", "b", "in"), ("specimen", "", "in")]
    specimen = table[2]
    n_a = [9.0, 4 / 0.3844]
    mean = sum(n_a) / 2
    ci = 12.706 * abs(n_a[0] - n_a[1]) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) s / sqrt(n)
    assert float(specimen["astm_g_planimetric"]) == pytest.approx(3.321928 * math.log10(mean) - 2.954, abs=1e-5)
    assert float(specimen["planimetric_ra_pct"]) == pytest.approx(100 * ci / mean, rel=1e-5)
    g_low, g_high = (3.321928 * math.log10(v) - 2.954 for v in (mean - ci, mean + ci))
    assert float(specimen["astm_g_planimetric_ci95"]) == pytest.approx((g_high - g_low) / 2, rel=1e-5)
    assert specimen["source"] == "2 fields (E112 section 15)" and specimen["fields"] == "2"
    assert specimen["grains"] == "25" and table[0]["astm_g_planimetric_ci95"] == ""  # 16 + 9 grains; no CI per image
    assert "specimen in: 2 fields (E112 section 15): planimetric G" in result.output


def test_field_statistics_by_hand() -> None:
    stats = field_statistics([10.0, 12.0, 14.0])  # mean 12, s 2, CI = 4.303 x 2 / sqrt(3) = 4.969
    assert stats.mean == 12 and stats.sd == 2 and stats.ci95 == pytest.approx(4.303 * 2 / math.sqrt(3))
    assert stats.relative_accuracy_pct == pytest.approx(100 * 4.303 * 2 / math.sqrt(3) / 12)
    assert math.isnan(field_statistics([5.0]).ci95) and field_statistics([]).n == 0
    assert t_975(30) == 2.042 and t_975(1000) == pytest.approx(1.962, abs=1e-3)
