"""Users' micrographs in, model-ready float32 gray images out (OpenCV only, no TensorFlow).

The model was trained on micro / 255: float32 in [0, 1], boundary dark (0), background bright (1).
`read_image` scales 8-bit samples by 1/255 and 16-bit ones by 1/65535 (the full range of the
type, not the image's own min/max), turns colour into gray with OpenCV's weights
(0.299 R + 0.587 G + 0.114 B; alpha ignored), and accepts float TIFFs whose values already lie
in [0, 1]. `otsu_binarize` turns a gray micrograph into the binary form the model saw.

`input_kind` tells a binary boundary map (what the model was trained on) from a gray, 16-bit or
colour micrograph (which model/inference/prepare.py denoises and binarises first). `decode`
refuses an image of more than `max_pixels()` pixels (default DEFAULT_MAX_PIXELS, overridable with
the environment variable MAX_PIXELS_ENV) from its header, before decoding: a small PNG can
declare 30000 x 30000 px and take minutes and gigabytes to decode.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

# The limit is the pipeline's, shared with `import` (pipeline/pixels.py), and re-exported here.
from pipeline.pixels import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, RAISE_LIMIT, PixelLimitError, above_limit  # noqa: F401
from pipeline.pixels import max_pixels as _max_pixels

# Suffixes taken from directories (case-insensitive); a file named explicitly must have one too.
SUPPORTED_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib")
SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# Input kinds (`input_kind`): only a binary map goes to the model as it is.
KINDS = ("binary", "gray", "16-bit", "colour")
# A binary map: this share of its pixels lies within BINARY_TOLERANCE (of its range) of its darkest
# or brightest level (not exactly two levels: JPEG and resampling blur the edges a little).
BINARY_SHARE = 0.98
BINARY_TOLERANCE = 0.1


class InputError(ValueError):
    """An input path that cannot be used at all (missing, unsupported, empty directory); one line."""


class ImageError(ValueError):
    """One image file that cannot be read or used; the message (one line) says why."""


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log lines while decoding (our error message names the file instead)."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def is_supported(path: Path) -> bool:
    """Whether the name ends in one of SUPPORTED_SUFFIXES (any case)."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def collect_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Image files named in `paths`, in order; a directory contributes its images sorted by name.

    Directories are not walked recursively: only files directly inside, with a supported suffix,
    not hidden (a name starting with "." is skipped, e.g. macOS "._x.png" resource forks).
    A file reached twice (named, and inside a named directory) is kept once, at its first place.
    Raises InputError for a missing path, a named file with an unsupported suffix, a directory
    holding no image, or no path at all.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = sorted((p for p in path.iterdir()
                             if p.is_file() and is_supported(p) and not p.name.startswith(".")), key=lambda p: p.name)
            if not images:
                raise InputError(f"no images ({', '.join(SUPPORTED_SUFFIXES)}) in directory {path}")
            found.extend(images)
        elif path.is_file():
            if not is_supported(path):
                raise InputError(f"{path} is not a supported image type ({', '.join(SUPPORTED_SUFFIXES)})")
            found.append(path)
        elif path.exists():
            raise InputError(f"{path} is neither a file nor a directory")
        else:
            raise InputError(f"input not found: {path}")
    if not found:
        raise InputError("no input given")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def max_pixels() -> int:
    """The pixel limit in force: MAX_PIXELS_ENV if set (a positive integer), else DEFAULT_MAX_PIXELS."""
    try:
        return _max_pixels()
    except PixelLimitError as exc:
        raise InputError(str(exc)) from None


def header_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) as the file's header declares them, without decoding; None if Pillow cannot tell."""
    from PIL import Image  # Pillow comes with matplotlib; it reads headers lazily

    # Pillow's own bomb check (a warning, then an error above twice its limit) would hide the size:
    # the limit applied is ours, so its check is off while the header is read.
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        # A broken file is reported by name where it is decoded: Pillow's warnings about it (a truncated
        # TIFF: "UserWarning: Corrupt EXIF data", with its source line) are not the user's to read.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return int(image.size[0]), int(image.size[1])
    except Exception:  # noqa: BLE001 - unknown to Pillow: OpenCV decides (with its own 2^30 px limit)
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_pixels(path: str | os.PathLike[str], limit: int | None = None) -> None:
    """ImageError if the header declares more than `limit` (default `max_pixels()`) pixels."""
    limit = max_pixels() if limit is None else limit
    size = header_size(path)
    refused = above_limit(*size, limit) if size is not None else None
    if refused:
        raise ImageError(f"declares {refused} ({RAISE_LIMIT}); not decoded")


