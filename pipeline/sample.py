"""Sample i of a library: a pure function of (config, seed, i).

The method is the study's (see docs/store.md): polySim grain structure, 2-px ground-truth
boundaries from the 4-neighbour Laplacian of the grain-id map, square patches replaced by their
Gaussian blur, Otsu binarisation, one square dilation of the boundaries of both images.
On disk and here: boundary = 0, background = 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .config import GenerationConfig
from .polysim import simulate

BOUNDARY, BACKGROUND = 0, 255
# Independent random streams derived from (seed, i); the numbers are part of the format.
STREAM_POLYSIM, STREAM_DRAWS, STREAM_SPLIT = 0, 1, 2
# 70/10/20 train/val/test, exact within every group of ten consecutive samples.
SPLIT_GROUP = (0,) * 7 + (1,) + (2,) * 2
TRAIN, VAL, TEST = 0, 1, 2
# Gaussian kernels reach 4 sigma each side, as scipy.ndimage.gaussian_filter does.
BLUR_TRUNCATE = 4.0


@dataclass(frozen=True)
class SampleMeta:
    """Per-sample facts stored beside the images (one row of the per-sample arrays)."""

    seed: int  # the value given to libc srand before polySim
    nucleation_rate: int
    growth_rate: int
    num_grains: int
    avrami_exponent: float
    dilation: int
    gap_patches: int
    erased_fraction: float
    split: int


@dataclass(frozen=True)
class Sample:
    """One fragmented/true boundary pair with its grain map and metadata."""

    index: int
    micro: np.ndarray  # (S, S) uint8 fragmented boundaries (the model's input)
    label: np.ndarray  # (S, S) uint8 true boundaries
    grains: np.ndarray  # (S, S) uint16 grain ids
    meta: SampleMeta


def _stream(seed: int, purpose: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=(purpose, index))


def polysim_seed(seed: int, index: int) -> int:
    """The 32-bit seed handed to libc srand for sample `index`."""
    return int(_stream(seed, STREAM_POLYSIM, index).generate_state(1, np.uint32)[0])


def split_of(seed: int, index: int) -> int:
    """Split of sample `index` (0 train, 1 val, 2 test); depends on (seed, index) only."""
    group, position = divmod(index, len(SPLIT_GROUP))
    order = np.random.default_rng(_stream(seed, STREAM_SPLIT, group)).permutation(len(SPLIT_GROUP))
    return SPLIT_GROUP[order[position]]


@dataclass(frozen=True)
class Draws:
    """The per-sample choices made before polySim runs."""

    nucleation_rate: int
    growth_rate: int
    dilation: int
    polysim_seed: int


def draw(config: GenerationConfig, seed: int, index: int) -> tuple[Draws, np.random.Generator]:
    """Sample `index`'s parameters, and its generator positioned for the fragmentation draws."""
    rng = np.random.default_rng(_stream(seed, STREAM_DRAWS, index))
    draws = Draws(
        nucleation_rate=int(rng.integers(config.nucleation_rate[0], config.nucleation_rate[1], endpoint=True)),
        growth_rate=int(rng.integers(config.growth_rate[0], config.growth_rate[1], endpoint=True)),
        dilation=int(rng.choice(config.dilations)),
        polysim_seed=polysim_seed(seed, index),
    )
    return draws, rng


def make_sample(config: GenerationConfig, seed: int, index: int) -> Sample:
    """Build sample `index` of the library defined by (config, seed)."""
    if config.preset == "general":
        from .general import make_general_sample

        return make_general_sample(config, seed, index)
    if config.preset == "aligned":
        from .general import make_aligned_sample

        return make_aligned_sample(config, seed, index)
    draws, rng = draw(config, seed, index)
    structure = simulate(config.size, draws.nucleation_rate, draws.growth_rate, config.height, draws.polysim_seed)

    label = boundaries(structure.grains)
    micro, patches = blurred_fragments(label, rng, config)
    micro, label = thicken(micro, draws.dilation), thicken(label, draws.dilation)

    meta = SampleMeta(
        seed=draws.polysim_seed,
        nucleation_rate=draws.nucleation_rate,
        growth_rate=draws.growth_rate,
        num_grains=structure.num_grains,
        avrami_exponent=structure.avrami_exponent,
        dilation=draws.dilation,
        gap_patches=patches,
        erased_fraction=float(erased_fraction(micro, label)),
        split=split_of(seed, index),
    )
    return Sample(index=index, micro=micro, label=label, grains=structure.grains, meta=meta)


