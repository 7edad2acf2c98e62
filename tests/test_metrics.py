"""Metric suite: scores of tiny hand-drawn masks, worked out by hand in the comments.

Masks are drawn with B = boundary (0) and W = background (255).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.scoring.metrics import (
    MetricAccumulator,
    adjusted_rand_index,
    astm_g_error,
    astm_grain_size,
    boundary_f1,
    boundary_iou,
    confusion_matrix,
    find_grains,
    gap_recall,
    grain_ari,
    grain_count_error,
    image_statistics,
    miou,
    spurious_rate,
)


def draw(rows: str) -> np.ndarray:
    """A uint8 image from rows of 'B' (boundary, 0) and 'W' (background, 255)."""
    return np.array([[0 if c == "B" else 255 for c in row.split()] for row in rows.strip().splitlines()],
                    dtype=np.uint8)


# A vertical boundary; the prediction misses its lower half and adds one pixel beside it.
GT = draw("""
W W B W
W W B W
W W B W
W W B W
""")
PRED = draw("""
W W B W
W W B W
W B W W
W W W W
""")
# The input lost the lower two pixels of the boundary.
MICRO = draw("""
W W B W
W W B W
W W W W
W W W W
""")
EMPTY = np.full((4, 4), 255, np.uint8)
FULL = np.zeros((4, 4), np.uint8)

# Two grains per side of a cross, 8x8 (all four touch the border):
# top-left 3x3 = 9 px, top-right 3x4 = 12, bottom-left 4x5 = 20, bottom-right 4x2 = 8.
CROSS = draw("""
W W W B W W W W
W W W B W W W W
W W W B W W W W
B B B B B B B B
W W W W W B W W
W W W W W B W W
W W W W W B W W
W W W W W B W W
""")
# The lower arm erased: bottom-left and bottom-right merge into one grain of 28 px.
CROSS_BROKEN = draw("""
W W W B W W W W
W W W B W W W W
W W W B W W W W
B B B B B B B B
W W W W W W W W
W W W W W W W W
W W W W W W W W
W W W W W W W W
""")


# --- pixel metrics ---------------------------------------------------------------------------
def test_confusion_matrix_counts_by_hand():
    # boundary: TP 2 ((0,2), (1,2)), missed 2 ((2,2), (3,2)), false 1 ((2,1)); background 16 - 5 = 11.
    assert confusion_matrix(PRED, GT).tolist() == [[2, 2], [1, 11]]


def test_miou_and_boundary_iou_by_hand():
    # IoU boundary = 2 / (2 + 2 + 1) = 0.4; IoU background = 11 / (11 + 1 + 2) = 11/14.
    assert boundary_iou(PRED, GT) == pytest.approx(0.4)
    assert miou(PRED, GT) == pytest.approx((0.4 + 11 / 14) / 2)  # 0.592857...


def test_threshold_is_128():
    gt = np.array([[0, 255]], np.uint8)
    assert miou(np.array([[127, 128]], np.uint8), gt) == 1.0  # 127 is boundary, 128 background
    assert miou(np.array([[128, 127]], np.uint8), gt) == 0.0


def test_miou_edge_cases():
    # Both all background: the boundary class has a zero denominator and is left out (as Keras).
    assert miou(EMPTY, EMPTY) == 1.0
    assert math.isnan(boundary_iou(EMPTY, EMPTY))
    # All boundary against all background: both classes present, neither intersects.
    assert miou(FULL, EMPTY) == 0.0
    assert boundary_iou(FULL, EMPTY) == 0.0
    assert miou(FULL, FULL) == 1.0 and boundary_iou(FULL, FULL) == 1.0


def test_miou_pools_one_confusion_matrix():
    # Image 2: all background in both. Pooled: boundary IoU 2/5 = 0.4 still; background
    # (11 + 16) / (11 + 16 + 1 + 2) = 27/30 = 0.9; mIoU = (0.4 + 0.9) / 2 = 0.65.
    # The mean of per-image mIoUs would be (0.592857 + 1.0) / 2 = 0.796: not the definition.
    assert miou([PRED, EMPTY], [GT, EMPTY]) == pytest.approx(0.65)
    assert (miou(PRED, GT) + miou(EMPTY, EMPTY)) / 2 == pytest.approx(0.7964286, abs=1e-6)
    accumulator = MetricAccumulator()
    accumulator.update(PRED, GT, MICRO)
    accumulator.update(EMPTY, EMPTY, EMPTY)
    assert accumulator.result()["miou"] == pytest.approx(0.65)


def test_miou_equals_keras_mean_iou():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(7)
    preds = [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(3)]
    gts = [np.where(rng.random((16, 16)) < 0.2, 0, 255).astype(np.uint8) for _ in range(3)]
    meter = keras.metrics.MeanIoU(num_classes=2)
    for pred, gt in zip(preds, gts):
        meter.update_state((gt >= 128).astype(np.int32), (pred >= 128).astype(np.int32))
    assert miou(preds, gts) == pytest.approx(float(meter.result()), abs=1e-6)
    # A class absent from both sides: Keras averages over the other class only.
    meter = keras.metrics.MeanIoU(num_classes=2)
    meter.update_state(np.ones((4, 4), np.int32), np.ones((4, 4), np.int32))
    assert miou(EMPTY, EMPTY) == pytest.approx(float(meter.result()), abs=1e-6)


def test_gap_recall_by_hand():
    # Erased: (2,2) and (3,2). PRED has neither as boundary: 0/2. GT has both: 2/2.
    assert gap_recall(PRED, GT, MICRO) == 0.0
    assert gap_recall(GT, GT, MICRO) == 1.0
    half = GT.copy()
    half[3, 2] = 255  # recovers (2,2) only
    assert gap_recall(half, GT, MICRO) == 0.5
    # Nothing erased: undefined.
    assert math.isnan(gap_recall(PRED, GT, GT))


def test_spurious_rate_by_hand():
    # One of the 12 gt background pixels, (2,1), is predicted as boundary.
    assert spurious_rate(PRED, GT) == pytest.approx(1 / 12)
    assert spurious_rate(GT, GT) == 0.0
    assert spurious_rate(FULL, EMPTY) == 1.0
    assert math.isnan(spurious_rate(EMPTY, FULL))  # gt has no background


def test_boundary_f1_by_hand():
    # Predicted (0,2), (1,2), (2,1); gt (0,2), (1,2), (2,2), (3,2).
    # tol 0: precision 2/3, recall 2/4, F1 = 2 (2/3)(1/2) / (2/3 + 1/2) = 4/7.
    assert boundary_f1(PRED, GT, tol=0) == pytest.approx(4 / 7)
    # tol 1: (2,1) is 1 from (2,2): precision 1; (3,2) is sqrt(2) from (2,1): recall 3/4; F1 = 6/7.
    assert boundary_f1(PRED, GT, tol=1) == pytest.approx(6 / 7)
    # tol 1.5 >= sqrt(2): everything matched.
    assert boundary_f1(PRED, GT, tol=1.5) == 1.0


def test_boundary_f1_tolerance_is_euclidean():
    gt = np.full((6, 6), 255, np.uint8)
    pred = gt.copy()
    gt[0, 0] = 0
    pred[1, 2] = 0  # sqrt(5) = 2.236 away, chessboard distance 2
    assert boundary_f1(pred, gt, tol=2) == 0.0
    assert boundary_f1(pred, gt, tol=2.25) == 1.0


def test_boundary_f1_empty_cases():
    assert math.isnan(boundary_f1(EMPTY, EMPTY))  # no boundary anywhere: undefined
    assert boundary_f1(EMPTY, GT) == 0.0  # everything missed
    assert boundary_f1(GT, EMPTY) == 0.0  # everything spurious


# --- grains ----------------------------------------------------------------------------------
def test_grains_count_border_and_specks():
    grains = find_grains(CROSS < 128, min_area=1)
    assert (grains.count, grains.cut, grains.inside) == (4, 4, 0)
    # The default minimum area of 10 px drops the 9-px and 8-px grains.
    assert find_grains(CROSS < 128).count == 2
    ring = draw("""
    W W W W W
    W B B B W
    W B W B W
    W B B B W
    W W W W W
    """)
    # The 1-px hole inside the ring is a speck; the outside touches the border.
    assert find_grains(ring < 128, min_area=1).count == 2
    only = find_grains(ring < 128, min_area=2)
    assert (only.count, only.cut) == (1, 1)


def test_grain_count_error_by_hand():
    # gt 4 grains, prediction 3: |3 - 4| / 4.
    assert grain_count_error(CROSS_BROKEN, CROSS, min_grain_area=1) == 0.25
    # Two images: mean of 0.25 and 0.
    assert grain_count_error([CROSS_BROKEN, CROSS], [CROSS, CROSS], min_grain_area=1) == 0.125
    # All boundary predicted: no grain, error 1. A gt without grains is left out.
    assert grain_count_error(np.zeros((8, 8), np.uint8), CROSS, min_grain_area=1) == 1.0
    assert math.isnan(grain_count_error(CROSS, np.zeros((8, 8), np.uint8)))


def test_adjusted_rand_index_by_hand():
    # n_ij: 2, 1, 1 -> sum C = 1; rows 2, 2 -> 2; columns 2, 1, 1 -> 1; C(4,2) = 6;
    # E = 2 * 1 / 6 = 1/3; M = 3/2; ARI = (1 - 1/3) / (3/2 - 1/3) = 4/7.
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([5, 5, 9, 9], [1, 1, 0, 0]) == 1.0  # ids do not matter
    assert adjusted_rand_index([0, 0, 0, 0], [0, 1, 2, 3]) == 0.0
    assert adjusted_rand_index([3, 3, 3], [7, 7, 7]) == 1.0  # one cluster on both sides
    assert math.isnan(adjusted_rand_index([], []))


def test_grain_ari_by_hand():
    # Items: the 49 gt background pixels (all background in the prediction too).
    # gt grains 9, 12, 20, 8; predicted 9, 12, 28; n_ij = 9, 12, 20, 8.
    # sum C(n_ij,2) = 36 + 66 + 190 + 28 = 320; predicted side 36 + 66 + 378 = 480; gt side 320;
    # C(49,2) = 1176; E = 480 * 320 / 1176; M = 400;
    # ARI = (320 * 1176 - 153600) / (400 * 1176 - 153600) = 222720 / 316800 = 116/165.
    assert grain_ari(CROSS_BROKEN, CROSS, min_grain_area=1) == pytest.approx(116 / 165)
    assert grain_ari(CROSS, CROSS, min_grain_area=1) == 1.0
    assert math.isnan(grain_ari(np.zeros((8, 8), np.uint8), CROSS))  # no common grain pixel


# A 10x10 image: a ring enclosing one 4x4 grain, and two vertical cuts that split the outside
# into a left and a right grain, both cut by the image border.
ASTM = draw("""
W W W W B W W W W W
W W W W B W W W W W
W W B B B B B B W W
W W B W W W W B W W
W W B W W W W B W W
W W B W W W W B W W
W W B W W W W B W W
W W B B B B B B W W
W W W W B W W W W W
W W W W B W W W W W
""")


def test_astm_grain_size_by_hand():
    grains = find_grains(ASTM < 128, min_area=1)
    assert (grains.inside, grains.cut) == (1, 2)
    # 100 um pixels: the image is 1 mm x 1 mm. N_A = 1 + 2/2 = 2 per mm^2;
    # G = 3.321928 log10(2) - 2.954 = 1.0000 - 2.954 = -1.954.
    assert astm_grain_size(grains, ASTM.shape, pixel_size_um=100) == pytest.approx(-1.954, abs=1e-5)
    # Default 1 um pixels: area 1e-4 mm^2, N_A = 20000, G = 3.321928 * 4.30103 - 2.954 = 11.3337.
    assert astm_grain_size(grains, ASTM.shape) == pytest.approx(11.3337, abs=1e-4)


def test_astm_g_error_by_hand():
    uncut = ASTM.copy()
    uncut[:2, 4] = 255
    uncut[8:, 4] = 255
    # One grain inside, one cut: N_A = 1.5. |G(1.5) - G(2)| = 3.321928 log10(4/3) = 0.415037.
    assert astm_g_error(uncut, ASTM, min_grain_area=1) == pytest.approx(0.415037, abs=1e-5)
    assert astm_g_error(ASTM, ASTM, min_grain_area=1) == 0.0
    assert math.isnan(astm_g_error(np.zeros((10, 10), np.uint8), ASTM))  # no grain predicted: no G


# --- the accumulator ---------------------------------------------------------------------------
def test_ground_truth_scores_perfectly():
    micro = CROSS.copy()
    micro[4:, 5] = 255  # the input lost the lower arm
    scores = MetricAccumulator(min_grain_area=1)
    scores.update(CROSS, CROSS, micro)
    result = scores.result()
    assert result["miou"] == 1.0 and result["boundary_iou"] == 1.0
    assert result["gap_recall"] == 1.0 and result["spurious_rate"] == 0.0
    assert result["boundary_f1"] == 1.0
    assert result["grain_count_error"] == 0.0 and result["grain_ari"] == 1.0
    assert result["astm_g_error"] == 0.0


def test_accumulator_equals_the_pooled_functions():
    triples = [(PRED, GT, MICRO), (CROSS_BROKEN, CROSS, CROSS_BROKEN), (ASTM, ASTM, ASTM),
               (EMPTY, EMPTY, EMPTY), (FULL, GT, MICRO)]
    scores = MetricAccumulator(tol=1, min_grain_area=1)
    for triple in triples:
        scores.update(*triple)
    result = scores.result()
    preds, gts, micros = ([t[k] for t in triples] for k in range(3))
    assert result["images"] == 5
    assert result["miou"] == pytest.approx(miou(preds, gts))
    assert result["boundary_iou"] == pytest.approx(boundary_iou(preds, gts))
    assert result["gap_recall"] == pytest.approx(gap_recall(preds, gts, micros))
    assert result["spurious_rate"] == pytest.approx(spurious_rate(preds, gts))
    assert result["boundary_f1"] == pytest.approx(boundary_f1(preds, gts, tol=1))
    assert result["grain_count_error"] == pytest.approx(grain_count_error(preds, gts, min_grain_area=1))
    assert result["grain_ari"] == pytest.approx(grain_ari(preds, gts, min_grain_area=1))
    assert result["astm_g_error"] == pytest.approx(astm_g_error(preds, gts, min_grain_area=1))


def test_accumulator_result_when_empty():
    result = MetricAccumulator().result()
    assert result["images"] == 0
    assert all(math.isnan(v) for k, v in result.items() if k != "images")


def test_image_statistics_counts():
    stats = image_statistics(PRED, GT, MICRO, tol=1, min_grain_area=1)
    assert (stats.erased, stats.recovered) == (2, 0)
    assert (stats.pred_boundary, stats.pred_matched, stats.gt_boundary, stats.gt_matched) == (3, 3, 4, 3)
    # PRED's boundary leaves row 3 open, so its 13 background pixels are one grain; GT has 2.
    assert (stats.grains_pred, stats.grains_gt) == (1, 2)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        miou(PRED, CROSS)
    with pytest.raises(ValueError, match="same number"):
        miou([PRED, PRED], [GT])
    with pytest.raises(ValueError, match="2-D"):
        confusion_matrix(np.zeros(4, np.uint8), np.zeros(4, np.uint8))


def _grid(cuts_x: list[int], cuts_y: list[int], size: int = 40) -> np.ndarray:
    """A boundary image (0 boundary, 255 background) with full-height lines at `cuts_x`, full-width at `cuts_y`."""
    image = np.full((size, size), 255, np.uint8)
    image[:, cuts_x] = 0
    image[cuts_y, :] = 0
    return image


def test_grain_match_counts_true_grains_found_one_to_one_and_sees_errors_that_cancel():
    from model.scoring.metrics import find_grains, matched_grains

    truth = _grid([20], [20])  # four grains of 20x20 (less the line)
    # One line missing (the two left grains merged) and one grain split elsewhere: the same count.
    found = _grid([20], [])
    found[20:, 30] = 0  # splits the lower right grain into two
    found[20, 20:] = 0
    gt, pred = find_grains(truth < 128), find_grains(found < 128)
    assert gt.count == pred.count == 4  # the count is right...
    # ...but only the upper right grain is found one-to-one: the merged pair holds each left grain
    # whole yet is only half of itself, and each half of the split grain holds only half of it.
    assert matched_grains(pred, gt) == 1
    assert matched_grains(gt, gt) == 4
    accumulator = MetricAccumulator()
    accumulator.update(found, truth, truth)
    accumulator.update(truth, truth, truth)
    assert accumulator.result()["grain_match"] == 5 / 8


def test_a_gray_input_has_no_erased_pixels_and_no_gap_recall():
    truth = _grid([20], [20])
    result = MetricAccumulator()
    result.update(truth, truth, None)
    assert math.isnan(result.result()["gap_recall"]) and result.result()["grain_match"] == 1.0
