"""Gray micrographs to the binary form the model and `bridge` expect, and back to the input's size.

float32 gray in [0, 1] (boundary dark) -> optional denoising -> optional binarization (1 grain,
0 boundary) -> optional resampling by `scale`. OpenCV and numpy only; docs/predict.md.

`auto` (the default of --denoise and --binarize) settles per image (`settle`): a binary boundary
map is left as it is; a gray, 16-bit or colour micrograph gets AUTO_DENOISE and AUTO_BINARIZE,
chosen on rendered gray micrographs (benchmarks/gray_micrographs.py, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .images import otsu_binarize

AUTO = "auto"
BINARIZE = (AUTO, "none", "otsu", "adaptive")
DENOISE = (AUTO, "none", "median", "nlmeans")
# What `auto` does to a micrograph (not to a binary map): of the six (denoise, binarize) pairs
# tried on rendered gray micrographs (benchmarks/gray_micrographs.py --sweep, its own seed, never
# the benchmark's), non-local means + adaptive gave the lowest grain-count error for the bundled
# model (0.4 %; median + adaptive 12 %) and for bridge (1.5 %; 53 %): docs/benchmarks.md.
AUTO_DENOISE = "nlmeans"  # at the method's Strength (below)
AUTO_BINARIZE = "adaptive"
# Adaptive threshold: a pixel is boundary when darker than its Gaussian-weighted neighbourhood
# mean by more than an offset (of the full range); the window (sigma ADAPTIVE_SIGMA px) spans about
# one grain of the training data (mean diameter about 60 px at 512 px), so slow shading is followed
# while a boundary stays darker than its surroundings.
ADAPTIVE_SIGMA = 15.0
MEDIAN_KSIZE = 3


@dataclass(frozen=True)
class Strength:
    """How hard non-local means smooths (OpenCV's h, on the 0..255 scale) and how much darker than
    its neighbourhood a pixel must be to count as boundary (of the full range)."""

    nlmeans_h: float
    adaptive_offset: float


# The strengths depend on what reads the binary image. The network alone closes gaps and ignores
# specks, so it is given faint boundaries: lighter smoothing, a low offset. The classical bridge,
# alone or after the network, links loose ends, so it is given clearer ones. Chosen per method on
# rendered micrographs of seeds 7-10, never the benchmark's (benchmarks/gray_micrographs.py
# --sweep-strength; the lowest mean count error; docs/benchmarks.md):
# - model: h 9 / offset 0.04 (third version of the bundled model: 1.0 %, worst image 3.3 %; h 12 /
#   0.08, once every method's, lost 19 % on seed 8, whose faint 2 px lines it erased);
# - model+bridge: h 9 / offset 0.08 (fourth version: 1.5 %, worst 6.7 %; 0.04 gave 8.1 %, worst 28 %:
#   the bridge extends the faint specks the network leaves);
# - bridge, none: h 12 / offset 0.06 (2.7 %, worst 10 %; 0.04 links noise: 11 %, worst 42 %).
MODEL_STRENGTH = Strength(nlmeans_h=9.0, adaptive_offset=0.04)
MODEL_BRIDGE_STRENGTH = Strength(nlmeans_h=9.0, adaptive_offset=0.08)
CLASSICAL_STRENGTH = Strength(nlmeans_h=12.0, adaptive_offset=0.06)
STRENGTHS = {"model": MODEL_STRENGTH, "model+bridge": MODEL_BRIDGE_STRENGTH, "bridge": CLASSICAL_STRENGTH,
             "none": CLASSICAL_STRENGTH}


def strength_for(method: str) -> Strength:
    """The preparation strength for a method (model, model+bridge, bridge or none)."""
    return STRENGTHS[method]


class PrepareError(ValueError):
    """An option value that cannot be used. One line."""


def check_prepare(binarize: str, denoise: str, scale: float) -> None:
    """PrepareError for an unknown --binarize or --denoise, or a --scale that is not > 0."""
    if binarize not in BINARIZE:
        raise PrepareError(f"--binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    if denoise not in DENOISE:
        raise PrepareError(f"--denoise must be one of {', '.join(DENOISE)}, got {denoise!r}")
    if not scale > 0 or not np.isfinite(scale):
        raise PrepareError(f"--scale must be > 0, got {scale}")


def settle(binary: bool, denoise: str, binarize: str) -> tuple[str, str]:
    """(denoise, binarize) for one image: `auto` becomes `none` for a binary map, else AUTO_DENOISE /
    AUTO_BINARIZE; an explicit choice stays."""
    if denoise == AUTO:
        denoise = "none" if binary else AUTO_DENOISE
    if binarize == AUTO:
        binarize = "none" if binary else AUTO_BINARIZE
    return denoise, binarize


def denoise_image(image: np.ndarray, method: str, strength: Strength = CLASSICAL_STRENGTH) -> np.ndarray:
    """`median` (3x3) or `nlmeans` (OpenCV non-local means, h = strength.nlmeans_h on 0..255) of a
    float image in [0, 1]."""
    if method == "median":
        return cv2.medianBlur(image, MEDIAN_KSIZE)
    if method == "nlmeans":
        eight = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        smooth = cv2.fastNlMeansDenoising(eight, None, h=strength.nlmeans_h)
        return smooth.astype(np.float32) / np.float32(255.0)
    return image


def adaptive_binarize(image: np.ndarray, offset: float = CLASSICAL_STRENGTH.adaptive_offset) -> np.ndarray:
    """1 (grain) where the image is at least its local Gaussian mean minus `offset`, else 0 (boundary)."""
    local = cv2.GaussianBlur(image, (0, 0), ADAPTIVE_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    return (image >= local - np.float32(offset)).astype(np.float32)


def binarize_image(image: np.ndarray, method: str, strength: Strength = CLASSICAL_STRENGTH) -> np.ndarray:
    """Binarize a float gray image (`otsu`: one global threshold; `adaptive`: local); `none` leaves it."""
    if method == "otsu":
        return otsu_binarize(image)
    if method == "adaptive":
        return adaptive_binarize(image, strength.adaptive_offset)
    return image


def resample(image: np.ndarray, scale: float) -> np.ndarray:
    """The image resized by `scale` (area averaging when shrinking, bilinear when enlarging); at least 1 x 1."""
    if scale == 1:
        return image
    height, width = image.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def restore_size(background: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float background score (or 0/255 mask) resized bilinearly back to `shape` (height, width)."""
    if background.shape == tuple(shape):
        return background
    return cv2.resize(background.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def prepare(image: np.ndarray, *, invert: bool = False, denoise: str = "none", binarize: str = "none",
            scale: float = 1.0, strength: Strength = CLASSICAL_STRENGTH) -> np.ndarray:
    """A user's gray image (float32 in [0, 1]) -> what the restoration sees: inverted, denoised, resampled, binarized.

    Resampling comes before binarization, so the binary image has sharp edges at the working scale.
    """
    if invert:
        image = np.float32(1.0) - image
    image = denoise_image(image, denoise, strength)
    image = resample(image, scale)
    return binarize_image(image, binarize, strength)
