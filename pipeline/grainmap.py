"""Grain maps drawn the `general` way: polySim made to look like many real microstructures.

polySim at the study's rates gives 51-89 equiaxed grains per 512 px image and a narrow size
distribution. The general family of presets (general, aligned, micrograph) draws per sample
(ranges in `GeneralRanges`, documented in docs/store.md):
- polySim rates over a wide range, and a zoom with an anisotropic stretch and rotation
  (the grain map is simulated at the size the transform needs and resampled to the image);
- merges of random neighbouring grains (large irregular grains beside small ones) and twins
  (straight parallel-sided bands across grains);
- a boundary width, pockets at triple junctions, a gap style and binarisation noise (used by
  the recipes that draw boundary images).
Every draw comes from the sample's own generator, so a sample stays a pure function of
(config, seed, index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .gaps import GAP_STYLES
from .polysim import simulate
from .sample import Draws

if TYPE_CHECKING:
    from .config import GenerationConfig

MIN_SIMULATED = 64  # polySim's smallest useful map


@dataclass(frozen=True)
class GeneralRanges:
    """Per-sample draw ranges of the general family (inclusive; `zoom` is drawn log-uniformly)."""

    zoom: tuple[float, float] = (0.5, 2.5)  # > 1 enlarges the simulated grains
    stretch_share: float = 0.5  # share of samples with elongated grains
    stretch: tuple[float, float] = (1.5, 4.0)  # aspect ratio of the stretch at constant area
    merge_share: tuple[float, float] = (0.0, 0.45)  # share of grains merged into a neighbour
    twin_share: float = 0.4  # share of samples with twins
    twinned_grains: tuple[float, float] = (0.1, 0.5)  # share of a sample's grains with a twin band
    twin_width: tuple[int, int] = (4, 16)  # px
    width: tuple[int, int] = (1, 6)  # boundary width, px
    pockets: tuple[int, int] = (0, 40)  # filled pockets at triple junctions
    pocket_radius: tuple[int, int] = (1, 4)  # px, beyond the line's half width
    gap_weights: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)  # of GAP_STYLES
    noise_share: float = 0.5  # share of samples with binarisation noise
    max_source: float = 2.0  # the simulated map's side is at most this many image sides


GENERAL = GeneralRanges()
# The `aligned` preset's own draws: every sample stretched, small grains (higher rates, a smaller
# zoom, a larger simulated map), few merges; the rest as GENERAL.
ALIGNED = GeneralRanges(zoom=(0.4, 1.0), stretch_share=1.0, stretch=(2.0, 5.0), merge_share=(0.0, 0.15),
                        twin_share=0.2, max_source=3.0)


@dataclass(frozen=True)
class Shape:
    """The geometric draws of one sample: how the simulated map becomes the image's grain map."""

    zoom: float
    stretch: float
    angle: float

    def inverse(self) -> np.ndarray:
        """2x2 map from an image offset to the simulated map's offset (both about their centres)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rotation = np.array([[c, -s], [s, c]])
        root = math.sqrt(self.stretch)
        return rotation @ np.diag([1 / (self.zoom * root), root / self.zoom]) @ rotation.T

    def source_side(self, size: int) -> int:
        """Side of the simulated square map that covers the transformed image."""
        m = self.inverse()
        return int(math.ceil(size * max(abs(m[0]).sum(), abs(m[1]).sum()))) + 2


def draw_shape(size: int, rng: np.random.Generator, ranges: GeneralRanges = GENERAL) -> Shape:
    """Zoom, stretch and angle of one sample; the zoom rises if the map would exceed `max_source` sides."""
    zoom = math.exp(rng.uniform(math.log(ranges.zoom[0]), math.log(ranges.zoom[1])))
    stretch = float(rng.uniform(*ranges.stretch)) if rng.random() < ranges.stretch_share else 1.0
    shape = Shape(zoom, stretch, float(rng.uniform(0, math.pi)))
    limit = ranges.max_source * size
    if shape.source_side(size) > limit:
        shape = Shape(zoom * shape.source_side(size) / limit, stretch, shape.angle)
    return shape


@dataclass(frozen=True)
class GeneralPlan:
    """The per-sample choices of the general family, drawn before polySim runs (`plan`)."""

    shape: Shape
    merge_share: float
    twinned_grains: float  # 0: no twins
    width: int
    pockets: int
    style: str  # one of GAP_STYLES
    noise: bool


def plan(config: GenerationConfig, rng: np.random.Generator, ranges: GeneralRanges = GENERAL) -> GeneralPlan:
    """A sample's choices from `rng` (stream 1, after the rates): shape, merges, twins, width,
    pockets, gap style and noise."""
    shape = draw_shape(config.size, rng, ranges)
    merge_share = float(rng.uniform(*ranges.merge_share))
    twins = float(rng.uniform(*ranges.twinned_grains)) if rng.random() < ranges.twin_share else 0.0
    width = int(rng.integers(*ranges.width, endpoint=True))
    pockets = int(rng.integers(*ranges.pockets, endpoint=True))
    weights = np.array(ranges.gap_weights) / sum(ranges.gap_weights)
    style = GAP_STYLES[int(rng.choice(len(GAP_STYLES), p=weights))]
    return GeneralPlan(shape, merge_share, twins, width, pockets, style, bool(rng.random() < ranges.noise_share))


@dataclass(frozen=True)
class GrainMap:
    """A drawn grain map: ids 1..count, 4-connected, polySim's Avrami exponent, and the map before twins."""

    grains: np.ndarray  # (S, S) uint16
    count: int
    avrami_exponent: float
    parents: np.ndarray  # (S, S) the map before twin bands were added: its lines are no twin boundary


