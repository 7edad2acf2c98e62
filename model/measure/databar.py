"""A scale bar or data bar burned into an image's edge: a uniform band with text, found so it is left out.

Scanning inward from each edge, a line (a row for the top and bottom edges, a column for the
sides) belongs to the bar when at least BAR_SHARE of it is within NEAR gray levels (of 255) of
the bar's own level (the most common level of the outermost line), and at least BAR_PLAIN of it
is either that level or far from it (text, a bar: at least FAR levels away). A micrograph's
lines are textured (noise, grains of other levels) and a boundary map's background runs on past
a quarter of the image. The bar found is the run of such lines from the edge when it is at least
MIN_BAR px deep, at most a quarter of the image, as a whole at least BAND_SHARE of its level
and BAND_PLAIN of its level or text, and the lines beyond it, up to twice its depth, are mostly
not of its kind (a binary boundary map's background comes back after every boundary line).
See docs/measure.md, "Masks and data bars".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR, FAR = 2, 64  # gray levels of 255: the bar's own level, and text or bar marks on it
BAR_SHARE, BAR_PLAIN = 0.2, 0.75  # per line
BAND_SHARE, BAND_PLAIN = 0.5, 0.9  # over the whole band
MIN_BAR = 8  # px: shallower bands (a boundary line along the edge) are no data bar
MAX_BAR = 0.25  # of the image's height (or width)
# A band followed, within twice its depth, by as many lines of its kind again is the image's own texture.
SIDES = ("bottom", "top", "left", "right")


@dataclass(frozen=True)
class DataBar:
    """A band along one edge of the image."""

    side: str  # "bottom", "top", "left" or "right"
    depth: int  # px from that edge

    def describe(self) -> str:
        """E.g. 'a 40 px data bar at the bottom edge'."""
        return f"a {self.depth} px data bar at the {self.side} edge"


def _lines_from(levels: np.ndarray, side: str) -> np.ndarray:
    """The image's lines parallel to `side`, outermost first."""
    return {"bottom": levels[::-1], "top": levels, "left": levels.T, "right": levels.T[::-1]}[side]


def bar_depth(lines: np.ndarray) -> int:
    """How many lines, from the first, form a data bar (0: none); `lines` holds 8-bit levels, outermost first."""
    limit = int(MAX_BAR * lines.shape[0])
    if limit < MIN_BAR:
        return 0
    level = int(np.bincount(lines[0], minlength=256).argmax())
    distance = np.abs(lines[:3 * limit].astype(np.int16) - level)
    near = (distance <= NEAR).mean(axis=1)
    plain = near + (distance >= FAR).mean(axis=1)
    inside = (near >= BAR_SHARE) & (plain >= BAR_PLAIN)
    depth = int(np.argmin(inside)) if not inside.all() else inside.size
    if depth < MIN_BAR or depth > limit:
        return 0
    if near[:depth].mean() < BAND_SHARE or plain[:depth].mean() < BAND_PLAIN:
        return 0
    beyond = inside[depth:3 * depth]
    if beyond.size and beyond.mean() >= 0.5:  # the same kind of lines again: the image's own, as a boundary map's
        return 0
    return depth


def find_data_bars(gray: np.ndarray) -> list[DataBar]:
    """The data bars along the edges of a gray image in [0, 1] (usually none or one)."""
    levels = np.clip(np.rint(gray * 255), 0, 255).astype(np.uint8)
    bars = []
    for side in SIDES:
        depth = bar_depth(_lines_from(levels, side))
        if depth:
            bars.append(DataBar(side, depth))
    return bars


def without_bars(shape: tuple[int, int], bars: list[DataBar]) -> np.ndarray:
    """The boolean field of an image of `shape` with its data bars left out."""
    field = np.ones(shape, bool)
    height, width = shape
    for bar in bars:
        if bar.side == "bottom":
            field[height - bar.depth:] = False
        elif bar.side == "top":
            field[:bar.depth] = False
        elif bar.side == "left":
            field[:, :bar.depth] = False
        else:
            field[:, width - bar.depth:] = False
    return field
