"""The pixel size written in an image file: TIFF resolution tags, ImageJ and OME-TIFF metadata.

`pixel_size_of(path)` gives micrometres per pixel, or None when the file states no usable scale.
Order: OME-XML `PhysicalSizeX` (with its unit, µm by default), then ImageJ's description
(`unit=micron` and the resolution tags as pixels per unit), then the plain TIFF resolution tags
(ResolutionUnit inch or cm). A resolution of a round screen or print value in dots per inch
(72, 96, 300 ...) is what image software writes when it knows no scale: it is ignored, as is
ResolutionUnit "none" without ImageJ's unit. Other formats give None.
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
ANISOTROPY = 1e-3  # relative difference of OME's X and Y pixel sizes taken as square pixels


class AnisotropicPixels(ValueError):
    """OME metadata giving pixels of another height than width: one size cannot measure them."""
DEFAULT_DPI = {72.0, 96.0, 150.0, 180.0, 200.0, 240.0, 300.0, 600.0, 1200.0}
TAG_DESCRIPTION, TAG_X_RESOLUTION, TAG_RESOLUTION_UNIT = 270, 282, 296


@dataclass(frozen=True)
class Scale:
    """A pixel size and where it was read."""

    um_per_px: float
    source: str  # "ome", "imagej" or "tiff"


def unit_um(unit: str) -> float | None:
    """Micrometres in one `unit` (ImageJ / OME spelling, case-insensitive); None if unknown."""
    return UNIT_UM.get(unit.strip().lower())


def scale_from_tags(description: str | None, x_resolution: float | None, resolution_unit: int | None) -> Scale | None:
    """The scale stated by a TIFF's ImageDescription, XResolution (pixels per unit) and ResolutionUnit."""
    text = description or ""
    if "<OME" in text:
        size = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', text)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', text)
        factor = unit_um(unit.group(1)) if unit else 1.0  # OME's default unit is µm
        if size and factor is not None:
            _check_square(text, float(size.group(1)) * factor)
            return _valid(float(size.group(1)) * factor, "ome")
    ppu = float(x_resolution) if x_resolution else math.nan  # pixels per unit
    if text.startswith("ImageJ="):
        unit = re.search(r"^unit=(.+)$", text, re.MULTILINE)
        factor = unit_um(unit.group(1)) if unit else None
        if factor is not None and ppu > 0:
            return _valid(factor / ppu, "imagej")
    factor = RESOLUTION_UNIT_UM.get(int(resolution_unit or 2))  # TIFF's default unit is the inch
    if factor is None or not ppu > 0:
        return None
    dpi = ppu * 25400.0 / factor
    if any(abs(dpi - d) < 1e-6 for d in DEFAULT_DPI):
        return None  # a software default, not a measured scale
    return _valid(factor / ppu, "tiff")


def _check_square(ome: str, x_um: float) -> None:
    """AnisotropicPixels if the OME metadata `ome` gives a PhysicalSizeY other than `x_um` (µm)."""
    size = re.search(r'PhysicalSizeY="([0-9.eE+-]+)"', ome)
    unit = re.search(r'PhysicalSizeYUnit="([^"]+)"', ome)
    factor = unit_um(unit.group(1)) if unit else 1.0
    if size and factor is not None:
        y_um = float(size.group(1)) * factor
        if math.isfinite(y_um) and y_um > 0 and abs(y_um - x_um) > ANISOTROPY * max(x_um, y_um):
            raise AnisotropicPixels(f"its OME metadata gives pixels of {x_um:g} x {y_um:g} µm (not square): "
                                    "resample it to square pixels, or give --pixel-size UM")


def _valid(um: float, source: str) -> Scale | None:
    return Scale(um, source) if math.isfinite(um) and um > 0 else None


def scale_of(path: str | os.PathLike[str]) -> Scale | None:
    """The scale written in an image file (TIFF tags, ImageJ, OME), or None: no tags, another format, unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "TIFF":
                return None
            tags = image.tag_v2
            return scale_from_tags(tags.get(TAG_DESCRIPTION), tags.get(TAG_X_RESOLUTION),
                                   tags.get(TAG_RESOLUTION_UNIT))
    except AnisotropicPixels:
        raise  # the image's own failure, named; not "no scale"
    except (OSError, UnidentifiedImageError, ValueError, ZeroDivisionError):
        return None


def pixel_size_of(path: str | os.PathLike[str]) -> float | None:
    """Micrometres per pixel written in an image file, or None (see `scale_of`)."""
    scale = scale_of(path)
    return scale.um_per_px if scale else None