def boundaries(grains: np.ndarray) -> np.ndarray:
    """Boundary image of a grain-id map: 0 where the 4-neighbour Laplacian is non-zero, else 255.

    Edge pixels see themselves beyond the border (scipy's 'reflect'), so the border itself
    is no boundary.
    """
    laplacian = cv2.Laplacian(grains, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    return cv2.compare(laplacian, 0.0, cv2.CMP_EQ)


def blurred_fragments(label: np.ndarray, rng: np.random.Generator, config: GenerationConfig) -> tuple[np.ndarray, int]:
    """The study's fragmented input of `label`: blurred square patches (`fragment`), then Otsu's
    threshold; and the number of patches."""
    micro = label.copy()
    count = fragment(micro, rng, config.patch_count_range, config.patch_side_range, config.blur_sigma)
    cv2.threshold(micro, 0, BACKGROUND, cv2.THRESH_BINARY | cv2.THRESH_OTSU, dst=micro)
    return micro, count


def fragment(
    image: np.ndarray,
    rng: np.random.Generator,
    count_range: tuple[int, int],
    side_range: tuple[int, int],
    sigma: float,
) -> int:
    """Blur random square patches of `image` in place, one after another; returns the count."""
    size = image.shape[0]
    count = int(rng.integers(count_range[0], count_range[1], endpoint=True))
    for _ in range(count):
        side = int(rng.integers(side_range[0], side_range[1], endpoint=True))
        top = int(rng.integers(0, size - side, endpoint=True))
        left = int(rng.integers(0, size - side, endpoint=True))
        patch = image[top : top + side, left : left + side]
        weights = blur_matrix(side, sigma)
        # Rows of `weights` are non-negative and sum to 1: the result stays within [0, 255].
        patch[...] = np.rint(weights @ patch.astype(np.float64) @ weights.T)
    return count


@lru_cache(maxsize=None)
def blur_matrix(side: int, sigma: float) -> np.ndarray:
    """Matrix B with B @ x == 1-D Gaussian blur of a length-`side` signal, edge mode 'nearest'.

    Taps falling outside the signal are folded onto its first or last sample, so
    B @ P @ B.T is the 2-D blur of a square patch P with replicated edges.
    """
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    matrix = np.zeros((side, side))
    rows = np.arange(side)[:, None]
    columns = np.clip(rows + offsets[None, :], 0, side - 1)
    np.add.at(matrix, (np.broadcast_to(rows, columns.shape), columns), np.broadcast_to(kernel, columns.shape))
    matrix.flags.writeable = False
    return matrix


def thicken(image: np.ndarray, side: int) -> np.ndarray:
    """Dilate the boundary (dark) pixels with a side x side square; side 1 leaves it as is."""
    if side == 1:
        return image
    return cv2.erode(image, np.ones((side, side), np.uint8), borderType=cv2.BORDER_REPLICATE)


def erased_fraction(micro: np.ndarray, label: np.ndarray) -> float:
    """Share of true boundary pixels that are background in the fragmented input."""
    if micro.dtype == label.dtype == np.uint8 and micro.ndim == label.ndim == 2:
        # The same counts through OpenCV: a third of numpy's time at 512 px (no bool temporaries).
        true_boundary = cv2.compare(label, BOUNDARY, cv2.CMP_EQ)
        total = cv2.countNonZero(true_boundary)
        erased = cv2.countNonZero(cv2.bitwise_and(true_boundary, cv2.compare(micro, BACKGROUND, cv2.CMP_EQ)))
    else:
        true_boundary = label == BOUNDARY
        total = np.count_nonzero(true_boundary)
        erased = np.count_nonzero(true_boundary & (micro == BACKGROUND))
    return erased / total if total else 0.0
