"""`measure` (model/measure/) on hand-drawn boundary images whose grains are worked out on paper."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from conftest import one_error_line
from model.measure.grains import measure_boundary
from measure_images import gray_fragmented_grid, grid, rows, write




def polygons() -> np.ndarray:
    """40 x 60, all boundary except: a 10 x 20 rectangle, an L-shape, a 10 x 10 square on the bottom edge, a 3 x 3 speck."""
    image = np.zeros((40, 60), np.uint8)
    image[2:12, 2:22] = 255  # rectangle, 200 px, centroid (x 11.5, y 6.5)
    image[14:22, 2:34] = 255  # L-shape foot, 8 x 32 = 256 px
    image[2:14, 24:34] = 255  # L-shape arm, 12 x 10 = 120 px
    image[30:40, 2:12] = 255  # square touching the bottom edge, 100 px
    image[30:33, 40:43] = 255  # speck, 9 px < 10: not a grain
    return image






# --- by hand -----------------------------------------------------------------------------------
def test_grid_counts_areas_diameters_and_both_astm_numbers() -> None:
    result = measure_boundary(grid(), pixel_size_um=10.0, angles=(0, 90))  # 100 x 100 px of 10 um: 1 mm^2
    table = result.table
    assert table.count == 16 and result.grains_inside == 4 and result.grains_cut == 12
    assert sorted(table.area_px.tolist()) == [529] * 4 + [552] * 8 + [576] * 4
    assert table.area_um2.sum() == 8836 * 100
    assert table.diameter_um[0] == pytest.approx(2 * math.sqrt(57600 / math.pi))  # 270.81 um
    # Planimetric (E112, rectangular field): 4 inside + 8 cut / 2 + 4 corner grains / 4 = 9 per mm^2;
    # G = 3.321928 log10(9) - 2.954 = 0.2159 (0.3679 if the corner grains counted 1/2 like the others).
    assert result.grains_weighted == 9.0
    assert result.astm_g_planimetric == pytest.approx(3.321928 * math.log10(9) - 2.954)
    assert result.astm_g_planimetric == pytest.approx(0.2159, abs=1e-4)
    # Intercept: every row and every column crosses 3 boundaries, the 6 lying inside a boundary
    # band too (they cross the 3 bands across them): P = 2 x 100 x 3 = 600 on L = 2 x 100 x 100 px
    # = 200 mm; l = 1/3 mm; G = -6.643856 log10(1/3) - 3.288 = -0.1181.
    assert result.intercepts == 600 and result.line_length_px == 20000 and result.open_intercepts == 0
    assert result.mean_intercept_um == pytest.approx(1000 / 3)
    assert result.astm_g_intercept == pytest.approx(-6.643856 * math.log10(1 / 3) - 3.288)
    assert result.astm_g_intercept == pytest.approx(-0.1181, abs=1e-4)
    assert result.mean_intercepts_um() == {"0": pytest.approx(1000 / 3), "90": pytest.approx(1000 / 3)}
    assert result.anisotropy == pytest.approx(1.0)


def test_a_run_keeps_each_images_figures_but_not_its_image_sized_arrays(tmp_path) -> None:
    from model.measure.run import MeasureOptions, measure_files

    for k in range(3):
        write(tmp_path / "in" / f"grid{k}.png", grid())
    report = measure_files([tmp_path / "in"], tmp_path / "out", MeasureOptions(pixel_size_um=10.0, angles=(0, 90)))
    full = measure_boundary(grid(), pixel_size_um=10.0, min_grain=None, angles=(0, 90))  # as measure: min-grain auto
    assert len(report.measured) == 3
    for _, _, kept in report.measured:  # a folder of 2048 px images kept about 150 MB an image before
        assert kept.table.grain_map is None
        assert [(c.label, c.count, c.open_count, c.length_px) for c in kept.per_path] == [("0", 300, 0, 10000.0),
                                                                                            ("90", 300, 0, 10000.0)]
        assert kept.summary() == full.summary() and kept.table.area_px.tolist() == full.table.area_px.tolist()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["images"][2]["image"] == "grid2"


def test_polygons_areas_centroids_and_the_speck_rule() -> None:
    result = measure_boundary(polygons())  # min_grain 10
    table = result.table
    assert table.area_px.tolist() == [200, 376, 100]  # raster order of the first pixel; the speck is not a grain
    assert table.touches_border.tolist() == [False, False, True]
    np.testing.assert_allclose(table.centroid_x, [11.5, (256 * 17.5 + 120 * 28.5) / 376, 6.5])
    np.testing.assert_allclose(table.centroid_y, [6.5, (256 * 17.5 + 120 * 7.5) / 376, 34.5])
    np.testing.assert_allclose(table.diameter_um, 2 * np.sqrt(np.array([200, 376, 100]) / math.pi))
    # Planimetric: 2400 um^2 = 0.0024 mm^2, N_A = (2 + 1/2) / 0.0024; G = 7.0707. No grain holds a
    # corner: the corners lie in boundary, and the grain nearest to one does not touch both its edges.
    assert result.astm_g_planimetric == pytest.approx(3.321928 * math.log10(2.5 / 0.0024) - 2.954)
    assert result.astm_g_planimetric == pytest.approx(7.0707, abs=1e-4)
    assert measure_boundary(polygons(), min_grain=9).table.area_px.tolist() == [200, 376, 100, 9]
    inner = measure_boundary(polygons(), exclude_border=True)
    assert inner.table.area_px.tolist() == [200, 376]
    assert inner.astm_g_planimetric == result.astm_g_planimetric  # ASTM counts border grains half regardless


def test_no_grain_gives_nan_not_an_error() -> None:
    result = measure_boundary(np.zeros((20, 20), np.uint8))
    assert result.table.count == 0 and math.isnan(result.astm_g_planimetric) and math.isnan(result.astm_g_intercept)


# --- through the command line -------------------------------------------------------------------
def test_cli_writes_every_file_with_the_hand_worked_values(run_cli, tmp_path) -> None:
    write(tmp_path / "in" / "grid.png", grid())
    write(tmp_path / "in" / "poly.png", polygons())
    out = tmp_path / "out"
    result = run_cli("measure", tmp_path / "in", "--out", out, "--pixel-size", "10", "--angles", "0,90",
                     "--min-grain", "10")
    assert result.exit_code == 0, result.output
    assert "measured 2 of 2 images (19 grains)" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}{s}" for n in ("grid", "poly") for s in ("_grains.csv", "_grains.tif", "_overlay.png", "_histogram.png")]
        + ["summary.csv", "summary.json"])
    summary = {row["image"]: row for row in rows(out / "summary.csv")}
    assert summary["grid"]["grains"] == "16" and summary["grid"]["grains_cut"] == "12"
    assert float(summary["grid"]["mean_area_um2"]) == 55225 and float(summary["grid"]["median_area_um2"]) == 55200
    assert float(summary["grid"]["astm_g_planimetric"]) == pytest.approx(0.215925, abs=1e-6)
    assert float(summary["grid"]["astm_g_intercept"]) == pytest.approx(-0.118075, abs=1e-6)
    assert float(summary["grid"]["mean_intercept_um_0"]) == pytest.approx(333.333, abs=1e-3)
    assert float(summary["grid"]["anisotropy"]) == 1.0 and summary["grid"]["pixel_size_um"] == "10"
    assert summary["grid"]["min_grain_px"] == "10" and summary["poly"]["below_min_grain"] == "1"
    grains = rows(out / "poly_grains.csv")
    assert [(g["grain_id"], g["area_px"], g["area_um2"], g["touches_border"]) for g in grains] == [
        ("1", "200", "20000", "0"), ("2", "376", "37600", "0"), ("3", "100", "10000", "1")]
    grain_map = cv2.imread(str(out / "poly_grains.tif"), cv2.IMREAD_UNCHANGED)
    assert grain_map.dtype == np.uint16 and grain_map.shape == (40, 60)
    assert np.bincount(grain_map.ravel()).tolist()[1:] == [200, 376, 100] and grain_map[31, 41] == 0
    overlay = cv2.imread(str(out / "poly_overlay.png"))
    assert overlay.shape == (40, 60, 3) and (overlay[0, 0] == 0).all()  # boundary drawn black
    assert len({tuple(overlay[y, x]) for y, x in [(5, 5), (18, 5), (35, 5)]}) == 3  # one colour per grain
    options = json.loads((out / "summary.json").read_text())
    assert options["options"] == {"pixel_size_um": 10.0, "min_grain": 10, "exclude_border": False, "pooled": False,
                                  "angles": [0.0, 90.0], "pattern": "lines", "intercepts_csv": False, "invert": False,
                                  "specimens_csv": None, "mask": None, "roi": None, "keep_data_bar": False,
                                  "twins": "none", "report": False}
    assert options["restore"] is None
    assert [(i["image"], i["min_grain_px"], i["scale_from"]) for i in options["images"]] == [
        ("grid", 10, "option"), ("poly", 10, "option")]


def test_pooled_histogram_and_exclude_border(run_cli, tmp_path) -> None:
    write(tmp_path / "grid.png", grid())
    out = tmp_path / "out"
    result = run_cli("measure", tmp_path / "grid.png", "--out", out, "--pooled", "--exclude-border")
    assert result.exit_code == 0, result.output
    assert (out / "histogram.png").is_file() and not (out / "grid_histogram.png").exists()
    assert rows(out / "summary.csv")[0]["grains"] == "4" and len(rows(out / "grid_grains.csv")) == 4


def test_a_corrupt_file_is_named_at_the_end_and_the_others_measured(run_cli, tmp_path) -> None:
    write(tmp_path / "in" / "a.png", grid())
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write(tmp_path / "in" / "c.png", polygons())
    out = tmp_path / "out"
    result = run_cli("measure", tmp_path / "in", "--out", out)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-2].startswith(f"failed: {tmp_path / 'in' / 'b.png'}")
    assert "measured 2 of 3 images" in result.output and "1 failed" in result.output
    assert [row["image"] for row in rows(out / "summary.csv")] == ["a", "c", ""]  # then the specimen's row
    assert not any(p.name.startswith("b_") for p in out.iterdir())
    assert json.loads((out / "summary.json").read_text())["failures"][0]["source"].endswith("b.png")


@pytest.mark.parametrize("args, message", [
    (["--pixel-size", "0"], "--pixel-size"),
    (["--min-grain", "0"], "--min-grain"),
    (["--angles", "0,x"], "--angles"),
    (["--angles", "0,180"], "same direction twice"),
    (["--pattern", "squares"], "--pattern"),
    (["--method", "bridge"], "--method needs --restore"),
    (["--restore", "--scale", "0"], "--scale"),
    (["--restore", "--model", "{tmp}/none.keras"], "model file not found"),
    (["{tmp}/missing.png"], "input not found"),
])
def test_bad_input_is_one_clear_line_and_nothing_is_written(run_cli, tmp_path, args, message) -> None:
    write(tmp_path / "grid.png", grid())
    args = [a.format(tmp=tmp_path) for a in args]
    line = one_error_line(run_cli("measure", tmp_path / "grid.png", *args, "--out", tmp_path / "out"))
    assert message in line
    assert not (tmp_path / "out").exists()


def test_restore_without_any_model_says_so(run_cli, tmp_path, monkeypatch) -> None:
    import model.pretrained

    monkeypatch.setattr(model.pretrained, "BUNDLED_MODEL", tmp_path / "absent.keras")
    write(tmp_path / "grid.png", grid())
    line = one_error_line(run_cli("measure", tmp_path / "grid.png", "--restore", "--out", tmp_path / "out"))
    assert "no --model given" in line and not (tmp_path / "out").exists()




def test_restore_with_bridge_closes_the_gaps_of_a_gray_micrograph(run_cli, tmp_path) -> None:
    write(tmp_path / "gray.png", gray_fragmented_grid())
    plain = run_cli("measure", tmp_path / "gray.png", "--out", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    assert rows(tmp_path / "plain" / "summary.csv")[0]["grains"] == "13"  # three pairs of grains merged
    result = run_cli("measure", tmp_path / "gray.png", "--out", tmp_path / "out", "--restore", "--method", "bridge",
                     "--binarize", "otsu", "--min-speck", "10")
    assert result.exit_code == 0, result.output
    assert "method bridge: min-speck 10 (option)" in result.output
    assert rows(tmp_path / "out" / "summary.csv")[0]["grains"] == "16"
    restore = json.loads((tmp_path / "out" / "summary.json").read_text())["restore"]
    assert restore["method"] == "bridge" and restore["binarize"] == "otsu" and restore["min_speck"] == 10


def test_restore_draws_the_overlay_on_the_micrograph_not_on_the_restoration(run_cli, tmp_path) -> None:
    write(tmp_path / "gray.png", gray_fragmented_grid())
    result = run_cli("measure", tmp_path / "gray.png", "--out", tmp_path / "out", "--restore", "--method", "bridge",
                     "--binarize", "otsu", "--min-speck", "10")
    assert result.exit_code == 0, result.output
    overlay = cv2.imread(str(tmp_path / "out" / "gray_overlay.png")).astype(np.float64)
    inside = overlay[5:20, 5:20]  # one grain: a binary restoration under it would be one flat colour
    assert inside.std(axis=(0, 1)).min() > 3  # the micrograph's noise (sigma 12, 45 % of it) shows through
