"""Generalisation sets no polySim run could make: an independent generator's grain maps and NIST's steel.

Registered in benchmarks/generalisation.py beside its seven sets; each maker is
(source, config, rng) -> Pair-like (micro, label, grains), and every draw comes from the image's
own generator, so an image is a pure function of (seed, set, k). Never train or choose settings
on these sets (issue 19).

- `msp-lognormal`: MicroStructPy (a PyPI package, not polySim) positions circular seeds whose
  diameters are lognormal (median 30 px at 512 px, sigma 1.0: 5-95 % of seeds span 6-155 px) and
  cuts the square into their Laguerre cells (about 70 grains of 15-250 px per image); boundaries
  1-6 px wide (one width per image), fragmented with the library's blurred squares and Otsu.
- `msp-elongated`: the same with ellipses (median diameter 36 px, sigma 0.5), aspect ratio 2-4,
  aligned within about 8 degrees of one random direction per image.
- `msp-cuts`: the `msp-lognormal` maps with `sharp-cuts`' hard-edged gaps instead of blur.
- `nist-steel`: NIST's reference boundary map of an etched steel (white boundaries inverted to dark;
  closed grains, 3-6 px lines), a random crop of the store's image size (the whole 800 x 600 map when
  the store's images are larger), fragmented with the library's blurred squares and Otsu.
- `nist-optical`: NIST's raw optical micrograph of the same steel after `predict --denoise median
  --binarize adaptive`'s preparation (model.inference.prepare), scored against the reference map:
  one image, 800 x 600 padded by edge replication to 800 x 608 so the network's poolings divide it.

NIST images: /work/shared/real/nist-gsat (README.md there; credit: National Institute of Standards
and Technology, usnistgov/grain-size-analysis-tools). MicroStructPy declares numpy<2 and is not in
requirements.txt: benchmarks/requirements.txt says how to install it in a venv of its own. Its grain
maps are cached as .npz under generated_data/independent-grains/ (gitignored), keyed by the drawn
generator seeds, so a later run (or one without MicroStructPy) reuses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from pipeline.config import GenerationConfig
from pipeline.gaps import blurred_fragments
from pipeline.sample import BACKGROUND, BOUNDARY

ROOT = Path(__file__).resolve().parents[1]
# shared/ lies beside the checkout (../shared); a checkout that holds one of its own uses that.
NIST_DIR = next((d for d in (ROOT / "shared" / "real" / "nist-gsat", ROOT.parent / "shared" / "real" / "nist-gsat")
                 if d.is_dir()), ROOT.parent / "shared" / "real" / "nist-gsat")
CACHE_DIR = ROOT / "generated_data" / "independent-grains"
# Set name -> random stream (after generalisation.py's 0-6); part of the benchmark's definition.
STREAMS = {"msp-lognormal": 7, "msp-elongated": 8, "msp-cuts": 9, "nist-steel": 10, "nist-optical": 11}
MSP_SETS = ("msp-lognormal", "msp-elongated", "msp-cuts")
CAPS = {"nist-optical": 1}  # images per set at most: the raw micrograph is one image
LINE_WIDTHS = (1, 6)  # boundary width in px, inclusive, one per image
LOGNORMAL_MEDIAN, LOGNORMAL_SIGMA = 30.0, 1.0  # seed diameter at 512 px
ELONGATED_MEDIAN, ELONGATED_SIGMA, ASPECT, ALIGNMENT = 36.0, 0.5, (2.0, 4.0), 8.0  # ALIGNMENT: degrees (sd)
OPTICAL_MULTIPLE = 32  # the optical image is padded to multiples of this (the network's poolings)
MSP_VERSION = "microstructpy-1.6.1-v2"  # part of the cache key: a change of maps changes the key


class MissingGeneratorError(RuntimeError):
    """MicroStructPy is not installed and the grain map is not cached. One line."""


@dataclass(frozen=True)
class Image:
    """One benchmark image: fragmented input, true boundaries, and the grain map they come from."""

    micro: np.ndarray
    label: np.ndarray
    grains: np.ndarray


def msp_available() -> bool:
    """Whether MicroStructPy can be imported here."""
    try:
        import microstructpy  # noqa: F401
    except ImportError:
        return False
    return True


def available(name: str) -> bool:
    """Whether set `name` can be made here (MicroStructPy sets need the package; NIST sets the images)."""
    if name in MSP_SETS:
        return msp_available()
    if name.startswith("nist-"):
        return NIST_DIR.is_dir()
    return True


# --- boundaries --------------------------------------------------------------------------
def lines(grains: np.ndarray, width: int) -> np.ndarray:
    """Boundary image (0 boundary, 255 background) of a grain map, lines `width` px wide.

    A 1-px line marks each pixel whose right or lower neighbour is another grain; wider lines
    are that line dilated by a width x width square (even widths lean right and down).
    """
    edge = np.zeros(grains.shape, bool)
    edge[:, :-1] |= grains[:, :-1] != grains[:, 1:]
    edge[:-1, :] |= grains[:-1, :] != grains[1:, :]
    image = np.where(edge, BOUNDARY, BACKGROUND).astype(np.uint8)
    return widen(image, width)


def widen(image: np.ndarray, width: int) -> np.ndarray:
    """Dilate the dark pixels of a 0/255 image with a width x width square; 1 leaves it."""
    if width == 1:
        return image
    return cv2.erode(image, np.ones((width, width), np.uint8), borderType=cv2.BORDER_REPLICATE)


def blurred_gaps(thin: np.ndarray, width: int, config: GenerationConfig, rng: np.random.Generator) -> np.ndarray:
    """The library's gaps: blurred squares on the thin lines, Otsu, then widened to `width`."""
    return widen(blurred_fragments(thin, rng, config)[0], width)


