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
