"""Annealing twins: straight, parallel-sided bands inside a grain, found so E112 can leave them out.

E112 (annealed fcc metals): twin boundaries are not counted; a twin band belongs to the grain it
lies in. A grain of the map is a twin band when (docs/measure.md, "Twins"):
- cut into 1 px slices across its major axis, it keeps its full width (the 90th percentile of
  the slices' widths, less FULL_WIDTH_PX) over a stretch at least MIN_LENGTH times that width, or
  MIN_LENGTH_SPLIT times when its parent lies on both long sides (it cut its parent in two);
- the centres of those slices vary by at most WOBBLE_PX (or WOBBLE_SHARE of the width; standard
  deviation): it is straight; it is at least MIN_WIDTH wide and MIN_AREA px (MIN_ASPECT: a cheap
  first cut on the equivalent ellipse);
- along the MIDDLE of its length, one grain, or SIDE_PIECES each holding PIECE_SHARE, hold
  SIDE_SHARE of what lies beyond a long side (nearest-grain zones): its parent's pieces.
`merge` unites each band with its parent(s) and erases the boundary between them (the band of
boundary pixels whose nearest grains, within its half-width + 1.5 px, are all of one merged grain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_ASPECT, MIN_AREA, MIN_WIDTH = 1.5, 30, 1.5  # px for the area and width
MIN_LENGTH, MIN_LENGTH_SPLIT = 3.0, 1.7  # full-width stretch in widths: a band beside one grain, one between two
FULL_WIDTH_PX = 1.5  # a slice this much narrower than the band is still at full width (pixel steps)
MIDDLE = 0.6  # share of the band's length whose sides are looked at (its ends may be cut at any angle)
WOBBLE_PX, WOBBLE_SHARE = 1.0, 0.05
SIDE_SHARE, SIDE_PIECES, PIECE_SHARE = 0.8, 2, 0.3  # a side: 1 or 2 grains of 30 % or more holding 80 % of it
MAX_PARENTS = 4  # a band between more grains than this is a grain of its own
MARGIN = 12  # px around a band searched for its sides' nearest-grain zones


@dataclass(frozen=True)
class TwinBand:
    """One band and the grains it lies in."""

    band: int  # grain id
    parents: tuple[int, ...]  # the grains (pieces of its parent) beside its long sides


def _axis(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float, float]:
    """(centre x, centre y, ux, uy): the pixels' centre and the unit vector of their major axis."""
    cx, cy = xs.mean(), ys.mean()
    dx, dy = xs - cx, ys - cy
    angle = 0.5 * math.atan2(2 * float((dx * dy).mean()), float((dx * dx).mean() - (dy * dy).mean()))
    return cx, cy, math.cos(angle), math.sin(angle)


def band_profile(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float] | None:
    """(width, length of the stretch at full width, centre wobble there) of a grain cut into 1 px slices
    across its major axis; None for fewer than three slices.

    The width is the 90th percentile of the slices' widths; the stretch is the longest run of slices
    at least that wide less FULL_WIDTH_PX (one narrower slice allowed between two); the wobble is the
    standard deviation of those slices' centres across the axis.
    """
    cx, cy, ux, uy = _axis(ys, xs)
    along = (xs - cx) * ux + (ys - cy) * uy
    across = -(xs - cx) * uy + (ys - cy) * ux
    slices = np.floor(along - along.min()).astype(np.int64)
    size = int(slices.max()) + 1
    if size < 3:
        return None
    top, bottom = np.full(size, -np.inf), np.full(size, np.inf)
    np.maximum.at(top, slices, across)
    np.minimum.at(bottom, slices, across)
    width = np.where(np.isfinite(top), top - bottom + 1, 0.0)
    full_width = float(np.percentile(width, 90))
    full = width >= full_width - FULL_WIDTH_PX
    full[1:-1] |= full[:-2] & full[2:]  # one narrower slice between two full ones
    edges = np.flatnonzero(np.diff(np.concatenate([[0], full.view(np.int8), [0]])))
    starts, stops = edges[::2], edges[1::2]
    longest = int(np.argmax(stops - starts))
    run = slice(int(starts[longest]), int(stops[longest]))
    centre = ((top + bottom) / 2)[run]
    centre = centre[np.isfinite(centre)]
    return full_width, float(stops[longest] - starts[longest]), float(centre.std()) if centre.size else math.inf


