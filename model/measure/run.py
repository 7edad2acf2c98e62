"""`measure`: grain statistics for a folder of boundary images (or raw micrographs restored first).

`measure_files` checks everything (options, inputs, output names, the model when restoring)
before creating the output directory, raising MeasureError with one line; then it measures
each image, writing its files, and at the end summary.csv and summary.json. An image that
cannot be read or measured is named in the report and the others go on. See docs/measure.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.store import atomic_write, is_no_space, no_space_line
from model.commands import PIXEL_SIZE_UM
from model.inference.images import ImageError, InputError, collect_inputs, read_image
from model.inference.predict import check_out_dir, failure_reason, make_out_dir, output_names
from model.inference.predictor import PredictError
from model.inference.restore import RestoreOptions, Restorer, check_options, model_path_of, survey
from .fields import field_statistics
from .grains import INTERCEPT_OFFSET, INTERCEPT_SLOPE, ImageMeasurement, many_below, measure_boundary
from .intercepts import LINE_ANGLES
from .outputs import (csv_bytes, write_grain_csv, write_grain_map, write_histogram, write_intercepts_csv, write_json,
                      write_overlay)
from .scale import AnisotropicPixels, scale_of

SUMMARY_CSV, SUMMARY_JSON, POOLED_HISTOGRAM = "summary.csv", "summary.json", "histogram.png"
PER_IMAGE = ("_grains.csv", "_grains.tif", "_overlay.png")
HISTOGRAM, INTERCEPTS = "_histogram.png", "_intercepts.csv"
BASE_COLUMNS = ("image", "source", "width_px", "height_px", "pixel_size_um", "min_grain_px", "below_min_grain",
                "grains", "grains_inside", "grains_cut", "grains_weighted", "mean_area_um2", "median_area_um2",
                "mean_diameter_um", "astm_g_planimetric", "astm_g_intercept", "mean_intercept_um", "intercepts",
                "open_intercepts")
PATTERNS = ("lines", "circles")
DARK_SHARE = 0.75  # more of the image than this dark: the boundaries are the bright pixels


class MeasureError(ValueError):
    """Options, inputs or a model that cannot be used; raised before any output is written. One line."""


@dataclass(frozen=True)
class MeasureOptions:
    """What `measure` was asked for (written to summary.json)."""

    pixel_size_um: float | None = None  # None: read from each file's metadata, else no scale
    min_grain: int | None = None  # None: from each image (grains.auto_min_grain)
    exclude_border: bool = False
    pooled: bool = False
    angles: tuple[float, ...] = LINE_ANGLES
    pattern: str = "lines"  # or "circles"
    intercepts_csv: bool = False
    invert: bool = False  # boundaries are bright (without --restore; with it, RestoreOptions.invert)


@dataclass(frozen=True)
class ImageRecord:
    """One measured image and how it was read."""

    source: Path
    name: str
    measurement: ImageMeasurement
    scale_source: str  # "option", "tiff", "imagej", "ome" or "" (no scale)
    inverted: bool


@dataclass(frozen=True)
class MeasureReport:
    """What one `measure_files` call did."""

    out_dir: Path
    inputs: int
    measured: tuple[tuple[Path, str, ImageMeasurement], ...]  # (input, output name, measurement)
    failures: tuple[tuple[Path, str], ...]
    used: str  # the restoration used, or "" without --restore
    seconds: float
    notes: tuple[str, ...] = field(default=())  # one line each: no scale, inverted images, many specks, fields

    @property
    def ok(self) -> bool:
        """True when every input was measured (the CLI exits 1 otherwise)."""
        return not self.failures

    def messages(self) -> list[str]:
        """One `failed: PATH: reason` line per input not measured."""
        return [f"failed: {source}: {reason}" for source, reason in self.failures]

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        grains = sum(m.table.count for _, _, m in self.measured)
        if not self.measured:
            return f"measured 0 of {self.inputs} images: nothing written"
        text = (f"measured {len(self.measured)} of {self.inputs} images ({grains} grains) in {self.seconds:.1f} s "
                f"-> {self.out_dir / SUMMARY_CSV}")
        return text + (f"; {len(self.failures)} failed" if self.failures else "")


def _check(options: MeasureOptions) -> None:
    if options.pixel_size_um is not None and (not options.pixel_size_um > 0 or not np.isfinite(options.pixel_size_um)):
        raise MeasureError(f"--pixel-size must be > 0, got {options.pixel_size_um}")
    if options.min_grain is not None and options.min_grain < 1:
        raise MeasureError(f"--min-grain must be >= 1, got {options.min_grain}")
    if options.pattern not in PATTERNS:
        raise MeasureError(f"--pattern must be one of {', '.join(PATTERNS)}, got {options.pattern!r}")
    if not options.angles or not all(math.isfinite(a) for a in options.angles):
        raise MeasureError(f"--angles must be one or more finite angles in degrees, got {options.angles}")
    if len({a % 180 for a in options.angles}) != len(options.angles):
        raise MeasureError(f"--angles has the same direction twice: {', '.join(f'{a:g}' for a in options.angles)}")


def summary_columns(options: MeasureOptions) -> list[str]:
    """The header of summary.csv: the base columns, a mean intercept per angle (or the circles), anisotropy."""
    labels = ["circles"] if options.pattern == "circles" else [f"{a:g}" for a in options.angles]
    return list(BASE_COLUMNS) + [f"mean_intercept_um_{label}" for label in labels] + ["anisotropy"]


def measure_image(boundary: np.ndarray, options: MeasureOptions, pixel_size_um: float | None = None) -> ImageMeasurement:
    """Measure one uint8 boundary image (0 boundary, 255 background) with `options` (pixel size given, else none)."""
    pixel = options.pixel_size_um if options.pixel_size_um is not None else pixel_size_um
    return measure_boundary(boundary, pixel, options.min_grain, options.exclude_border, tuple(options.angles),
                            options.pattern)


def read_boundary(gray: np.ndarray, invert: bool) -> tuple[np.ndarray, bool, float]:
    """(uint8 boundary image, inverted?, dark share): dark (< 0.5) is boundary unless `invert`, or unless
    more than three quarters of the image is dark, which no boundary map is: then the bright pixels are."""
    dark = float(np.count_nonzero(gray < 0.5)) / max(1, gray.size)
    inverted = invert or dark > DARK_SHARE
    boundary = (gray >= 0.5) != inverted  # True: background
    return np.where(boundary, 255, 0).astype(np.uint8), inverted, dark


def _intercept_g(mean_um: float) -> float:
    return INTERCEPT_SLOPE * math.log10(mean_um * 1e-3) - INTERCEPT_OFFSET if mean_um > 0 else math.nan


def _planimetric_g(per_mm2: float) -> float:
    return 3.321928 * math.log10(per_mm2) - 2.954 if per_mm2 > 0 else math.nan


def field_rows(records: Sequence[ImageRecord], columns: Sequence[str]) -> list[list[Any]]:
    """summary.csv's three rows after the images, E112's field statistics over images with a scale:
    `mean` (G of the mean N_A and of the mean intercept), `ci95` (half-width of the 95% interval, in
    G for the G columns, in µm for mean_intercept_um) and `relative_accuracy_pct` (%RA of N_A, of l)."""
    scaled = [r.measurement for r in records if math.isfinite(r.measurement.pixel_size_um)]
    if len(scaled) < 2:
        return []
    areal = field_statistics([m.grains_per_mm2 for m in scaled])
    lineal = field_statistics([m.mean_intercept_um for m in scaled])
    g_plan, g_plan_ci = areal.g_interval(_planimetric_g)
    g_int, g_int_ci = lineal.g_interval(_intercept_g)
    values = {
        "mean": {"astm_g_planimetric": g_plan, "astm_g_intercept": g_int, "mean_intercept_um": lineal.mean,
                 "grains": float(np.mean([m.table.count for m in scaled]))},
        "ci95": {"astm_g_planimetric": g_plan_ci, "astm_g_intercept": g_int_ci, "mean_intercept_um": lineal.ci95},
        "relative_accuracy_pct": {"astm_g_planimetric": areal.relative_accuracy_pct,
                                  "astm_g_intercept": lineal.relative_accuracy_pct,
                                  "mean_intercept_um": lineal.relative_accuracy_pct},
    }
    source = f"{len(scaled)} fields (E112 section 15)"
    return [[name, source] + [row.get(c, "") for c in columns[2:]] for name, row in values.items()]


def field_line(records: Sequence[ImageRecord]) -> str | None:
    """One line with G ± its 95% interval and %RA over the fields, or None with fewer than two scaled fields."""
    rows = field_rows(records, ["image", "source", "astm_g_planimetric", "astm_g_intercept", "mean_intercept_um"])
    if not rows:
        return None
    (_, source, gp, gi, _), (_, _, gp_ci, gi_ci, _), (_, _, ra_p, ra_i, _) = rows
    return (f"{source}: planimetric G {gp:.2f} ± {gp_ci:.2f} (95% CI, %RA {ra_p:.1f}), "
            f"intercept G {gi:.2f} ± {gi_ci:.2f} (%RA {ra_i:.1f})")


def _row_cells(record: ImageRecord, columns: Sequence[str]) -> list[Any]:
    summary = record.measurement.summary()
    return [record.name, str(record.source)] + [summary.get(c, "") for c in columns[2:]]


def own_outputs_apart(sources: Sequence[Path],
                      inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Path]]:
    """`sources` split into images and the files an earlier measure wrote into an input folder beside
    their image (<stem>_grains.tif, _overlay.png, _histogram.png next to <stem>.*): those are no micrographs."""
    folders = {Path(raw).resolve() for raw in inputs if Path(raw).is_dir()}
    stems = {(path.parent.resolve(), path.stem) for path in sources}
    suffixes = (*PER_IMAGE, HISTOGRAM)

    def earlier(path: Path) -> bool:
        return path.parent.resolve() in folders and any(
            path.name.endswith(suffix) and (path.parent.resolve(), path.name[:-len(suffix)]) in stems
            for suffix in suffixes)

    return [p for p in sources if not earlier(p)], [p for p in sources if earlier(p)]


def measure_files(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                  options: MeasureOptions = MeasureOptions(), restore: RestoreOptions | None = None,
                  echo: Callable[[str], None] | None = None) -> MeasureReport:
    """Measure every image of `inputs` into out_dir; with `restore`, restore each one first (as `predict`)."""
    _check(options)
    try:
        if restore is not None:
            check_options(restore)
            model_path_of(restore)
        sources, earlier = own_outputs_apart(collect_inputs(inputs), inputs)
        if not sources:
            raise InputError(f"the only images in {', '.join(map(str, inputs))} are files an earlier measure wrote")
        out_dir = Path(out_dir)
        names = output_names(sources)
        per_image = PER_IMAGE + ((HISTOGRAM,) if not options.pooled else ()) + (
            (INTERCEPTS,) if options.intercepts_csv else ())
        wanted = [[name + suffix for suffix in per_image] for name in names]
        check_out_dir(out_dir, sources, wanted + [[SUMMARY_CSV, SUMMARY_JSON, POOLED_HISTOGRAM]])
        restorer = Restorer(restore) if restore is not None else None
        created = not out_dir.exists()
        make_out_dir(out_dir)
    except (InputError, PredictError) as exc:
        raise MeasureError(str(exc)) from None
    say = echo or (lambda line: None)
    if earlier:
        say(f"skipped {len(earlier)} files an earlier measure wrote beside their images ({earlier[0].name}"
            f"{', ...' if len(earlier) > 1 else ''}): they are not micrographs")
    if restorer is not None:
        say(restorer.describe())
        say(restorer.inputs_line(survey(sources).values()))  # which inputs get which preparation, first

    start = time.perf_counter()
    records: list[ImageRecord] = []
    failures: list[tuple[Path, str]] = []
    notes: list[str] = []
    for source, name in zip(sources, names):
        try:
            record = _measure_one(source, name, out_dir, options, restorer)
        except Exception as exc:  # one bad image must not stop the rest; a full disk stops them all
            if is_no_space(exc):
                if created:
                    with contextlib.suppress(OSError):
                        out_dir.rmdir()
                raise MeasureError(no_space_line(exc, outcome=f"{len(records)} of {len(sources)} images were "
                                                              f"measured into {out_dir}")) from None
            failures.append((source, failure_reason(exc)))
            continue
        records.append(record)
        m = record.measurement
        if record.inverted and not options.invert and restorer is None:
            notes.append(f"{name}: more than 3/4 of it is dark: read as bright boundaries on a dark background "
                         f"(inverted; --invert says so)")
        if many_below(m):
            notes.append(f"{name}: {m.below_min_grain} background pieces under --min-grain {m.min_grain} px were not "
                         f"counted as grains (beside {m.table.count} grains); if some are grains, give a smaller "
                         f"--min-grain")
    if not records:  # every input failed: no empty summary (and no --out this run made)
        if created:
            with contextlib.suppress(OSError):  # not empty: a failed image's files stay for a look
                out_dir.rmdir()
        return MeasureReport(out_dir=out_dir, inputs=len(sources), measured=(), failures=tuple(failures),
                             used=restorer.describe() if restorer else "", seconds=time.perf_counter() - start,
                             notes=())
    unscaled = [r.name for r in records if not r.scale_source]
    if unscaled:
        notes.append(f"no scale for {len(unscaled)} of {len(records)} images ({', '.join(unscaled[:3])}"
                     f"{', ...' if len(unscaled) > 3 else ''}): G and µm figures left empty; G needs --pixel-size UM "
                     f"(or TIFF resolution tags)")
    line = field_line(records)
    if line:
        notes.append(line)
    for note in notes:
        say(note)
    if options.pooled:
        scaled = [r.measurement.table.diameter_um for r in records if r.scale_source]
        unit_px = not scaled and bool(records)
        pooled = scaled if scaled else [r.measurement.table.diameter_px for r in records]
        write_histogram(out_dir / POOLED_HISTOGRAM, np.concatenate(pooled) if pooled else np.zeros(0),
                        f"{len(records)} images", "px" if unit_px else "µm")
    columns = summary_columns(options)
    rows = [_row_cells(r, columns) for r in records] + field_rows(records, columns)
    write_json(out_dir / SUMMARY_JSON, {
        "options": {**asdict(options), "angles": list(options.angles)},
        "restore": ({**asdict(restore), "used": restorer.describe()} if restore is not None and restorer else None),
        "images": [{"image": r.name, "source": str(r.source), "pixel_size_um": r.measurement.pixel_size_um,
                    "scale_from": r.scale_source or None, "inverted": r.inverted,
                    "min_grain_px": r.measurement.min_grain, "pits_filled": r.measurement.pits} for r in records],
        "failures": [{"source": str(source), "reason": reason} for source, reason in failures],
        "notes": notes,
    })
    atomic_write(out_dir / SUMMARY_CSV, csv_bytes(columns, rows))
    return MeasureReport(out_dir=out_dir, inputs=len(sources),
                         measured=tuple((r.source, r.name, r.measurement) for r in records),
                         failures=tuple(failures), used=restorer.describe() if restorer else "",
                         seconds=time.perf_counter() - start, notes=tuple(notes))


def _measure_one(source: Path, name: str, out_dir: Path, options: MeasureOptions,
                 restorer: Restorer | None) -> ImageRecord:
    """Read, (restore,) measure and write the files of one image."""
    gray = read_image(source)
    if options.pixel_size_um is not None:
        pixel, scale_source = options.pixel_size_um, "option"
    else:
        try:
            scale = scale_of(source)
        except AnisotropicPixels as exc:
            raise ImageError(str(exc)) from None
        pixel, scale_source = (scale.um_per_px, scale.source) if scale else (None, "")
        low, high = PIXEL_SIZE_UM
        if pixel is not None and not low <= pixel <= high:
            raise ImageError(f"its {scale_source} tags give {pixel:g} µm a pixel, outside {low:g} to {high:g}: "
                             "give --pixel-size UM")
    if restorer is not None:
        boundary, _ = restorer.restore(gray)
        inverted = bool(getattr(restorer.options, "invert", False))
    else:
        boundary, inverted, _ = read_boundary(gray, options.invert)
    result = measure_image(boundary, options, pixel)
    write_grain_csv(out_dir / f"{name}_grains.csv", result.table)
    write_grain_map(out_dir / f"{name}_grains.tif", result.table)
    write_overlay(out_dir / f"{name}_overlay.png", gray, boundary == 0, result.table)
    if not options.pooled:
        if scale_source:
            write_histogram(out_dir / f"{name}{HISTOGRAM}", result.table.diameter_um, name, "µm")
        else:
            write_histogram(out_dir / f"{name}{HISTOGRAM}", result.table.diameter_px, name, "px")
    if options.intercepts_csv:
        write_intercepts_csv(out_dir / f"{name}{INTERCEPTS}", result.per_path, result.pixel_size_um)
    return ImageRecord(source, name, result, scale_source, inverted)
