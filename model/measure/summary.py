"""summary.csv: one row per image and one per specimen, E112's field statistics within each specimen only.

A specimen's row: its fields' sums (grains, intercepts), its grains pooled (areas, diameters,
the size distribution), E112 section 15 over its fields that have a scale: G of the mean N_A
and of the mean intercept l, the 95 % confidence interval t(0.975, n - 1) s / sqrt(n) (as a G
half-width) and %RA = 100 CI / mean. Never across specimens. See docs/measure.md, "Specimens".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .distribution import SizeDistribution, size_distribution
from .fields import field_statistics
from .measurement import ImageMeasurement, intercept_g, planimetric_g

LEAD = ("level", "image", "specimen", "source", "fields")
BASE_COLUMNS = ("width_px", "height_px", "field_px", "pixel_size_um", "min_grain_px", "below_min_grain", "grains",
                "grains_inside", "grains_cut", "grains_weighted", "mean_area_um2", "median_area_um2",
                "mean_diameter_um", "astm_g_planimetric", "astm_g_planimetric_ci95", "planimetric_ra_pct",
                "astm_g_intercept", "astm_g_intercept_ci95", "intercept_ra_pct", "mean_intercept_um",
                "mean_intercept_um_ci95", "intercepts", "open_intercepts")
TAIL = ("anisotropy", "largest_grain_um2", "largest_feret_um", "ala_g", "coarse_share_pct", "duplex")
SUMMED = ("field_px", "below_min_grain", "grains", "grains_inside", "grains_cut", "grains_weighted", "intercepts",
          "open_intercepts", "twins")


@dataclass(frozen=True)
class ImageRecord:
    """One measured image and how it was read."""

    source: Path
    name: str
    measurement: ImageMeasurement
    scale_source: str  # "option", "tiff", "imagej", "ome" or "" (no scale)
    inverted: bool
    specimen: str = ""
    notes: tuple[str, ...] = ()  # what was left out of the field (data bar), said once


def summary_columns(pattern: str, angles: Sequence[float], twins: bool) -> list[str]:
    """The header of summary.csv: lead, base, a mean intercept per angle (or the circles), tail, twins."""
    labels = ["circles"] if pattern == "circles" else [f"{a:g}" for a in angles]
    return (list(LEAD) + list(BASE_COLUMNS) + [f"mean_intercept_um_{label}" for label in labels] + list(TAIL)
            + (["twins"] if twins else []))


def image_row(record: ImageRecord) -> dict[str, Any]:
    """The cells of one image's row."""
    return {"level": "image", "image": record.name, "specimen": record.specimen, "source": str(record.source),
            "fields": 1, **record.measurement.summary()}


def pooled_distribution(measurements: Sequence[ImageMeasurement]) -> SizeDistribution:
    """The size distribution of a specimen's grains pooled over its fields (in µm², or px when none has a scale)."""
    scaled = [m for m in measurements if m.pixel_size_um > 0]
    chosen = scaled or list(measurements)
    unit = [m.pixel_size_um if scaled else 1.0 for m in chosen]
    area = np.concatenate([m.table.area_px * u**2 for m, u in zip(chosen, unit)])
    cut = np.concatenate([m.table.touches_border for m in chosen])
    feret = np.concatenate([(m.shapes.feret_max_px if m.shapes is not None else m.table.diameter_px) * u
                            for m, u in zip(chosen, unit)])
    weighted = sum(m.grains_weighted for m in chosen)
    field = sum(m.field_area_px * u**2 for m, u in zip(chosen, unit))
    pooled = size_distribution(area, cut, feret, 1.0, weighted, field)
    return pooled if scaled else SizeDistribution(pooled.classes, pooled.area_share, pooled.number_share,
                                                  pooled.duplex, pooled.coarse_share, math.nan, math.nan, math.nan)


def specimen_row(name: str, records: Sequence[ImageRecord], columns: Sequence[str]) -> dict[str, Any]:
    """The cells of a specimen's row (see the module's docstring)."""
    measurements = [r.measurement for r in records]
    rows = [r.measurement.summary() for r in records]
    scaled = [m for m in measurements if m.pixel_size_um > 0]
    row: dict[str, Any] = {"level": "specimen", "image": "", "specimen": name, "fields": len(records),
                           "source": f"{len(scaled)} fields (E112 section 15)" if len(scaled) > 1 else
                           f"{len(records)} field{'s' if len(records) > 1 else ''}"}
    for column in SUMMED:
        if column in columns:
            row[column] = sum(r.get(column, 0) for r in rows)
    sizes = {m.pixel_size_um for m in measurements}
    row["pixel_size_um"] = sizes.pop() if len(sizes) == 1 else math.nan
    if scaled:
        area = np.concatenate([m.table.area_um2 for m in scaled])
        row["mean_area_um2"] = float(area.mean()) if area.size else math.nan
        row["median_area_um2"] = float(np.median(area)) if area.size else math.nan
        row["mean_diameter_um"] = float(np.concatenate([m.table.diameter_um for m in scaled]).mean()) if area.size \
            else math.nan
        row.update(field_cells(scaled))
        row.update(angle_cells(scaled))
    row.update(pooled_distribution(measurements).summary())
    return row


