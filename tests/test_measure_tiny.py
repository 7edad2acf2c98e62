"""`measure` on images with no grain to find (1 px, or every piece under --min-grain): a measurement of
0 grains, not numpy's "boolean index did not match" as the image's failure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.mark.parametrize("value", [255, 0])
@pytest.mark.parametrize("options", [[], ["--pattern", "circles"], ["--exclude-border"],
                                     ["--pattern", "circles", "--exclude-border", "--pixel-size", "1"]])
def test_a_one_pixel_image_measures_as_no_grain(run_cli, tmp_path, value, options):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.full((1, 1), value, np.uint8))
    result = run_cli("measure", image, "--out", tmp_path / "out", *options)
    assert result.exit_code == 0 and "failed" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("measured 1 of 1 images (0 grains)")


def test_a_min_grain_above_every_piece_measures_as_no_grain(run_cli, tmp_path):
    image = tmp_path / "grid.png"
    grid = np.full((64, 64), 255, np.uint8)
    grid[::16, :] = grid[:, ::16] = 0
    cv2.imwrite(str(image), grid)
    result = run_cli("measure", image, "--out", tmp_path / "out", "--min-grain", 10**12)
    assert result.exit_code == 0 and "failed" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("measured 1 of 1 images (0 grains)")


@pytest.mark.parametrize("size", ["1e300", "1e-300", "0"])
def test_a_pixel_size_no_microscope_has_is_refused_in_one_line(run_cli, tmp_path, size):
    from conftest import one_error_line

    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.full((8, 8), 255, np.uint8))
    line = one_error_line(run_cli("measure", image, "--out", tmp_path / "out", "--pixel-size", size))
    assert "--pixel-size" in line and "range" in line, line
    assert not (tmp_path / "out").exists()


def test_tiff_tags_giving_a_kilometre_pixel_fail_that_image_with_the_reason(run_cli, tmp_path):
    from PIL import Image

    grid = np.full((64, 64), 255, np.uint8)
    grid[::16, :] = grid[:, ::16] = 0
    Image.fromarray(grid).save(tmp_path / "huge.tif", resolution_unit=3, x_resolution=1e-5, y_resolution=1e-5)
    result = run_cli("measure", tmp_path / "huge.tif", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "huge.tif: its tiff tags give 1e+09 µm a pixel, outside 0.0001 to 100000: give --pixel-size UM" \
        in result.output, result.output


def _ome_tiff(path, x_um, y_um):
    from PIL import Image

    grid = np.full((64, 64), 255, np.uint8)
    grid[::16, :] = grid[:, ::16] = 0
    ome = (f'<?xml version="1.0"?><OME><Image><Pixels PhysicalSizeX="{x_um}" PhysicalSizeXUnit="um" '
           f'PhysicalSizeY="{y_um}" PhysicalSizeYUnit="um"/></Image></OME>')
    Image.fromarray(grid).save(path, tiffinfo={270: ome})
    return path


def test_ome_pixels_of_another_height_than_width_fail_that_image_instead_of_using_x(run_cli, tmp_path):
    image = _ome_tiff(tmp_path / "wide.tif", 0.5, 2.0)
    result = run_cli("measure", image, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "wide.tif: its OME metadata gives pixels of 0.5 x 2 µm (not square)" in result.output, result.output
    result = run_cli("measure", image, "--out", tmp_path / "out2", "--pixel-size", "1")  # the user's own choice
    assert result.exit_code == 0, result.output


def test_square_ome_pixels_still_give_the_scale(run_cli, tmp_path):
    from model.measure.scale import scale_of

    assert scale_of(_ome_tiff(tmp_path / "square.tif", 0.5, 0.5)).um_per_px == 0.5