def decode(path: str | os.PathLike[str], limit: int | None = None) -> np.ndarray:
    """The file's samples as stored (uint8/uint16/float, 1-4 channels); ImageError if unreadable or
    larger than `limit` pixels (default `max_pixels()`; checked on the header, before decoding)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError("file not found")
    try:
        check_pixels(path, limit)
    except InputError as exc:
        raise ImageError(str(exc)) from None
    try:
        with _quiet_opencv():
            data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageError(f"cannot be decoded: {str(exc).strip().splitlines()[-1]}") from None
    if data is None or data.size == 0:
        raise ImageError("cannot be decoded as an image (corrupt file or unsupported format)")
    return data


def to_unit_gray(data: np.ndarray) -> np.ndarray:
    """Decoded samples -> float32 (H, W) in [0, 1]: 8-bit / 255, 16-bit / 65535, float as is; colour -> gray."""
    if data.dtype in SCALE:
        image = data.astype(np.float32)
        image *= np.float32(1.0 / SCALE[data.dtype])
    elif data.dtype.kind == "f":
        image = data.astype(np.float32, copy=False)
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise ImageError("floating-point image with values outside [0, 1] (or NaN/inf)")
    else:
        raise ImageError(f"unsupported sample type {data.dtype} (8-bit, 16-bit or float in [0, 1] only)")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels in (1, 2):  # gray, gray + alpha
            image = image[:, :, 0]
        elif channels in (3, 4):  # OpenCV decodes colour as BGR(A)
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY)
        else:
            raise ImageError(f"unsupported number of channels: {channels}")
    elif image.ndim != 2:
        raise ImageError(f"unsupported image shape {data.shape}")
    return np.ascontiguousarray(image, dtype=np.float32)


def read_image(path: str | os.PathLike[str], limit: int | None = None) -> np.ndarray:
    """Read a PNG/TIFF/JPEG/BMP file as float32 (H, W) gray in [0, 1]; ImageError if it cannot be used.

    Multi-page TIFFs give their first page; JPEG EXIF orientation is ignored (pixels as stored).
    More than `limit` pixels (default `max_pixels()`) is refused before decoding.
    """
    return to_unit_gray(decode(path, limit))


def is_binary(image: np.ndarray) -> bool:
    """Whether a unit-gray image is a two-level boundary map (a constant image counts: nothing to prepare).

    BINARY_SHARE of its pixels lie within BINARY_TOLERANCE of its range from its darkest or
    brightest level. A gray micrograph has most pixels in between (grain levels, shading, noise).
    """
    lo, hi = float(image.min()), float(image.max())
    if not hi > lo:
        return True
    band = BINARY_TOLERANCE * (hi - lo)
    extreme = np.count_nonzero(image <= lo + band) + np.count_nonzero(image >= hi - band)
    return extreme >= BINARY_SHARE * image.size


def is_colour(data: np.ndarray) -> bool:
    """Whether decoded samples have colour channels that differ (an RGB file with R = G = B is gray)."""
    if data.ndim != 3 or data.shape[2] < 3:
        return False
    return not (np.array_equal(data[:, :, 0], data[:, :, 1]) and np.array_equal(data[:, :, 1], data[:, :, 2]))


def input_kind(data: np.ndarray, image: np.ndarray | None = None) -> str:
    """One of KINDS for decoded samples: `binary` (a boundary map, whatever its encoding), else
    `colour`, `16-bit` or `gray` (a micrograph). `image`: the samples' `to_unit_gray`, if already made."""
    image = to_unit_gray(data) if image is None else image
    if is_binary(image):
        return "binary"
    if is_colour(data):
        return "colour"
    return "16-bit" if data.dtype == np.uint16 else "gray"


def read_kind(path: str | os.PathLike[str], limit: int | None = None) -> tuple[np.ndarray, str]:
    """(`read_image`, `input_kind`) of one file; ImageError if it cannot be used."""
    data = decode(path, limit)
    image = to_unit_gray(data)
    return image, input_kind(data, image)


def otsu_threshold(image: np.ndarray, bins: int = 256) -> float | None:
    """Otsu's threshold of a float image over `bins` bins spanning its own [min, max].

    Pixels >= the threshold form the bright class. None for a constant image.
    The histogram spans the image's range, not [0, 1], so a 16-bit image using a narrow band of
    levels is still split finely.
    """
    lo, hi = float(image.min()), float(image.max())
    if not hi > lo:
        return None
    hist, edges = np.histogram(image, bins=bins, range=(lo, hi))
    hist = hist.astype(np.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)[:-1]  # pixels in bins 0..k, for a split after bin k
    above = hist.sum() - below
    below_sum = np.cumsum(hist * centers)[:-1]
    above_sum = (hist * centers).sum() - below_sum
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (below_sum / below - above_sum / above) ** 2
    between[(below == 0) | (above == 0)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def otsu_binarize(image: np.ndarray) -> np.ndarray:
    """Binary float32 image: 1 (background) where image >= Otsu's threshold, 0 (boundary) below.

    The threshold is global (one per image, never per tile). A constant image has no boundary
    and becomes all 1.
    """
    threshold = otsu_threshold(image)
    if threshold is None:
        return np.ones(image.shape, dtype=np.float32)
    return (image >= threshold).astype(np.float32)
