"""The `general` preset: polySim grain maps made to look like many real microstructures.

The study's library teaches one microstructure: polySim at fixed rates gives 51-89 equiaxed
grains per 512 px image, a narrow size distribution and 2-4 px lines. A sample of the general
preset starts from the same simulator and draws, per sample (ranges in `GeneralRanges`,
documented in docs/store.md):
- polySim rates over a wide range, and a zoom with an anisotropic stretch and rotation
  (the grain map is simulated at the size the transform needs and resampled to the image);
- merges of random neighbouring grains (large irregular grains beside small ones) and twins
  (straight parallel-sided bands across grains);
- boundary widths 1-6 px and filled pockets at triple junctions;
- a quarter of the samples made exactly as the study's library (same seed, same index);
- one gap style: the study's blurred squares, hard cuts, faded stretches or thinned (dotted)
  stretches; then binarisation noise (etch pits, porous lines) in the input only.
Every draw comes from the sample's own generator, so a sample stays a pure function of
(config, seed, index).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .config import GENERAL_RATES, GenerationConfig
from .gaps import BACKGROUND, BOUNDARY, faded, sharp_cuts, speckle, thinned
from .polysim import simulate

if TYPE_CHECKING:
    from .sample import Sample

# The order of this tuple is part of the format: a sample draws an index into it.
GAP_STYLES = ("blur", "cuts", "faded", "thinned")


@dataclass(frozen=True)
class GeneralRanges:
    """Per-sample draw ranges of the general preset (inclusive; `zoom` is drawn log-uniformly)."""

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
    study_share: float = 0.25  # share of samples made exactly as the study's library makes sample i


GENERAL = GeneralRanges()
# The `aligned` preset's own draws: every sample stretched, small grains (higher rates, a smaller
# zoom, a larger simulated map), few merges; the rest as GENERAL. Its study share comes through
# the general half (`ALIGNED_GENERAL_SHARE`), so it draws none itself.
ALIGNED = GeneralRanges(zoom=(0.4, 1.0), stretch_share=1.0, stretch=(2.0, 5.0), merge_share=(0.0, 0.15),
                        twin_share=0.2, max_source=3.0, study_share=0.0)
ALIGNED_GENERAL_SHARE = 0.5  # share of an aligned library's samples that are the general library's sample i
STUDY = GenerationConfig()  # the study's rates and dilations, for the study share of the samples
STREAM_STUDY = 3  # random stream (after sample.py's 0-2) of the study-or-general choice; part of the format
STREAM_ALIGNED = 4  # random stream of the aligned preset's general-or-aligned choice; part of the format
MIN_SIMULATED = 64  # polySim's smallest useful map
# Constants of the gap styles other than the study's blurred squares (as the generalisation benchmark).
CUT_COUNT, CUT_LENGTH = (20, 50), (3, 48)
FADE_DIPS, FADE_SIGMA, FADE_NOISE = (20, 50), (6.0, 20.0), (10.0, 30.0)
THIN_COUNT, THIN_RADIUS, THIN_DROPOUT = (10, 40), (5, 25), (0.2, 0.7)
NOISE_PEPPER, NOISE_POROSITY, NOISE_BLOBS = (0.0005, 0.004), (0.0, 0.06), (5, 60)


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


def line_of(grains: np.ndarray) -> np.ndarray:
    """One-pixel boundary (boolean): pixels whose right or lower neighbour is another grain."""
    line = np.zeros(grains.shape, bool)
    line[:, :-1] |= grains[:, :-1] != grains[:, 1:]
    line[:-1] |= grains[:-1] != grains[1:]
    return line


def triple_junctions(grains: np.ndarray) -> np.ndarray:
    """(y, x) of the 2x2 windows that hold three or more grain ids."""
    a, b, c, d = grains[:-1, :-1], grains[:-1, 1:], grains[1:, :-1], grains[1:, 1:]
    distinct = 1 + (b != a) + ((c != a) & (c != b)) + ((d != a) & (d != b) & (d != c))
    return np.argwhere(distinct >= 3)


def draw_label(grains: np.ndarray, width: int, pockets: int, radius: tuple[int, int],
               rng: np.random.Generator) -> np.ndarray:
    """True boundaries: the one-pixel line dilated to `width` px, with filled pockets at triple junctions."""
    label = np.where(line_of(grains), BOUNDARY, BACKGROUND).astype(np.uint8)
    if width > 1:
        label = cv2.erode(label, np.ones((width, width), np.uint8), borderType=cv2.BORDER_REPLICATE)
    junctions = triple_junctions(grains)
    for _ in range(pockets if len(junctions) else 0):
        y, x = junctions[int(rng.integers(len(junctions)))]
        pocket = int(rng.integers(*radius, endpoint=True)) + width // 2
        cv2.circle(label, (int(x), int(y)), pocket, BOUNDARY, -1, cv2.LINE_8)
    return label


def fragment_general(label: np.ndarray, line: np.ndarray, style: str, config: GenerationConfig, width: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The fragmented input of one gap style, and the number of gaps (patches, cuts, dips or stretches) drawn."""
    from .sample import blurred_fragments

    if style == "blur":
        return blurred_fragments(label, rng, config)
    if style == "cuts":
        count = int(rng.integers(*CUT_COUNT, endpoint=True))
        return sharp_cuts(label, rng, (count, count), CUT_LENGTH, width + 6, config.patch_side_range), count
    if style == "faded":
        count = int(rng.integers(*FADE_DIPS, endpoint=True))
        return faded(label, rng, (count, count), FADE_SIGMA, FADE_NOISE), count
    count = int(rng.integers(*THIN_COUNT, endpoint=True))
    return thinned(label, line, rng, (count, count), THIN_RADIUS, THIN_DROPOUT), count