# --- MicroStructPy grain maps ------------------------------------------------------------
def _msp_phase(kind: str, scale: float, angle: float) -> dict[str, Any]:
    import scipy.stats

    if kind == "lognormal":
        return {"shape": "circle", "size": scipy.stats.lognorm(s=LOGNORMAL_SIGMA, scale=LOGNORMAL_MEDIAN * scale)}
    return {"shape": "ellipse", "size": scipy.stats.lognorm(s=ELONGATED_SIGMA, scale=ELONGATED_MEDIAN * scale),
            "aspect_ratio": scipy.stats.uniform(ASPECT[0], ASPECT[1] - ASPECT[0]),
            "angle_deg": scipy.stats.norm(angle, ALIGNMENT)}


def msp_tessellation(kind: str, size: int, seeds: tuple[int, ...], angle: float) -> np.ndarray:
    """A MicroStructPy grain map (uint16 ids from 1) of a size x size square: seeds, positions, Laguerre cells.

    MicroStructPy seeds numpy's global generator with the given seeds; its state is saved and
    restored around the call, so nothing else sees it. Its log of rejected seeds goes to a
    scratch folder, not the working directory.
    """
    try:
        import microstructpy as msp
    except ImportError as error:
        raise MissingGeneratorError(
            f"the independent-generator sets need MicroStructPy ({error}); see benchmarks/requirements.txt") from None
    state = np.random.get_state()
    try:
        domain = msp.geometry.Square(side_length=size, corner=(0, 0))
        phase = _msp_phase(kind, size / 512, angle)
        keys = ("size",) if kind == "lognormal" else ("size", "aspect_ratio", "angle_deg")
        seed_list = msp.seeding.SeedList.from_info(phase, domain.area,
                                                   rng_seeds={k: s for k, s in zip(keys, seeds[1:])})
        # rtol 1: seeds may overlap up to their radius; the tessellation resolves it, and
        # positioning takes seconds instead of minutes.
        with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
            # MicroStructPy logs the seeds it could not place to ./seed_position_reject.log.
            seed_list.position(domain, rng_seed=seeds[0], rtol=1.0)
        mesh = msp.meshing.PolyMesh.from_seeds(seed_list, domain)
    finally:
        np.random.set_state(state)
    return rasterise(mesh, size)


def rasterise(mesh: Any, size: int) -> np.ndarray:
    """Fill every Laguerre cell of a MicroStructPy PolyMesh with its seed's id + 1 (cells of one seed merge)."""
    grains = np.zeros((size, size), np.uint16)
    points = np.asarray(mesh.points, float)
    for region, seed in zip(mesh.regions, mesh.seed_numbers):
        facets = [list(mesh.facets[f]) for f in region]
        loop, rest = facets[0], facets[1:]
        while rest:  # chain the cell's edges into one polygon
            for i, (a, b) in enumerate(rest):
                if loop[-1] in (a, b):
                    loop.append(b if a == loop[-1] else a)
                    rest.pop(i)
                    break
            else:
                break
        polygon = np.rint(points[loop] - 0.5).astype(np.int32)
        cv2.fillPoly(grains, [polygon], int(seed) + 1)
    return grains


