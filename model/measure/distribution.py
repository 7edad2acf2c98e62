"""Grain-size distribution by ASTM G class: the E1181 duplex check and the largest grain (E930, ALA).

Each grain not cut by the field's edge (a cut grain's size is unknown; all grains when every one
is cut) gets the G of its own area A: G_i = 3.321928 log10(1 / A_mm²) - 2.954, E112's planimetric
relation for a field of such grains. Classes are 1 G wide, centred on whole numbers. Criteria
(docs/measure.md, "Duplex grain size and the largest grain"):
- coarse outliers: grains at least OUTLIER_G numbers coarser than the field's G (ASTM E930,
  Significance and Use: outlier coarse grains are 3 or more G numbers coarser than the rest);
- `ala`: there are coarse outliers and they hold at most OUTLIER_SHARE of the area (E930's scope:
  5 % or less of the specimen area): report the largest grain, ASTM E930's ALA;
- `bimodal`: the area-weighted G histogram has two peaks OUTLIER_G or more classes apart, each
  class holding at least OUTLIER_SHARE of the area, with a class between them below half of the
  smaller peak (E1181 section 5.2: bimodal, two distinct grain sizes randomly intermingled);
- `wide`: coarse outliers hold more than OUTLIER_SHARE of the area and no second peak stands
  out (E1181's wide range of grain sizes);
- `no` otherwise.
Differences of G need no scale: without one the classes are those of 1 µm pixels, and the
largest grain's size in µm and its G are left empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.scoring.metrics import ASTM_OFFSET, ASTM_SLOPE

OUTLIER_G = 3.0  # E930: outlier coarse grains are 3 or more G numbers coarser than the rest
OUTLIER_SHARE = 0.05  # E930: ... and hold 5 % or less of the area; here also the least share of a second peak
VALLEY = 0.5  # a bimodal histogram dips below half of its smaller peak between the two


@dataclass(frozen=True)
class SizeDistribution:
    """Area shares by G class, the duplex verdict and the largest grain."""

    classes: np.ndarray  # (k,) whole G numbers (1 µm pixels without a scale)
    area_share: np.ndarray  # (k,) share of the measured area in each class
    number_share: np.ndarray  # (k,) share of the grains in each class
    duplex: str  # "no", "ala", "bimodal" or "wide"
    coarse_share: float  # share of the area in grains OUTLIER_G or more coarser than the field
    largest_area_um2: float  # NaN without a scale or a grain
    largest_feret_um: float
    ala_g: float  # G of the largest grain's area (NaN without a scale)

    def summary(self) -> dict[str, float | str]:
        """The summary.csv cells of the distribution."""
        return {"largest_grain_um2": self.largest_area_um2, "largest_feret_um": self.largest_feret_um,
                "ala_g": self.ala_g, "coarse_share_pct": 100 * self.coarse_share, "duplex": self.duplex}


def grain_g(area_px: np.ndarray, pixel_size_um: float) -> np.ndarray:
    """G of each grain's own area (E112's planimetric relation, N_A = 1 / A); 1 µm pixels when no scale."""
    pixel = pixel_size_um if pixel_size_um > 0 else 1.0
    area_mm2 = np.asarray(area_px, np.float64) * (pixel * 1e-3) ** 2
    return ASTM_SLOPE * np.log10(1.0 / area_mm2) - ASTM_OFFSET


def bimodal(area_share: np.ndarray) -> bool:
    """Two classes OUTLIER_G or more apart, each holding OUTLIER_SHARE, with one between below VALLEY of the smaller."""
    big = np.flatnonzero(area_share >= OUTLIER_SHARE)
    for i in big.tolist():
        for j in big[big >= i + OUTLIER_G].tolist():
            if area_share[i + 1:j].min() < VALLEY * min(area_share[i], area_share[j]):
                return True
    return False


def size_distribution(area_px: np.ndarray, cut: np.ndarray, feret_px: np.ndarray, pixel_size_um: float,
                      grains_weighted: float, field_px: float) -> SizeDistribution:
    """The distribution of the grains not cut by the field's edge (all when every one is cut); the field's G
    is that of its Jeffries count `grains_weighted` over `field_px` pixels."""
    whole = ~np.asarray(cut, bool)
    if not whole.any():
        whole = np.ones(len(area_px), bool)
    area = np.asarray(area_px, np.float64)[whole]
    if area.size == 0:
        return SizeDistribution(np.zeros(0), np.zeros(0), np.zeros(0), "no", 0.0, math.nan, math.nan, math.nan)
    scaled = pixel_size_um > 0
    g = grain_g(area, pixel_size_um)
    low, high = int(math.floor(g.min() + 0.5)), int(math.floor(g.max() + 0.5))
    classes = np.arange(low, high + 1)
    index = np.floor(g + 0.5).astype(np.int64) - low
    area_share = np.bincount(index, area, classes.size) / area.sum()
    number_share = np.bincount(index, minlength=classes.size) / area.size
    per_mm2 = grains_weighted / (field_px * ((pixel_size_um if scaled else 1.0) * 1e-3) ** 2)
    field_g = ASTM_SLOPE * math.log10(per_mm2) - ASTM_OFFSET if per_mm2 > 0 else float(np.median(g))
    coarse = g <= field_g - OUTLIER_G
    coarse_share = float(area[coarse].sum() / area.sum())
    if bimodal(area_share):
        verdict = "bimodal"
    elif coarse.any():
        verdict = "ala" if coarse_share <= OUTLIER_SHARE else "wide"
    else:
        verdict = "no"
    largest = int(np.argmax(area))
    feret = np.asarray(feret_px, np.float64)[whole][largest]
    return SizeDistribution(classes, area_share, number_share, verdict, coarse_share,
                            area[largest] * pixel_size_um**2 if scaled else math.nan,
                            feret * pixel_size_um if scaled else math.nan,
                            float(g[largest]) if scaled else math.nan)

