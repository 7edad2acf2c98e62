"""`--twins`: straight parallel-sided bands inside grains, counted or merged into their grain (E112, annealed fcc)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from measure_twins import compare  # noqa: E402
from model.measure.grains import measure_boundary  # noqa: E402
from measure_images import rows  # noqa: E402




def banded() -> np.ndarray:
    """120 x 120, one grain crossed top to bottom by a twin band 10 px wide (columns 52-61) between 2 px lines."""
    image = np.full((120, 120), 255, np.uint8)
    image[:, 50:52] = 0
    image[:, 62:64] = 0
    return image


def test_count_lists_the_band_and_merge_gives_one_grain(run_cli, tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "twin.png"), banded())
    counted = run_cli("measure", tmp_path / "twin.png", "--out", tmp_path / "count", "--twins", "count")
    assert counted.exit_code == 0, counted.output
    grains = rows(tmp_path / "count" / "twin_grains.csv")
    # grain 1: left of the band, 2: the band, 3: right of it; the band lies in grain 1 (and 3, its other piece)
    assert [(g["grain_id"], g["twin_of"], g["twins"]) for g in grains] == [("1", "0", "1"), ("2", "1", "0"),
                                                                           ("3", "0", "1")]
    assert rows(tmp_path / "count" / "summary.csv")[0]["twins"] == "1"
    merged = run_cli("measure", tmp_path / "twin.png", "--out", tmp_path / "merge", "--twins", "merge")
    assert merged.exit_code == 0, merged.output
    (grain,) = rows(tmp_path / "merge" / "twin_grains.csv")
    assert (grain["area_px"], grain["twins"]) == ("14400", "1")  # the twin boundaries are no boundaries
    summary = rows(tmp_path / "merge" / "summary.csv")[0]
    assert (summary["grains"], summary["twins"], summary["intercepts"]) == ("1", "1", "0")


def test_no_band_no_change() -> None:
    grid = np.full((100, 100), 255, np.uint8)
    for v in (24, 49, 74):
        grid[v:v + 2, :] = 0
        grid[:, v:v + 2] = 0
    plain, merged = measure_boundary(grid, 10.0, 10), measure_boundary(grid, 10.0, 10, twins="merge")
    assert merged.table.count == plain.table.count == 16 and merged.twins.bands == 0
    assert merged.astm_g_planimetric == plain.astm_g_planimetric


def test_merged_twins_give_the_twin_free_count_on_rendered_grain_maps() -> None:
    # the first four equiaxed maps of benchmarks/measure_twins.py: polySim grains, 40 % of them with a band
    found = [compare(index) for index in (0, 1, 3, 4)]
    truth = sum(r["truth"] for r in found)
    assert sum(r["twinned"] for r in found) > 1.7 * truth  # the bands and the pieces they cut are grains
    assert abs(sum(r["merged"] for r in found) - truth) <= 0.03 * truth
    assert abs(sum(r["merged_truth"] for r in found) - truth) <= 0.03 * truth  # no twins: (almost) nothing merged