def msp_grains(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """The grain map drawn by `rng` (always the same draws), from the cache when made before."""
    seeds = tuple(int(s) for s in rng.integers(0, 2**31 - 1, size=4))
    angle = float(rng.uniform(0, 180))
    key = hashlib.sha256(repr((MSP_VERSION, kind, size, seeds, round(angle, 9))).encode()).hexdigest()
    path = CACHE_DIR / f"{kind}-{size}-{key[:16]}.npz"
    if path.exists():
        with np.load(path) as stored:
            return stored["grains"]
    grains = msp_tessellation(kind, size, seeds[:1 + (1 if kind == "lognormal" else 3)], angle)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.npz")
    np.savez_compressed(partial, grains=grains)
    partial.replace(path)  # a half-written file is never taken for a map
    return grains


def make_msp(kind: str, gaps: str, sharp_cuts: Callable[..., Any] | None = None,
             source_type: Callable[..., Any] | None = None) -> Callable[[Any, GenerationConfig, np.random.Generator], Image]:
    """A set maker: a MicroStructPy map of `kind`, lines 1-6 px, `gaps` 'blur' or 'cuts' (generalisation's sharp cuts)."""

    def make(source: Any, config: GenerationConfig, rng: np.random.Generator) -> Image:
        grains = msp_grains(kind, config.size, rng)
        width = int(rng.integers(LINE_WIDTHS[0], LINE_WIDTHS[1], endpoint=True))
        label = lines(grains, width)
        if gaps == "blur":
            return Image(blurred_gaps(lines(grains, 1), width, config, rng), label, grains)
        # Sharp cuts read (label, grains, dilation) off a Source; their slits are 2 * dilation + 6 wide.
        cut = sharp_cuts(source_type(label, label, grains, width), config, rng)
        return Image(cut.micro, label, grains)

    make.__doc__ = f"MicroStructPy {kind} grains, 1-6 px lines, {gaps} gaps."
    return make


# --- NIST's steel ------------------------------------------------------------------------
def read_gray(name: str) -> np.ndarray:
    """One of NIST's images as 8-bit gray; MissingGeneratorError when the folder is not there."""
    path = NIST_DIR / name
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise MissingGeneratorError(f"cannot read {path} (NIST's images, see its README.md)")
    return image


def nist_reference() -> tuple[np.ndarray, np.ndarray]:
    """NIST's steel boundary map as (label 0 boundary / 255 grain, 4-connected grain ids)."""
    label = np.where(read_gray("steel_reference_boundaries.tif") > 127, BOUNDARY, BACKGROUND).astype(np.uint8)
    _, grains = cv2.connectedComponents((label == BACKGROUND).astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    return label, grains.astype(np.uint16)


def make_nist_steel(source: Any, config: GenerationConfig, rng: np.random.Generator) -> Image:
    """A random crop of NIST's reference map, fragmented with the library's blurred squares and Otsu."""
    label, grains = nist_reference()
    side_y, side_x = min(config.size, label.shape[0]), min(config.size, label.shape[1])
    top = int(rng.integers(0, label.shape[0] - side_y, endpoint=True))
    left = int(rng.integers(0, label.shape[1] - side_x, endpoint=True))
    window = np.s_[top:top + side_y, left:left + side_x]
    label, grains = label[window].copy(), grains[window].copy()
    return Image(blurred_gaps(label, 1, config, rng), label, grains)


def pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    """`image` extended at its bottom and right edges by replication to multiples of `multiple`."""
    bottom, right = (-image.shape[0]) % multiple, (-image.shape[1]) % multiple
    return cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REPLICATE)


def make_nist_optical(source: Any, config: GenerationConfig, rng: np.random.Generator) -> Image:
    """NIST's raw micrograph through a 3x3 median and the adaptive threshold at offset 0.08 (predict's
    `--denoise median --binarize adaptive` as it was when this set was made; fixed here, so the set
    stays the same when predict's own strengths change), against the reference."""
    from model.inference.prepare import Strength, prepare  # numpy and OpenCV only, no TensorFlow

    gray = read_gray("steel_optical.tif").astype(np.float32) / np.float32(255.0)
    binary = prepare(gray, denoise="median", binarize="adaptive", strength=Strength(12.0, 0.08))
    micro = np.where(binary > 0.5, BACKGROUND, BOUNDARY).astype(np.uint8)
    label, grains = nist_reference()
    if micro.shape != label.shape:
        raise MissingGeneratorError(f"NIST's micrograph is {micro.shape}, its reference map {label.shape}")
    # Edge replication continues boundaries that meet the edge: it joins no two grains.
    return Image(*(pad_to(a, OPTICAL_MULTIPLE) for a in (micro, label, grains)))


def makers(source_type: Callable[..., Any], sharp_cuts: Callable[..., Any]) -> dict[str, Callable[..., Image]]:
    """Set name -> maker, given generalisation's Source type and sharp-cuts maker (reused for `msp-cuts`)."""
    return {
        "msp-lognormal": make_msp("lognormal", "blur"),
        "msp-elongated": make_msp("elongated", "blur"),
        "msp-cuts": make_msp("lognormal", "cuts", sharp_cuts, source_type),
        "nist-steel": make_nist_steel,
        "nist-optical": make_nist_optical,
    }

