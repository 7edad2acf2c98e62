"""Gray etched micrographs rendered from a grain map: the micrograph preset's primitive.

A render is drawn in two steps, each from the generator it is given: `draw_render` picks the
sample's parameters from `RenderRanges` (documented in docs/store.md), `render` paints
1. a gray level per grain (orientation contrast), a mild linear shading across each grain and a
   smooth texture;
2. etch grooves over the true boundary band whose depth and softness vary smoothly along each
   boundary, down to nearly invisible stretches (the gaps; the label stays the whole network);
   twin boundaries with their own, fainter contrast;
3. distractors that are not boundaries: polishing scratches (long thin straight or gently curved
   lines), etch pits and inclusions, stains;
4. optics: an illumination gradient and vignetting, defocus blur, Gaussian and shot noise,
   8-bit quantisation; some renders inverted (bright boundaries, as in SEM).
The clean render is the same micrograph without step 3 and without noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .boundaries import line_of
from .sample import BOUNDARY

FAINT = 0.25  # a boundary pixel drawn at under this share of the sample's groove depth is a gap


@dataclass(frozen=True)
class RenderRanges:
    """Per-sample draw ranges of a render (inclusive; gray levels on 0-255)."""

    level: tuple[float, float] = (60.0, 235.0)  # mean gray level of the grains
    contrast: tuple[float, float] = (2.0, 40.0)  # standard deviation of the grains' levels
    shading: tuple[float, float] = (0.0, 0.15)  # levels per px of a grain's linear shading
    texture: tuple[float, float] = (0.0, 6.0)  # standard deviation of the smooth in-grain texture
    groove_depth: tuple[float, float] = (25.0, 160.0)  # darkening at a groove's centre
    groove_softness: tuple[float, float] = (0.5, 3.0)  # px: how far a groove's edge fades beyond the band
    faint_share: tuple[float, float] = (0.05, 0.35)  # share of the boundary drawn faint (under FAINT)
    faint_scale: tuple[float, float] = (15.0, 60.0)  # px: length scale of the depth's variation along boundaries
    twin_contrast: tuple[float, float] = (0.2, 0.8)  # depth of twin boundaries relative to the others
    scratch_share: float = 0.6  # share of renders with polishing scratches
    scratches: tuple[int, int] = (1, 40)
    scratch_width: tuple[int, int] = (1, 3)  # px
    scratch_depth: tuple[float, float] = (8.0, 80.0)
    pits: tuple[int, int] = (0, 80)  # etch pits and inclusions
    pit_radius: tuple[int, int] = (1, 5)  # px
    pit_depth: tuple[float, float] = (30.0, 120.0)
    stains: tuple[int, int] = (0, 3)
    stain_radius: tuple[float, float] = (20.0, 100.0)  # px, at 512 px
    stain_strength: tuple[float, float] = (5.0, 30.0)  # levels, lighter or darker
    illumination: tuple[float, float] = (0.0, 0.25)  # relative brightness change across the image
    vignetting: tuple[float, float] = (0.0, 0.3)  # relative darkening in the corners
    blur: tuple[float, float] = (0.0, 1.5)  # px: defocus (Gaussian sigma)
    noise: tuple[float, float] = (1.0, 14.0)  # Gaussian noise sigma
    shot: tuple[float, float] = (0.0, 0.4)  # shot-noise gain: variance = gain x level
    invert_share: float = 0.15  # share of renders with bright boundaries


RANGES = RenderRanges()


@dataclass(frozen=True)
class RenderPlan:
    """The drawn parameters of one render."""

    level: float
    contrast: float
    shading: float
    texture: float
    groove_depth: float
    groove_softness: float
    faint_share: float
    faint_scale: float
    twin_contrast: float
    scratches: int
    scratch_depth: float
    pits: int
    stains: int
    illumination: float
    vignetting: float
    blur: float
    noise: float
    shot: float
    inverted: bool


def draw_render(rng: np.random.Generator, ranges: RenderRanges = RANGES) -> RenderPlan:
    """One render's parameters, each uniform over its range."""
    def u(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    def n(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1], endpoint=True))

    level, contrast, shading, texture = u(ranges.level), u(ranges.contrast), u(ranges.shading), u(ranges.texture)
    depth, softness, faint, scale = u(ranges.groove_depth), u(ranges.groove_softness), u(ranges.faint_share), \
        u(ranges.faint_scale)
    twin = u(ranges.twin_contrast)
    scratches = n(ranges.scratches) if rng.random() < ranges.scratch_share else 0
    scratch_depth, pits, stains = u(ranges.scratch_depth), n(ranges.pits), n(ranges.stains)
    return RenderPlan(level, contrast, shading, texture, depth, softness, faint, scale, twin, scratches,
                      scratch_depth, pits, stains, u(ranges.illumination), u(ranges.vignetting), u(ranges.blur),
                      u(ranges.noise), u(ranges.shot), bool(rng.random() < ranges.invert_share))


