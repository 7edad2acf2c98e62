"""The pixel size written in an image file: TIFF resolution tags, ImageJ and OME-TIFF metadata.

`pixel_size_of(path)` gives micrometres per pixel, or None when the file states no usable scale.
Order: OME-XML `PhysicalSizeX` (with its unit, µm by default), then ImageJ's description
(`unit=micron` and the resolution tags as pixels per unit), then the plain TIFF resolution tags
(ResolutionUnit inch or cm). A resolution of a round screen or print value in dots per inch
(72, 96, 300 ...) is what image software writes when it knows no scale: it is ignored, as is
ResolutionUnit "none" without ImageJ's unit. Other formats give None. A scale outside
PLAUSIBLE_UM (10 pm to 1 cm per pixel), or different along x and y (OME PhysicalSizeY, or the
TIFF YResolution), is refused with ScaleError: `measure` names the image and measures the others.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

# Micrometres per one unit, for the unit names ImageJ and OME write.
UNIT_UM = {
    "m": 1e6, "cm": 1e4, "mm": 1e3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "\\u00b5m": 1.0, "nm": 1e-3, "nanometer": 1e-3, "pm": 1e-6,
    "inch": 25400.0, "in": 25400.0,
}
RESOLUTION_UNIT_UM = {2: 25400.0, 3: 1e4}  # TIFF ResolutionUnit: 1 none, 2 inch, 3 centimetre
DEFAULT_DPI = {72.0, 96.0, 150.0, 180.0, 200.0, 240.0, 300.0, 600.0, 1200.0}
TAG_DESCRIPTION, TAG_X_RESOLUTION, TAG_Y_RESOLUTION, TAG_RESOLUTION_UNIT = 270, 282, 283, 296
PLAUSIBLE_UM = (1e-5, 1e4)  # µm per pixel: from atomic-resolution TEM to a macro photograph
SQUARE = 1e-3  # relative difference of x and y pixel sizes still taken as square pixels


class ScaleError(ValueError):
    """A scale written in a file that cannot be used as it is (implausible, or pixels that are not square)."""


def plausible(um_per_px: float) -> bool:
    """True for a pixel size within PLAUSIBLE_UM."""
    return PLAUSIBLE_UM[0] <= um_per_px <= PLAUSIBLE_UM[1]


def check_plausible(um_per_px: float, where: str) -> None:
    """ScaleError naming `where` (e.g. "its TIFF tags") unless the pixel size is plausible."""
    if not plausible(um_per_px):
        raise ScaleError(f"{where} give {um_per_px:g} um per pixel, outside {PLAUSIBLE_UM[0]:g} to "
                         f"{PLAUSIBLE_UM[1]:g}: give the scale with --pixel-size UM")


def check_square(x_um: float, y_um: float, where: str) -> None:
    """ScaleError when the x and y pixel sizes differ (measure needs square pixels)."""
    if math.isfinite(y_um) and y_um > 0 and abs(x_um - y_um) > SQUARE * max(x_um, y_um):
        raise ScaleError(f"{where} give pixels of {x_um:g} um (x) by {y_um:g} um (y): measure needs square pixels; "
                         f"resample the image to square pixels first")


@dataclass(frozen=True)
class Scale:
    """A pixel size and where it was read."""

    um_per_px: float
    source: str  # "ome", "imagej" or "tiff"


def unit_um(unit: str) -> float | None:
    """Micrometres in one `unit` (ImageJ / OME spelling, case-insensitive); None if unknown."""
    return UNIT_UM.get(unit.strip().lower())


def _ome_size(text: str, axis: str) -> float:
    """OME's PhysicalSize{axis} in µm (its unit, µm by default), NaN when absent or in an unknown unit."""
    size = re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', text)
    unit = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', text)
    factor = unit_um(unit.group(1)) if unit else 1.0  # OME's default unit is µm
    try:
        return float(size.group(1)) * factor if size and factor is not None else math.nan
    except (ValueError, OverflowError):
        return math.nan


def scale_from_tags(description: str | None, x_resolution: float | None, resolution_unit: int | None,
                    y_resolution: float | None = None) -> Scale | None:
    """The scale stated by a TIFF's ImageDescription, X/YResolution (pixels per unit) and ResolutionUnit;
    ScaleError for an implausible one or pixels that are not square."""
    text = description or ""
    if "<OME" in text:
        x_um = _ome_size(text, "X")
        if math.isfinite(x_um):
            return _valid(x_um, "ome", _ome_size(text, "Y"), "its OME metadata")
    ppu = float(x_resolution) if x_resolution else math.nan  # pixels per unit
    y_ppu = float(y_resolution) if y_resolution else math.nan
    if text.startswith("ImageJ="):
        unit = re.search(r"^unit=(.+)$", text, re.MULTILINE)
        factor = unit_um(unit.group(1)) if unit else None
        if factor is not None and ppu > 0:
            return _valid(factor / ppu, "imagej", factor / y_ppu, "its ImageJ tags")
    factor = RESOLUTION_UNIT_UM.get(int(resolution_unit or 2))  # TIFF's default unit is the inch
    if factor is None or not ppu > 0:
        return None
    dpi = ppu * 25400.0 / factor
    if any(abs(dpi - d) < 1e-6 for d in DEFAULT_DPI):
        return None  # a software default, not a measured scale
    return _valid(factor / ppu, "tiff", factor / y_ppu, "its TIFF resolution tags")


def _valid(um: float, source: str, y_um: float, where: str) -> Scale | None:
    if not (math.isfinite(um) and um > 0):
        return None
    check_plausible(um, where)
    check_square(um, y_um, where)
    return Scale(um, source)


def scale_of(path: str | os.PathLike[str]) -> Scale | None:
    """The scale written in an image file (TIFF tags, ImageJ, OME), or None: no tags, another format, unreadable;
    ScaleError for one that cannot be used (see the module)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "TIFF":
                return None
            tags = dict(image.tag_v2)
    except (OSError, UnidentifiedImageError, ValueError, ZeroDivisionError):
        return None
    try:
        return scale_from_tags(tags.get(TAG_DESCRIPTION), tags.get(TAG_X_RESOLUTION), tags.get(TAG_RESOLUTION_UNIT),
                               tags.get(TAG_Y_RESOLUTION))
    except ScaleError:
        raise
    except (ValueError, TypeError, ZeroDivisionError):
        return None


def pixel_size_of(path: str | os.PathLike[str]) -> float | None:
    """Micrometres per pixel written in an image file, or None (see `scale_of`; a scale it refuses is None too)."""
    try:
        scale = scale_of(path)
    except ScaleError:
        return None
    return scale.um_per_px if scale else None
