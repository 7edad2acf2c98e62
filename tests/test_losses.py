"""Training losses on hand-drawn masks: clDice must punish a broken boundary that BCE barely sees."""

from __future__ import annotations

import numpy as np
import pytest

from model.network.losses import BceClDice, _bce, cldice, soft_skeleton


def cross(height: int = 64, width: int = 64) -> np.ndarray:
    """Target (1 background, 0 boundary): a 2 px vertical and a 2 px horizontal line crossing."""
    target = np.ones((1, height, width, 1), np.float32)
    target[:, :, 31:33] = 0
    target[:, 20:22, :] = 0
    return target


def confident(target: np.ndarray, p: float = 0.9) -> np.ndarray:
    """A prediction that is right everywhere with probability p."""
    return np.where(target == 0, 1 - p, p).astype(np.float32)


def value(loss, target, prediction) -> float:
    return float(np.asarray(loss(target, prediction))[0])


def test_a_gap_costs_clearly_more_under_cldice_while_bce_barely_tells():
    target = cross()
    whole = confident(target)
    broken = whole.copy()
    broken[:, 40:46, 31:33] = 0.9  # a 6 px gap in the vertical line: 12 of 4,096 pixels
    bce_rise = value(_bce, target, broken) / value(_bce, target, whole) - 1
    cldice_rise = value(cldice, target, broken) / value(cldice, target, whole) - 1
    assert bce_rise < 0.08
    assert cldice_rise > 0.35
    assert cldice_rise > 5 * bce_rise


def test_cldice_is_zero_for_a_perfect_prediction_and_near_one_for_no_boundary():
    target = cross()
    assert value(cldice, target, target) == pytest.approx(0.0, abs=1e-3)
    nothing = np.ones_like(target)  # predicts background everywhere
    assert value(cldice, target, nothing) > 0.95


def test_soft_skeleton_of_a_thick_line_is_thin_and_inside_it():
    band = np.zeros((1, 40, 40, 1), np.float32)
    band[:, 14:20, 5:35] = 1.0  # 6 px wide
    skeleton = np.asarray(soft_skeleton(band))[0, ..., 0]
    assert skeleton[band[0, ..., 0] == 0].max() == 0  # nothing outside the band
    rows = np.flatnonzero(skeleton[:, 20] > 0.5)
    assert 1 <= len(rows) <= 2 and 14 <= rows.min() and rows.max() < 20  # one or two central rows


def test_bce_cldice_adds_the_weighted_terms_and_round_trips_its_config():
    target = cross()
    prediction = confident(target, 0.8)
    loss = BceClDice(weight=0.25)
    expected = value(_bce, target, prediction) + 0.25 * value(cldice, target, prediction)
    assert value(loss.call, target, prediction) == pytest.approx(expected, rel=1e-5)
    again = BceClDice.from_config(loss.get_config())
    assert (again.weight, again.iterations) == (0.25, loss.iterations)