def band_length_needed(sides: int) -> float:
    """How many widths long the full-width stretch must be: shorter for a band with its parent on both sides."""
    return MIN_LENGTH_SPLIT if sides == 2 else MIN_LENGTH


def side_parents(grain: int, ys: np.ndarray, xs: np.ndarray, near: np.ndarray) -> tuple[tuple[int, ...], int]:
    """(the grains beyond a band's long sides, how many sides have them): per side, the one or SIDE_PIECES
    grains, each holding at least PIECE_SHARE of it, that together hold SIDE_SHARE of it."""
    height, width = near.shape
    top, bottom = max(0, int(ys.min()) - MARGIN), min(height, int(ys.max()) + MARGIN + 1)
    left, right = max(0, int(xs.min()) - MARGIN), min(width, int(xs.max()) + MARGIN + 1)
    crop = near[top:bottom, left:right]
    zone = (crop == grain).view(np.uint8)
    ring = cv2.dilate(zone, np.ones((3, 3), np.uint8)).view(bool) & (crop != grain) & (crop > 0)
    ry, rx = np.nonzero(ring)
    cx, cy, ux, uy = _axis(ys, xs)
    ry, rx = ry + top, rx + left
    along = (rx - cx) * ux + (ry - cy) * uy
    across = -(rx - cx) * uy + (ry - cy) * ux
    extent = np.abs((xs - cx) * ux + (ys - cy) * uy).max()
    middle = np.abs(along) <= MIDDLE * extent
    ids = crop[ring]
    parents: list[int] = []
    sides = 0
    for side in (across[middle] > 0, across[middle] < 0):
        seen = ids[middle][side].astype(np.int64)
        if seen.size < max(3, 0.3 * MIDDLE * extent):
            continue
        counts = np.bincount(seen)
        order = np.argsort(counts)[::-1][:SIDE_PIECES]
        pieces = order[counts[order] >= PIECE_SHARE * seen.size]
        held = np.cumsum(counts[pieces]) >= SIDE_SHARE * seen.size
        if held.any():
            parents.extend(int(p) for p in pieces[:int(np.argmax(held)) + 1])
            sides += 1
    return tuple(dict.fromkeys(parents)), sides


def find_twins(grain_map: np.ndarray, count: int, aspect: np.ndarray, near: np.ndarray) -> list[TwinBand]:
    """The twin bands among grains 1..count (`aspect`: their equivalent ellipses' aspect ratios)."""
    candidates = np.flatnonzero(aspect >= MIN_ASPECT) + 1
    if candidates.size == 0:
        return []
    order = np.argsort(grain_map, axis=None, kind="stable")
    ids = grain_map.ravel()[order]
    begin = np.searchsorted(ids, candidates, side="left")
    end = np.searchsorted(ids, candidates, side="right")
    bands = []
    for grain, a, b in zip(candidates.tolist(), begin.tolist(), end.tolist()):
        if b - a < MIN_AREA:
            continue
        ys, xs = np.divmod(order[a:b], grain_map.shape[1])
        profile = band_profile(ys.astype(np.float64), xs.astype(np.float64))
        if profile is None:
            continue
        width, stretch, wobble = profile
        if width < MIN_WIDTH or wobble > max(WOBBLE_PX, WOBBLE_SHARE * width) or stretch < MIN_LENGTH_SPLIT * width:
            continue
        parents, sides = side_parents(grain, ys, xs, near)
        if parents and len(parents) <= MAX_PARENTS and stretch >= band_length_needed(sides) * width:
            bands.append(TwinBand(grain, parents))
    return bands


def merged_ids(count: int, bands: list[TwinBand]) -> np.ndarray:
    """(count + 1,) the id each grain merges into (the smallest id of its group; 0 stays 0)."""
    root = np.arange(count + 1)

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = int(root[i])
        return i

    for band in bands:
        for parent in band.parents:
            a, b = find(band.band), find(parent)
            root[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(count + 1)])


def twin_boundaries(boundary: np.ndarray, near: np.ndarray, distance: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """Boundary pixels between grains `merged` unites: the nearest grains within the band's reach are one grain."""
    if not boundary.any():
        return np.zeros(boundary.shape, bool)
    radius = int(math.ceil(float(np.percentile(distance[boundary], 90)) + 1.5))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    raw = near.astype(np.uint16)
    united = merged[near].astype(np.uint16)
    one_grain = cv2.dilate(united, disc) == cv2.erode(united, disc)
    two_grains = cv2.dilate(raw, disc) != cv2.erode(raw, disc)
    return boundary & one_grain & two_grains