@dataclass(frozen=True)
class Render:
    """A rendered micrograph, its clean render, and how much of the boundary was drawn faint."""

    micro: np.ndarray  # (S, S) uint8
    clean: np.ndarray  # (S, S) uint8
    faint_fraction: float  # share of the true boundary pixels drawn under FAINT of the groove depth
    faint_stretches: int  # connected faint stretches (the gaps)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A smooth random field of mean 0 and standard deviation about 1 varying over `scale` px
    (white noise on a coarse grid, cubic-interpolated: cheap at any scale)."""
    height, width = shape
    step = max(scale, 1.0)
    coarse = rng.standard_normal((int(math.ceil(height / step)) + 3, int(math.ceil(width / step)) + 3))
    big = cv2.resize(coarse.astype(np.float32), (int(coarse.shape[1] * step), int(coarse.shape[0] * step)),
                     interpolation=cv2.INTER_CUBIC)
    field = big[int(step):int(step) + height, int(step):int(step) + width]
    return (field - field.mean()) / (field.std() + 1e-6)


def render(grains: np.ndarray, parents: np.ndarray, label: np.ndarray, width: int, plan: RenderPlan,
           rng: np.random.Generator, ranges: RenderRanges = RANGES) -> Render:
    """Paint the micrograph of `grains` (ids 1..n) whose true boundary band is `label` (0 = boundary,
    lines `width` px wide); lines of `grains` that `parents` (the map before twins) lacks are twin boundaries."""
    size_scale = max(grains.shape) / 512  # lengths in the ranges are at 512 px
    shape = grains.shape
    yy, xx = _coordinates(shape)
    base = _grain_levels(grains, plan, rng, yy, xx)
    if plan.texture:
        base += plan.texture * smooth_field(rng, shape, 4.0 * size_scale)

    depth, faint = _groove_depth(grains, parents, label, width, plan, rng, size_scale)
    clean = base - depth
    gain = _illumination(shape, plan, rng, yy, xx)
    # Drawn last before the noise: the clean render takes no draw after them, so it is the same
    # whatever the distractors.
    distractors = _distractors(shape, plan, rng, ranges, size_scale)
    clean, micro = clean * gain, (clean + distractors) * gain
    if plan.blur > 0.05:
        clean = cv2.GaussianBlur(clean, (0, 0), plan.blur)
        micro = cv2.GaussianBlur(micro, (0, 0), plan.blur)
    noise = rng.standard_normal(shape, dtype=np.float32)
    micro = micro + noise * np.sqrt(plan.noise ** 2 + plan.shot * np.clip(micro, 0, None))
    clean, micro = _quantise(clean), _quantise(micro)
    if plan.inverted:
        clean, micro = 255 - clean, 255 - micro
    boundary = label == BOUNDARY
    total = int(boundary.sum())
    stretches = cv2.connectedComponents((boundary & faint).astype(np.uint8), connectivity=8)[0] - 1
    return Render(micro, clean, float((boundary & faint).sum() / total) if total else 0.0, int(stretches))


def _grain_levels(grains: np.ndarray, plan: RenderPlan, rng: np.random.Generator, yy: np.ndarray,
                  xx: np.ndarray) -> np.ndarray:
    """A level per grain and a linear shading across each grain about its centroid."""
    ids = int(grains.max()) + 1
    levels = np.clip(plan.level + plan.contrast * rng.standard_normal(ids), 15, 240)
    angle = rng.uniform(0, 2 * math.pi, ids)
    slope = plan.shading * rng.uniform(0, 1, ids)
    gy, gx = slope * np.sin(angle), slope * np.cos(angle)
    # About each grain's centroid (from every 4th pixel: close enough for a reference point):
    # level + gy (y - cy) + gx (x - cx), gathered once per term.
    flat = grains[::4, ::4].ravel()
    area = np.bincount(flat, minlength=ids)
    gy[area == 0] = gx[area == 0] = 0.0  # a grain too small to be seen there stays flat
    area = np.maximum(area, 1)
    cy = np.bincount(flat, yy[::4, ::4].ravel(), ids) / area
    cx = np.bincount(flat, xx[::4, ::4].ravel(), ids) / area
    offset = (levels - gy * cy - gx * cx).astype(np.float32)
    image = np.take(offset, grains)
    image += np.take(gy.astype(np.float32), grains) * yy
    image += np.take(gx.astype(np.float32), grains) * xx
    return image


def _groove_depth(grains: np.ndarray, parents: np.ndarray, label: np.ndarray, width: int, plan: RenderPlan,
                  rng: np.random.Generator, size_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The darkening of the grooves, and where the boundary is drawn faint (boolean)."""
    boundary = label == BOUNDARY
    along = smooth_field(rng, grains.shape, plan.faint_scale * size_scale)
    # The depth falls from full to nearly none over the lowest `faint_share` of the field on the boundary.
    values = along[boundary]
    low = float(np.quantile(values, plan.faint_share)) if len(values) else 0.0
    share = np.clip((along - low) / 1.5 + FAINT, 0.03, 1.0)
    twin_line = line_of(grains) & ~line_of(parents)
    if twin_line.any():  # cover the whole band of a twin boundary, as wide as the label draws it
        side = width + 2
        band = cv2.dilate(twin_line.astype(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
        share = np.where(band, share * plan.twin_contrast, share)
    softness = plan.groove_softness * (1.0 + 0.4 * smooth_field(rng, grains.shape, 12.0 * size_scale))
    # Clipped: beyond 64 px the profile is 0 in float32 either way (and a map without boundary gives inf).
    distance = np.minimum(cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L2, 3), 64.0)
    profile = np.exp(-(distance / np.maximum(softness, 0.2)) ** 2)
    return (plan.groove_depth * share * profile).astype(np.float32), share < FAINT


def _distractors(shape: tuple[int, int], plan: RenderPlan, rng: np.random.Generator, ranges: RenderRanges,
                 size_scale: float) -> np.ndarray:
    """Scratches, pits and inclusions (darker) and stains (lighter or darker): levels added to the image."""
    height, width = shape
    layer = np.zeros(shape, np.float32)
    direction = rng.uniform(0, math.pi)  # polishing leaves scratches roughly parallel
    for _ in range(plan.scratches):
        angle = direction + rng.normal(0, 0.2)
        length = rng.uniform(0.3, 1.4) * max(shape)
        centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        along, across = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
        bend = rng.normal(0, 0.05) * length  # gently curved: a parabola through the ends
        t = np.linspace(-0.5, 0.5, 24)[:, None]
        points = centre + t * length * along + (1 - 4 * t * t) * bend * across
        line = np.zeros(shape, np.float32)
        thickness = int(rng.integers(ranges.scratch_width[0], ranges.scratch_width[1], endpoint=True))
        cv2.polylines(line, [np.rint(points * 16).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA, shift=4)
        sign = 1.0 if rng.random() < 0.25 else -1.0  # most scratches are dark, some catch the light
        layer += sign * plan.scratch_depth * rng.uniform(0.5, 1.0) * line
    for _ in range(plan.pits):
        mask = np.zeros(shape, np.float32)
        radius = int(rng.integers(ranges.pit_radius[0], ranges.pit_radius[1], endpoint=True)) * max(size_scale, 0.5)
        axes = (max(1, int(round(radius))), max(1, int(round(radius * rng.uniform(0.4, 1.0)))))
        cv2.ellipse(mask, (int(rng.integers(width)), int(rng.integers(height))), axes, float(rng.uniform(0, 180)),
                    0, 360, 1.0, -1, cv2.LINE_AA)
        layer -= float(rng.uniform(*ranges.pit_depth)) * mask
    for _ in range(plan.stains):
        radius = rng.uniform(*ranges.stain_radius) * size_scale
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        strength = rng.uniform(*ranges.stain_strength) * (1.0 if rng.random() < 0.5 else -1.0)
        y0, y1 = int(max(0, cy - 3 * radius)), int(min(height, cy + 3 * radius + 1))
        x0, x1 = int(max(0, cx - 3 * radius)), int(min(width, cx + 3 * radius + 1))
        if y1 > y0 and x1 > x0:
            dy, dx = np.arange(y0, y1)[:, None] - cy, np.arange(x0, x1)[None, :] - cx
            layer[y0:y1, x0:x1] += strength * np.exp(-(dy * dy + dx * dx) / (2 * radius * radius))
    return layer


def _illumination(shape: tuple[int, int], plan: RenderPlan, rng: np.random.Generator, yy: np.ndarray,
                  xx: np.ndarray) -> np.ndarray:
    """Multiplicative brightness: a linear gradient in a random direction and vignetting."""
    height, width = shape
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((xx / width - 0.5) * math.cos(angle) + (yy / height - 0.5) * math.sin(angle)) * plan.illumination
    r2 = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2  # 1 in the corners
    return (1.0 + ramp) * (1.0 - plan.vignetting * r2)


@lru_cache(maxsize=4)
def _coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every pixel, float32, read-only (shared by the renders of one size)."""
    yy, xx = np.indices(shape, dtype=np.float32)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _quantise(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
