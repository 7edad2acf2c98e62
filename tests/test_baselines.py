"""Classical baselines: hand-drawn gaps, and a small generated library."""

from __future__ import annotations

import numpy as np
import pytest

from model.methods.classical import BASELINES, bridge, bridged, end_points, identity, thin
from model.scoring.metrics import MetricAccumulator
from pipeline.config import GenerationConfig
from pipeline.generate import generate
from pipeline.store import LibraryStore

SIZE = 64


def straight_line(width: int, vertical: bool = False) -> np.ndarray:
    """A background image crossed by one horizontal (or vertical) boundary `width` px thick."""
    image = np.full((SIZE, SIZE), 255, np.uint8)
    image[30 : 30 + width, :] = 0
    return image.T.copy() if vertical else image


def with_gap(image: np.ndarray, start: int, stop: int, vertical: bool = False) -> np.ndarray:
    """`image` with the columns (rows, if vertical) start..stop-1 wiped to background."""
    broken = image.copy()
    if vertical:
        broken[start:stop, :] = 255
    else:
        broken[:, start:stop] = 255
    return broken


def test_identity_returns_the_input():
    micro = with_gap(straight_line(2), 20, 30)
    assert identity(micro) is micro
    assert set(BASELINES) == {"identity", "bridge"} and BASELINES["bridge"] is bridge


@pytest.mark.parametrize("vertical", [False, True])
@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_bridge_closes_a_straight_gap_exactly(width, vertical):
    label = straight_line(width, vertical)
    micro = with_gap(label, 25, 35, vertical)  # a 10-px gap
    np.testing.assert_array_equal(bridge(micro, max_gap=20), label)


def test_bridge_leaves_a_gap_longer_than_the_limit():
    micro = with_gap(straight_line(2), 25, 35)
    np.testing.assert_array_equal(bridge(micro, max_gap=8), micro)


def test_bridge_does_not_extend_ends_facing_away_from_any_boundary():
    # Two parallel segments 20 px apart: their ends point along them, away from the other
    # segment, and the image border is 35 px away, beyond the 30-px limit.
    micro = np.full((96, 96), 255, np.uint8)
    micro[38:40, 35:61] = 0
    micro[58:60, 35:61] = 0
    np.testing.assert_array_equal(bridge(micro, max_gap=30), micro)


def test_bridge_extends_an_end_to_a_line_across_its_way():
    # A T whose stem, coming up from the bottom border, stops 8 px short of the bar.
    micro = np.full((SIZE, SIZE), 255, np.uint8)
    micro[10:12, :] = 0
    micro[20:, 31:33] = 0
    closed = micro.copy()
    closed[12:20, 31:33] = 0
    np.testing.assert_array_equal(bridge(micro, max_gap=20), closed)


def test_bridged_removes_a_speck_in_the_gap_before_the_bridge_can_link_to_it():
    # A T as in the test above, at 128 px (the default reach, 14 % of the side, is 18 px), with
    # a 2x2 speck in the stem's 8-px gap: the bare bridge links the stem to the speck and leaves
    # the grain boundary open; model+bridge drops the speck first.
    micro = np.full((128, 128), 255, np.uint8)
    micro[20:22, :] = 0
    micro[30:, 63:65] = 0
    closed = micro.copy()
    closed[22:30, 63:65] = 0
    micro[25:27, 63:65] = 0
    assert not np.array_equal(bridge(micro), closed)
    np.testing.assert_array_equal(bridged(micro, min_speck=5), closed)
    np.testing.assert_array_equal(bridged(micro, min_speck=0), bridge(micro))


def test_bridge_extends_an_end_to_the_image_border():
    micro = np.full((SIZE, SIZE), 255, np.uint8)
    micro[30:32, 10:] = 0  # stops 10 px short of the left border
    closed = micro.copy()
    closed[30:32, :10] = 0
    np.testing.assert_array_equal(bridge(micro, max_gap=20), closed)
    np.testing.assert_array_equal(bridge(micro, max_gap=20, to_border=False), micro)


def test_thin_leaves_a_one_pixel_line_with_two_end_points():
    skeleton = thin(straight_line(4) < 128)
    rows, cols = np.nonzero(skeleton)
    assert len(set(rows)) == 1 and len(cols) == cols.max() - cols.min() + 1  # one unbroken row
    assert end_points(skeleton).tolist() == [[rows[0], cols.min()], [rows[0], cols.max()]]


def test_bridge_keeps_an_image_without_boundary():
    empty = np.full((32, 32), 255, np.uint8)
    np.testing.assert_array_equal(bridge(empty), empty)


def test_bridge_beats_identity_on_a_generated_library(tmp_path):
    out = tmp_path / "small.zarr"
    generate(out, 40, GenerationConfig(size=128), seed=0)
    store = LibraryStore.open(out)
    scores = {name: MetricAccumulator() for name in BASELINES}
    for index in np.flatnonzero(store.done()):
        micro, label = store.read("micro", int(index)), store.read("label", int(index))
        for name, baseline in BASELINES.items():
            prediction = baseline(micro)
            assert prediction.dtype == np.uint8 and prediction.shape == micro.shape
            scores[name].update(prediction, label, micro)
    identity_scores, bridge_scores = (scores[name].result() for name in ("identity", "bridge"))
    assert identity_scores["images"] == 40
    assert bridge_scores["grain_count_error"] < identity_scores["grain_count_error"] / 2
    assert bridge_scores["grain_ari"] > identity_scores["grain_ari"]
    assert bridge_scores["gap_recall"] > 0.3
