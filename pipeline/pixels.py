"""The largest image any command decodes from a user's file, and a PNG's size from its header alone.

A small PNG can declare 32000 x 32000 px: decoding it takes gigabytes and seconds before any
check on the pixels could refuse it, so every reader compares the header's size with the limit
first (model/inference/images.py for all formats through Pillow; PNG imports here, no Pillow).
"""

from __future__ import annotations

import math
import os
import struct

# Largest image decoded: 100 megapixels (10000 x 10000; about 0.4 GB as float32, several times that
# while restoring). OpenCV's own limit is 2^30 pixels.
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "RECONSTRUCTION_GB_MAX_PIXELS"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_BYTES = 24  # signature, IHDR length and type, width, height
RAISE_LIMIT = f"set {MAX_PIXELS_ENV} to allow more"


class PixelLimitError(ValueError):
    """MAX_PIXELS_ENV is set to something that is no pixel count; one line."""


def max_pixels() -> int:
    """The pixel limit in force: MAX_PIXELS_ENV if set (a positive integer), else DEFAULT_MAX_PIXELS."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise PixelLimitError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, got {raw!r}")
    return value


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first PNG_HEADER_BYTES of a file; None if they are not a PNG header."""
    if len(head) < PNG_HEADER_BYTES or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def above_limit(width: float, height: float, limit: int) -> str | None:
    """`W x H px (N megapixels), above the limit of L megapixels` if width x height is over
    `limit` (RAISE_LIMIT says how to allow more), else None."""
    pixels = width * height
    if pixels <= limit:
        return None
    if math.isfinite(pixels) and pixels < 1e18:
        amount = f"{pixels / 1e6:,.0f} megapixels" if pixels >= 1e6 else f"{pixels:,.0f} pixels"
        size = f"{width:.0f} x {height:.0f} px ({amount})"
    else:  # --scale 1e300: more digits than anyone reads
        size = f"{width:.3g} x {height:.3g} px (beyond 10^18 pixels)"
    return f"{size}, above the limit of {limit / 1e6:g} megapixels"