def field_cells(scaled: Sequence[ImageMeasurement]) -> dict[str, float]:
    """E112 section 15 over the fields: G of the mean N_A and of the mean l, their 95 % CI (in G) and %RA."""
    areal = field_statistics([m.grains_per_mm2 for m in scaled])
    lineal = field_statistics([m.mean_intercept_um for m in scaled])
    g_plan, g_plan_ci = areal.g_interval(planimetric_g)
    g_int, g_int_ci = lineal.g_interval(intercept_g)
    return {"astm_g_planimetric": g_plan, "astm_g_planimetric_ci95": g_plan_ci,
            "planimetric_ra_pct": areal.relative_accuracy_pct, "astm_g_intercept": g_int,
            "astm_g_intercept_ci95": g_int_ci, "intercept_ra_pct": lineal.relative_accuracy_pct,
            "mean_intercept_um": lineal.mean, "mean_intercept_um_ci95": lineal.ci95}


def angle_cells(scaled: Sequence[ImageMeasurement]) -> dict[str, float]:
    """Per test-line family, L / P over all fields (µm), and the anisotropy of those means."""
    length: dict[str, float] = {}
    count: dict[str, float] = {}
    for m in scaled:
        for c in m.per_path:
            length[c.label] = length.get(c.label, 0.0) + c.length_px * m.pixel_size_um
            count[c.label] = count.get(c.label, 0.0) + c.count
    means = {label: length[label] / count[label] if count[label] else math.nan for label in length}
    cells = {f"mean_intercept_um_{label}": value for label, value in means.items()}
    finite = [v for label, v in means.items() if math.isfinite(v) and label != "circles"]
    cells["anisotropy"] = max(finite) / min(finite) if len(finite) >= 2 and len(finite) == len(means) else math.nan
    return cells


def summary_rows(records: Sequence[ImageRecord], columns: Sequence[str]) -> list[list[Any]]:
    """Every row of summary.csv: per specimen (in order of first appearance) its images, then its own row."""
    rows = []
    for name in dict.fromkeys(r.specimen for r in records):
        members = [r for r in records if r.specimen == name]
        for cells in [image_row(r) for r in members] + [specimen_row(name, members, columns)]:
            rows.append([cells.get(c, "") for c in columns])
    return rows


def specimen_lines(records: Sequence[ImageRecord]) -> list[str]:
    """Per specimen, a line with its E112 statistics (two or more scaled fields) and one when it is duplex."""
    lines = []
    for name in dict.fromkeys(r.specimen for r in records):
        members = [r.measurement for r in records if r.specimen == name]
        scaled = [m for m in members if m.pixel_size_um > 0]
        if len(scaled) > 1:
            cells = field_cells(scaled)
            lines.append(f"specimen {name}: {len(scaled)} fields (E112 section 15): planimetric G "
                         f"{cells['astm_g_planimetric']:.2f} ± {cells['astm_g_planimetric_ci95']:.2f} (95% CI, "
                         f"%RA {cells['planimetric_ra_pct']:.1f}), intercept G {cells['astm_g_intercept']:.2f} ± "
                         f"{cells['astm_g_intercept_ci95']:.2f} (%RA {cells['intercept_ra_pct']:.1f})")
        verdict = pooled_distribution(members)
        if verdict.duplex != "no":
            lines.append(f"specimen {name}: {duplex_words(verdict)}")
    return lines


def duplex_words(distribution: SizeDistribution) -> str:
    """One phrase for a duplex verdict (ASTM E1181 / E930)."""
    share = f"{100 * distribution.coarse_share:.1f} % of the area in grains 3+ G coarser than the rest"
    ala = f"; the largest grain (ALA, ASTM E930): G {distribution.ala_g:.2f}" if math.isfinite(distribution.ala_g) \
        else ""
    return {"bimodal": "duplex grain size (ASTM E1181): bimodal, two grain sizes 3+ G apart",
            "wide": f"duplex grain size (ASTM E1181): a wide range, {share}",
            "ala": f"isolated coarse grains: {share} (ASTM E930 applies){ala}"}[distribution.duplex]
