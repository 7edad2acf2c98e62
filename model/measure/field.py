"""The field measured: a whole image, a rectangle (`--roi`, a data bar left out) or any mask (`--mask`).

A rectangular field is measured as an image of its own (E112's rectangular-field count, corners
included). Any other field: pixels outside it are neither grain nor boundary, a grain touching
them is cut by the field's edge (counted 1/2), the field's area is its pixel count, and the test
lines are cut into the pieces that lie inside it. See docs/measure.md, "Masks and data bars".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .databar import find_data_bars, without_bars
from .intercepts import Paths

MIN_SIDE = 8  # px: an image or field narrower than this holds no grain and boundary worth measuring


class FieldError(ValueError):
    """An image that cannot be measured as asked (too small, a mask or ROI that does not fit): one line."""


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """--roi "x,y,w,h" (pixels, x to the right, y down from the top-left corner) as integers; ValueError if not."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected x,y,w,h in whole pixels (e.g. 0,0,512,400), got {text!r}")
    x, y, w, h = (int(p) for p in parts)
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ValueError(f"a field of {w} x {h} px is too small to measure (at least {MIN_SIDE} x {MIN_SIDE})")
    return x, y, w, h


def roi_field(shape: tuple[int, int], roi: tuple[int, int, int, int]) -> np.ndarray:
    """The boolean field of --roi x,y,w,h on an image of `shape`; FieldError if it reaches outside."""
    x, y, w, h = roi
    height, width = shape
    if x + w > width or y + h > height:
        raise FieldError(f"--roi {x},{y},{w},{h} reaches outside the {width} x {height} px image")
    field = np.zeros(shape, bool)
    field[y:y + h, x:x + w] = True
    return field


def mask_field(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The boolean field of a --mask image (gray in [0, 1]: white measured, black left out) on an image of `shape`."""
    if mask.shape != shape:
        raise FieldError(f"--mask is {mask.shape[1]} x {mask.shape[0]} px, the image {shape[1]} x {shape[0]} px")
    return mask >= 0.5


def field_box(field: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), exclusive ends, when the field is one filled rectangle; else None."""
    rows, cols = np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (top, bottom, left, right) if field[top:bottom, left:right].all() else None


def check_field(shape: tuple[int, int], field_px: int, min_grain: int | None) -> None:
    """FieldError for an image or field too small to measure, or a --min-grain larger than the field."""
    height, width = shape
    if height < MIN_SIDE or width < MIN_SIDE:
        raise FieldError(f"{width} x {height} px is too small to measure (at least {MIN_SIDE} x {MIN_SIDE})")
    if field_px < MIN_SIDE * MIN_SIDE:
        raise FieldError(f"the field holds {field_px} px: too few to measure (at least {MIN_SIDE * MIN_SIDE})")
    if min_grain is not None and min_grain > field_px:
        raise FieldError(f"--min-grain {min_grain} px is larger than the field measured ({field_px} px)")


def cut_by_field(grain_labels: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Per label of `grain_labels`, True when one of its pixels is 4-adjacent to a pixel outside the field."""
    outside = ~field
    edge = np.zeros(field.shape, bool)
    edge[1:] |= outside[:-1]
    edge[:-1] |= outside[1:]
    edge[:, 1:] |= outside[:, :-1]
    edge[:, :-1] |= outside[:, 1:]
    cut = np.zeros(int(grain_labels.max()) + 1, bool)
    cut[np.unique(grain_labels[edge & field])] = True
    cut[0] = False
    return cut


def clip_paths(paths: Paths, field: np.ndarray) -> Paths:
    """Open test lines cut into their pieces inside the field (each piece a line of its own, ends and all)."""
    if paths.closed:
        raise FieldError("--pattern circles needs a rectangular field: use --roi, or test lines")
    inside = field.ravel()[paths.flat]
    line = paths.line_of
    starts = np.zeros(inside.size, bool)
    starts[paths.first[:-1][np.diff(paths.first) > 0]] = True
    begins = inside & (starts | ~np.concatenate([[False], inside[:-1]]))
    run = np.cumsum(begins)[inside] - 1
    counts = np.bincount(run, minlength=int(begins.sum()))
    first_sample = np.flatnonzero(begins)
    owner = line[first_sample]
    j0 = first_sample - paths.first[owner]
    step = paths.step[owner]
    direction = np.asarray(paths.direction)
    origin = paths.origin[owner] + (j0 * step)[:, None] * direction[None, :]
    return Paths(paths.flat[inside], np.concatenate([[0], np.cumsum(counts)]), step, counts * step, False, origin,
                 paths.direction, paths.pixel_exact, paths.wobbles, paths.corner_steps)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """A --mask image as gray in [0, 1]; FieldError with one line if it cannot be read."""
    from model.inference.images import ImageError, InputError, read_image

    if not Path(path).is_file():
        raise FieldError(f"--mask {path}: no such file")
    try:
        return read_image(path)
    except (ImageError, InputError, OSError, ValueError) as exc:
        raise FieldError(f"--mask {path}: {exc}") from None


def image_field(gray: np.ndarray, roi: str | None, mask: np.ndarray | None,
                find_bars: bool) -> tuple[np.ndarray | None, list[str]]:
    """(the field of one image, or None for all of it; what was left out, in words): --roi and --mask
    when given, else the image without the data bars found at its edges (when `find_bars`)."""
    if roi is not None or mask is not None:
        field = np.ones(gray.shape, bool)
        if roi is not None:
            field &= roi_field(gray.shape, parse_roi(roi))
        if mask is not None:
            field &= mask_field(mask, gray.shape)
        return field, []
    bars = find_data_bars(gray) if find_bars else []
    if not bars:
        return None, []
    return without_bars(gray.shape, bars), [bar.describe() for bar in bars]