def _uniform(seed: int, stream: int, index: int) -> float:
    """The one uniform [0, 1) draw of sample `index` in its own random `stream` (a share choice)."""
    from .sample import _stream

    return float(np.random.default_rng(_stream(seed, stream, index)).random())


@dataclass(frozen=True)
class GeneralPlan:
    """The per-sample choices of the general preset, drawn before polySim runs (`plan`)."""

    study: bool  # made exactly as the study library's sample i
    shape: Shape
    merge_share: float
    twinned_grains: float  # 0: no twins
    width: int
    pockets: int
    style: str  # one of GAP_STYLES
    noise: bool


def plan(config: GenerationConfig, seed: int, index: int, rng: np.random.Generator,
         ranges: GeneralRanges = GENERAL) -> GeneralPlan:
    """Sample `index`'s choices: whether it is a study sample (stream 3), then, from `rng` (stream 1,
    after the rates), shape, merges, twins, width, pockets, gap style and noise."""
    study = _uniform(seed, STREAM_STUDY, index) < ranges.study_share
    shape = draw_shape(config.size, rng, ranges)
    merge_share = float(rng.uniform(*ranges.merge_share))
    twins = float(rng.uniform(*ranges.twinned_grains)) if rng.random() < ranges.twin_share else 0.0
    width = int(rng.integers(*ranges.width, endpoint=True))
    pockets = int(rng.integers(*ranges.pockets, endpoint=True))
    weights = np.array(ranges.gap_weights) / sum(ranges.gap_weights)
    style = GAP_STYLES[int(rng.choice(len(GAP_STYLES), p=weights))]
    return GeneralPlan(study, shape, merge_share, twins, width, pockets, style, bool(rng.random() < ranges.noise_share))


def is_aligned_draw(seed: int, index: int) -> bool:
    """Whether sample `index` of an aligned library makes its own draws (else it is the general library's)."""
    return _uniform(seed, STREAM_ALIGNED, index) >= ALIGNED_GENERAL_SHARE


def make_aligned_sample(config: GenerationConfig, seed: int, index: int) -> Sample:
    """Sample `index` of an aligned-preset library: half of the samples (stream 4) are the general
    library's sample `index` (same seed, the general preset's rates), the rest the general preset's
    steps with the `ALIGNED` ranges and this library's rates (`PRESET_RATES['aligned']` by default)."""
    if not is_aligned_draw(seed, index):
        general = dataclasses.replace(config, preset="general", **GENERAL_RATES)
        return make_general_sample(general, seed, index)
    return make_general_sample(config, seed, index, ALIGNED)


def make_general_sample(config: GenerationConfig, seed: int, index: int, ranges: GeneralRanges = GENERAL) -> Sample:
    """Sample `index` of a general-preset library (see the module docstring for the draws), or of
    the aligned preset's own draws with `ranges=ALIGNED`.

    A `study_share` of the samples, chosen by their own stream, are the study library's sample
    `index` (same seed): the general library holds the study's microstructure too, and its
    splits agree with the study library's.
    """
    from .sample import Sample, SampleMeta, draw, erased_fraction, make_sample, split_of

    draws, rng = draw(config, seed, index)
    choices = plan(config, seed, index, rng, ranges)
    if choices.study:
        study = dataclasses.replace(config, preset="study", nucleation_rate=STUDY.nucleation_rate,
                                    growth_rate=STUDY.growth_rate, dilations=STUDY.dilations)
        return make_sample(study, seed, index)
    size, shape = config.size, choices.shape
    structure = simulate(max(MIN_SIMULATED, shape.source_side(size)), draws.nucleation_rate, draws.growth_rate,
                         config.height, draws.polysim_seed)
    grains = merge_grains(resample(structure.grains, size, shape), choices.merge_share, rng)
    if choices.twinned_grains:
        grains = add_twins(grains, choices.twinned_grains, ranges.twin_width, rng)
    grains, count = relabel(grains)

    line = line_of(grains)
    label = draw_label(grains, choices.width, choices.pockets, ranges.pocket_radius, rng)
    micro, gaps = fragment_general(label, line, choices.style, config, choices.width, rng)
    if choices.noise:
        micro = speckle(micro, rng, NOISE_PEPPER, NOISE_POROSITY, NOISE_BLOBS)

    meta = SampleMeta(
        seed=draws.polysim_seed, nucleation_rate=draws.nucleation_rate, growth_rate=draws.growth_rate,
        num_grains=count, avrami_exponent=structure.avrami_exponent, dilation=choices.width, gap_patches=gaps,
        erased_fraction=float(erased_fraction(micro, label)), split=split_of(seed, index),
    )
    return Sample(index=index, micro=micro, label=label, grains=grains, meta=meta)
