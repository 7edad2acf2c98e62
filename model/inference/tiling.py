"""Tiled inference on images of any size: overlapping tiles, a smooth blending window, pure numpy.

An image of H x W pixels is seen through a frame: by default the image itself, its border at the
tiles' edges, as the edges of the crops the network was trained on (an optional `margin` of
mirrored pixels can be added on every side); a side shorter than a tile is mirrored out, on both
sides, up to the tile size. The frame is cut into tiles of the model's input size with the
given overlap (`tile_origins`); tiles are gathered `batch` at a time straight from the image (the
padded frame is never built: reflected indices are computed per tile), predicted, weighted by
`blend_window` and summed into one accumulator of the image's size, then divided by the sum of
the weights. The window is separable and the tiles form a grid, so that sum is the outer product
of two 1-D sums: no second image-sized buffer. Memory is the image, the accumulator and one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

PredictBatch = Callable[[np.ndarray], np.ndarray]  # (B, th, tw, 1) float32 -> (B, th, tw, 1)
Progress = Callable[[int], object]  # called with the number of tiles just finished


class TilingError(ValueError):
    """Tile, overlap, margin or batch settings that cannot tile an image (one-line message)."""


def _pair(tile: int | tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of a tile given as one side or a pair."""
    if isinstance(tile, (tuple, list)):
        if len(tile) != 2:
            raise TilingError(f"a tile is one side or (rows, cols), got {tile!r}")
        return int(tile[0]), int(tile[1])
    return int(tile), int(tile)


def check_tiling(tile: int | tuple[int, int], overlap: int, batch: int = 1, margin: int | None = None) -> None:
    """Raise TilingError unless the settings can tile an image."""
    rows, cols = _pair(tile)
    if rows <= 0 or cols <= 0:
        raise TilingError(f"tile must be > 0, got {tile}")
    if overlap < 0:
        raise TilingError(f"overlap must be >= 0, got {overlap}")
    if min(rows, cols) <= overlap:
        raise TilingError(f"tile ({min(rows, cols)}) must be larger than overlap ({overlap})")
    if batch <= 0:
        raise TilingError(f"batch must be > 0, got {batch}")
    if margin is not None and margin < 0:
        raise TilingError(f"margin must be >= 0, got {margin}")


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles covering [0, length): stride tile - overlap, the last one flush with the end.

    A length up to one tile gives [0] (the caller pads to the tile). The last two tiles may
    overlap by more than `overlap`; blending normalises by the summed weights, so that is harmless.
    """
    check_tiling(tile, overlap)
    if length <= 0:
        raise TilingError(f"length must be > 0, got {length}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = -(-(length - tile) // stride) + 1  # ceil
    return [min(i * stride, length - tile) for i in range(count)]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """1-D float64 weights of one tile side: raised-cosine ramps over `overlap` pixels at each end, 1 between.

    w[i] = (1 - cos(pi (i + 0.5) / overlap)) / 2 on the first `overlap` pixels (mirrored at the
    end): strictly positive (every pixel of every tile counts), and, when 2 * overlap <= tile,
    two tiles `tile - overlap` apart sum to exactly 1 across their overlap. With overlap 0 the window is all ones. A 2-D
    tile's window is the outer product of its row and column windows.
    """
    check_tiling(tile, overlap)
    if not overlap:
        return np.ones(tile, dtype=np.float64)
    edge = np.minimum(np.arange(tile), np.arange(tile)[::-1])  # distance to the nearer end
    # Where 2 * overlap > tile the two ramps meet: each pixel takes the ramp of its nearer end.
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.minimum(edge, overlap - 1) + 0.5) / overlap)
    return np.where(edge < overlap, ramp, 1.0)


def reflect_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Map positions outside [0, length) into it by mirror reflection without repeating the edge.

    Same as numpy's `np.pad(mode="reflect")` and OpenCV's BORDER_REFLECT_101, for pads of any
    width (the reflection repeats with period 2 (length - 1)); a length of 1 maps everything to 0.
    """
    indices = np.asarray(indices)
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - folded)


@dataclass(frozen=True)
class _Axis:
    """Tiling of one image axis: `before` padded pixels precede the image in the frame."""

    length: int
    tile: int
    before: int
    origins: tuple[int, ...]  # tile starts in frame coordinates

    @classmethod
    def plan(cls, length: int, tile: int, overlap: int, margin: int) -> "_Axis":
        frame = max(length + 2 * margin, tile)
        before = (frame - length) // 2
        return cls(length, tile, before, tuple(tile_origins(frame, tile, overlap)))

    def source(self, origin: int) -> slice | np.ndarray:
        """Image indices of the tile starting at `origin`: a slice when no padding is involved."""
        start = origin - self.before
        if start >= 0 and start + self.tile <= self.length:
            return slice(start, start + self.tile)
        return reflect_indices(np.arange(start, start + self.tile), self.length)

    def target(self, origin: int) -> tuple[slice, slice]:
        """(image slice, tile slice) of the part of the tile that lies on the image."""
        start = origin - self.before
        lo, hi = max(start, 0), min(start + self.tile, self.length)
        return slice(lo, hi), slice(lo - start, hi - start)

    def weight_sum(self, window: np.ndarray) -> np.ndarray:
        """Sum over this axis' tiles of the 1-D window, per image pixel (all > 0)."""
        total = np.zeros(self.length, dtype=np.float64)
        for origin in self.origins:
            image_part, tile_part = self.target(origin)
            total[image_part] += window[tile_part]
        return total