def draw_grain_map(config: GenerationConfig, draws: Draws, choices: GeneralPlan, rng: np.random.Generator,
                   ranges: GeneralRanges = GENERAL) -> GrainMap:
    """polySim at the size `choices.shape` needs, resampled, merged and twinned (draws from `rng`)."""
    size, shape = config.size, choices.shape
    structure = simulate(max(MIN_SIMULATED, shape.source_side(size)), draws.nucleation_rate, draws.growth_rate,
                         config.height, draws.polysim_seed)
    grains = merge_grains(resample(structure.grains, size, shape), choices.merge_share, rng)
    parents = grains
    if choices.twinned_grains:
        grains = add_twins(grains, choices.twinned_grains, ranges.twin_width, rng)
    grains, count = relabel(grains)
    return GrainMap(grains, count, structure.avrami_exponent, parents)


def warp(grains: np.ndarray, size: int, inverse: np.ndarray) -> np.ndarray:
    """The size x size grain map whose offset from its centre maps by `inverse` (2x2) to an offset
    from the centre of `grains` (nearest neighbour, replicated border)."""
    centre_src, centre_out = (np.array(grains.shape[::-1]) - 1) / 2, np.full(2, (size - 1) / 2)
    matrix = np.hstack([inverse, (centre_src - inverse @ centre_out)[:, None]])
    return cv2.warpAffine(grains, matrix, (size, size), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def resample(grains: np.ndarray, size: int, shape: Shape) -> np.ndarray:
    """The size x size grain map seen through `shape` (`warp`, then a 5x5 median on the staircase)."""
    return cv2.medianBlur(warp(grains, size, shape.inverse()), 5)


def neighbour_pairs(grains: np.ndarray) -> np.ndarray:
    """Unique (a, b) id pairs, a < b, of 4-adjacent pixels with different ids."""
    pairs = [np.stack([grains[:, :-1].ravel(), grains[:, 1:].ravel()], 1),
             np.stack([grains[:-1].ravel(), grains[1:].ravel()], 1)]
    pairs = np.concatenate(pairs)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(np.sort(pairs, axis=1), axis=0)


def merge_grains(grains: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Merge about `share` of the grains, each into one random neighbour (chains make large irregular grains)."""
    pairs = neighbour_pairs(grains)
    ids = np.unique(grains)
    if not len(pairs) or share <= 0:
        return grains
    parent = np.arange(int(ids.max()) + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for grain in rng.permutation(ids)[:int(round(share * len(ids)))]:
        touching = pairs[(pairs[:, 0] == grain) | (pairs[:, 1] == grain)]
        if len(touching):
            a, b = touching[int(rng.integers(len(touching)))]
            parent[root(int(a))] = root(int(b))
    return np.array([root(i) for i in range(len(parent))], grains.dtype)[grains]


def add_twins(grains: np.ndarray, share: float, width: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Give about `share` of the grains a straight parallel-sided band across them, as a grain of its own."""
    out = grains.astype(np.int32)
    next_id = int(out.max()) + 1
    ids = np.unique(grains)
    for grain in rng.permutation(ids)[:int(round(share * len(ids)))]:
        ys, xs = np.nonzero(grains == grain)
        if len(ys) < 50:
            continue
        k = int(rng.integers(len(ys)))
        angle, band = float(rng.uniform(0, math.pi)), float(rng.integers(*width, endpoint=True))
        # Signed distance to the band's centre line through a random pixel of the grain.
        distance = (ys - ys[k]) * math.cos(angle) - (xs - xs[k]) * math.sin(angle)
        inside = np.abs(distance) <= band / 2
        if 0 < inside.sum() < len(ys) - 20:
            out[ys[inside], xs[inside]] = next_id
            next_id += 1
    return out


def relabel(grains: np.ndarray) -> tuple[np.ndarray, int]:
    """Grain ids 1..n by 4-connected component (merged, twinned or median-smoothed pieces split apart)."""
    out = np.zeros(grains.shape, np.int32)
    count = 0
    for grain in np.unique(grains):
        n, pieces = cv2.connectedComponents((grains == grain).astype(np.uint8), connectivity=4)
        inside = pieces > 0
        out[inside] = pieces[inside] + count
        count += n - 1
    return out.astype(np.uint16), count
