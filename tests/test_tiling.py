"""Tiled inference (model/inference/tiling.py), pure numpy: seams, weights, padding and batch sizes."""

from __future__ import annotations

import numpy as np
import pytest

from model.inference.tiling import (TilingError, blend_window, count_tiles, predict_tiled, reflect_indices,
                          tile_origins)

SHAPES = [(1000, 700), (300, 2000), (100, 100)]
OVERLAPS = [0, 16, 37, 64]


def identity(tiles: np.ndarray) -> np.ndarray:
    return tiles


def linear(tiles: np.ndarray) -> np.ndarray:
    return tiles * 2 - 0.3


def random_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_identity_gives_back_the_image(shape: tuple[int, int], overlap: int) -> None:
    image = random_image(shape)
    out = predict_tiled(image, identity, 128, overlap, batch=7)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("overlap", [0, 37])
@pytest.mark.parametrize("margin", [0, 5, 100])
def test_linear_function_is_exact_whatever_the_margin(shape: tuple[int, int], overlap: int, margin: int) -> None:
    image = random_image(shape, seed=1)
    out = predict_tiled(image, linear, 128, overlap, batch=4, margin=margin)
    np.testing.assert_allclose(out, image * 2 - 0.3, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 2), (40, 63), (64, 64), (65, 200)])
def test_images_smaller_than_half_a_tile(shape: tuple[int, int]) -> None:
    image = random_image(shape, seed=2)
    for overlap in (0, 16, 37):
        np.testing.assert_allclose(predict_tiled(image, linear, 128, overlap), image * 2 - 0.3, rtol=0, atol=1e-6)


def test_rectangular_tiles() -> None:
    image = random_image((333, 517), seed=3)
    np.testing.assert_allclose(predict_tiled(image, identity, (64, 96), 20, batch=5), image, rtol=0, atol=1e-6)


def test_tiles_see_mirrored_context_like_numpy_reflect_pad() -> None:
    """Tiles hanging over the edge hold numpy's 'reflect' padding (BORDER_REFLECT_101), even for big pads."""
    image = random_image((5, 9), seed=4)
    seen: list[np.ndarray] = []

    def record(tiles: np.ndarray) -> np.ndarray:
        seen.append(tiles[..., 0].copy())
        return tiles

    predict_tiled(image, record, 32, 8, margin=0)
    assert len(seen) == 1 and seen[0].shape == (1, 32, 32)
    padded = np.pad(image, ((13, 14), (11, 12)), mode="reflect")  # centred in the 32 x 32 tile
    np.testing.assert_array_equal(seen[0][0], padded)
    for length in (1, 2, 3, 7):
        indices = np.arange(-50, 50 + length)
        np.testing.assert_array_equal(reflect_indices(indices, length),
                                      np.pad(np.arange(length), (50, 50), mode="reflect"))


def test_no_seam_with_a_tile_dependent_model() -> None:
    """A model that answers each tile with a different constant still gives a smooth blend."""
    counter = iter(range(10_000))

    def constant_per_tile(tiles: np.ndarray) -> np.ndarray:
        return np.stack([np.full(t.shape, next(counter) % 2, dtype=np.float32) for t in tiles])

    out = predict_tiled(np.zeros((400, 400), np.float32), constant_per_tile, 128, 64, batch=3)
    assert out.min() >= 0 and out.max() <= 1 + 1e-6  # float rounding of the weighted mean
    # Raised-cosine blending: neighbouring pixels never jump by more than the window's steepest step.
    steepest = np.abs(np.diff(blend_window(128, 64))).max()
    assert np.abs(np.diff(out, axis=0)).max() <= steepest + 1e-6
    assert np.abs(np.diff(out, axis=1)).max() <= steepest + 1e-6


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_predict_batch_never_gets_more_than_batch_tiles(batch: int) -> None:
    sizes: list[int] = []
    done: list[int] = []

    def spy(tiles: np.ndarray) -> np.ndarray:
        assert tiles.dtype == np.float32 and tiles.shape[1:] == (64, 64, 1)
        sizes.append(len(tiles))
        return tiles

    predict_tiled(random_image((300, 250)), spy, 64, 16, batch=batch, progress=done.append)
    assert max(sizes) <= batch and min(sizes) >= 1
    assert sum(sizes) == count_tiles((300, 250), 64, 16) == sum(done)
    assert sizes[:-1] == [batch] * (len(sizes) - 1)


@pytest.mark.parametrize("length", [1, 63, 64, 65, 100, 128, 129, 1000, 1001])
@pytest.mark.parametrize("tile,overlap", [(64, 0), (64, 16), (64, 37), (64, 63)])
def test_tile_origins_cover_everything_flush_with_the_end(length: int, tile: int, overlap: int) -> None:
    origins = tile_origins(length, tile, overlap)
    if length <= tile:
        assert origins == [0]
        return
    assert origins[0] == 0 and origins[-1] == length - tile
    assert origins == sorted(set(origins))
    steps = np.diff(origins)
    assert (steps <= tile - overlap).all() and (steps > 0).all()
    covered = np.zeros(length, bool)
    for start in origins:
        covered[start:start + tile] = True
    assert covered.all()


def test_window_is_positive_and_a_partition_of_unity() -> None:
    for tile, overlap in [(128, 0), (128, 16), (128, 64), (128, 100), (5, 4)]:
        window = blend_window(tile, overlap)
        assert window.shape == (tile,) and (window > 0).all() and (window <= 1).all()
        np.testing.assert_allclose(window, window[::-1])
        if 2 * overlap <= tile and overlap:
            stride = tile - overlap
            np.testing.assert_allclose(window[stride:] + window[:overlap], 1.0, atol=1e-12)


@pytest.mark.parametrize("tile,overlap", [(64, 64), (64, 100), (64, -1), (0, 0)])
def test_bad_settings_raise(tile: int, overlap: int) -> None:
    with pytest.raises(TilingError):
        tile_origins(100, tile, overlap)
    with pytest.raises(TilingError):
        predict_tiled(np.zeros((10, 10), np.float32), identity, tile, overlap)


def test_bad_batch_and_wrong_answer_shape_raise() -> None:
    with pytest.raises(TilingError, match="batch"):
        predict_tiled(np.zeros((10, 10), np.float32), identity, 16, 4, batch=0)
    with pytest.raises(TilingError, match="shape"):
        predict_tiled(np.zeros((10, 10), np.float32), lambda t: t[:, :8], 16, 4)
    with pytest.raises(TilingError, match="2-D"):
        predict_tiled(np.zeros((10, 10, 3), np.float32), identity, 16, 4)


def test_by_default_tiles_hold_only_image_pixels() -> None:
    """No mirrored margin: the image's border is the tiles' edge, as the training crops' edges were."""
    image = random_image((300, 250), seed=5)
    seen: list[np.ndarray] = []

    def record(tiles: np.ndarray) -> np.ndarray:
        seen.extend(tile[..., 0].copy() for tile in tiles)
        return tiles

    predict_tiled(image, record, 128, 32, batch=3)
    ys, xs = tile_origins(300, 128, 32), tile_origins(250, 128, 32)
    assert len(seen) == len(ys) * len(xs) == count_tiles((300, 250), 128, 32)
    for tile, (y, x) in zip(seen, [(y, x) for y in ys for x in xs]):
        np.testing.assert_array_equal(tile, image[y:y + 128, x:x + 128])