def default_margin(overlap: int) -> int:
    """Mirrored pixels added around the image by default: none.

    The network was trained on crops whose edges its zero padding closes; mirrored context at the
    image border instead shows it grains folded back on themselves, and it draws boundaries along
    the edge: with `overlap // 2` (32 px at the default overlap) the grain-count error on 512 px
    validation images rose from 0.015 to 0.044 (docs/predict.md).
    """
    return 0


def _plan(shape: tuple[int, int], tile: int | tuple[int, int], overlap: int,
          margin: int | None) -> tuple[_Axis, _Axis]:
    rows, cols = _pair(tile)
    margin = default_margin(overlap) if margin is None else margin
    check_tiling((rows, cols), overlap, margin=margin)
    if len(shape) != 2 or min(shape) <= 0:
        raise TilingError(f"expected a non-empty 2-D image, got shape {tuple(shape)}")
    return _Axis.plan(shape[0], rows, overlap, margin), _Axis.plan(shape[1], cols, overlap, margin)


def count_tiles(shape: tuple[int, int], tile: int | tuple[int, int], overlap: int, margin: int | None = None) -> int:
    """How many tiles `predict_tiled` cuts an image of this (H, W) shape into."""
    ys, xs = _plan(tuple(shape), tile, overlap, margin)  # type: ignore[arg-type]
    return len(ys.origins) * len(xs.origins)


def _batches(ys: _Axis, xs: _Axis, batch: int) -> Iterator[list[tuple[int, int]]]:
    """Tile origins in row-major order, `batch` at a time."""
    chunk: list[tuple[int, int]] = []
    for oy in ys.origins:
        for ox in xs.origins:
            chunk.append((oy, ox))
            if len(chunk) == batch:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def predict_tiled(image: np.ndarray, predict_batch: PredictBatch, tile: int | tuple[int, int], overlap: int,
                  batch: int = 4, margin: int | None = None, progress: Progress | None = None) -> np.ndarray:
    """Run `predict_batch` over overlapping tiles of a 2-D image and blend the results back.

    image: (H, W), any size (converted to float32). predict_batch: receives float32 arrays of
    shape (n, rows, cols, 1) with 1 <= n <= batch and returns n predictions of the same shape
    (or (n, rows, cols)). margin: mirrored pixels around the image (default none).
    progress: called with the number of tiles finished after each batch.
    Returns the blended (H, W) float32 prediction. An element-wise predict_batch (identity,
    a*x + b, ...) gives back exactly that function of the image, up to float rounding.
    """
    check_tiling(tile, overlap, batch, margin)
    image = np.asarray(image, dtype=np.float32)
    ys, xs = _plan(image.shape, tile, overlap, margin)  # type: ignore[arg-type]
    wy, wx = blend_window(ys.tile, overlap), blend_window(xs.tile, overlap)
    window = np.outer(wy, wx).astype(np.float32)
    accumulator = np.zeros(image.shape, dtype=np.float32)
    tiles = np.empty((batch, ys.tile, xs.tile, 1), dtype=np.float32)
    for chunk in _batches(ys, xs, batch):
        for k, (oy, ox) in enumerate(chunk):
            rows, cols = ys.source(oy), xs.source(ox)
            if isinstance(rows, slice) and isinstance(cols, slice):
                tiles[k, :, :, 0] = image[rows, cols]
            else:
                rows = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
                cols = np.arange(cols.start, cols.stop) if isinstance(cols, slice) else cols
                tiles[k, :, :, 0] = image[np.ix_(rows, cols)]
        n = len(chunk)
        predicted = np.asarray(predict_batch(tiles[:n]))
        if predicted.shape == (n, ys.tile, xs.tile):
            predicted = predicted[..., None]
        if predicted.shape != (n, ys.tile, xs.tile, 1):
            raise TilingError(f"prediction of {n} tiles of {ys.tile}x{xs.tile} has shape {predicted.shape}, "
                              f"expected {(n, ys.tile, xs.tile, 1)}")
        for k, (oy, ox) in enumerate(chunk):
            (image_rows, tile_rows), (image_cols, tile_cols) = ys.target(oy), xs.target(ox)
            accumulator[image_rows, image_cols] += predicted[k, tile_rows, tile_cols, 0] * window[tile_rows, tile_cols]
        if progress is not None:
            progress(n)
    # Sum of weights = outer(row sums, column sums): divide in place, one axis at a time.
    accumulator /= ys.weight_sum(wy)[:, None].astype(np.float32)
    accumulator /= xs.weight_sum(wx)[None, :].astype(np.float32)
    return accumulator
