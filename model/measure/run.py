"""`measure`: grain statistics for folders of boundary images (or raw micrographs restored first).

`measure_files` checks everything (options, inputs, specimens, mask, output names, the model
when restoring) before writing anything, raising MeasureError with one line; then it measures
each image, writing its files (the output folder is made for the first one), and at the end
summary.csv, summary.json and, with `report`, report.html. An image that cannot be read or
measured is named in the report and the others go on; a run that measures none writes nothing.
See docs/measure.md.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model.inference.images import ImageError, InputError, read_image
from model.inference.predict import check_out_dir, failure_reason, make_out_dir, output_names, raise_if_stopped
from model.inference.predictor import PredictError
from model.inference.restore import RestoreOptions, Restorer, check_options, model_path_of, survey
from pipeline.store import atomic_write, is_no_space, no_space_line
from .field import FieldError, image_field, parse_roi, read_mask
from .grains import ImageMeasurement, many_below, measure_boundary
from .intercepts import LINE_ANGLES
from .outputs import (csv_bytes, write_boundaries, write_grain_csv, write_grain_map, write_histogram,
                      write_intercepts_csv, write_json, write_overlay)
from .report import REPORT_HTML, write_report
from .scale import PLAUSIBLE_UM, ScaleError, plausible, scale_of
from .specimens import specimen_inputs
from .summary import ImageRecord, specimen_lines, summary_columns, summary_rows

SUMMARY_CSV, SUMMARY_JSON, POOLED_HISTOGRAM = "summary.csv", "summary.json", "histogram.png"
PER_IMAGE = ("_grains.csv", "_grains.tif", "_overlay.png")
HISTOGRAM, INTERCEPTS, BOUNDARIES = "_histogram.png", "_intercepts.csv", "_boundaries.png"
PATTERNS = ("lines", "circles")
TWIN_MODES = ("none", "count", "merge")
DARK_SHARE = 0.75  # more of the image than this dark: the boundaries are the bright pixels

__all__ = ["ImageRecord", "MeasureError", "MeasureOptions", "MeasureReport", "measure_files", "measure_image"]


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
    specimens_csv: str | None = None  # image -> specimen; None: by folder
    mask: str | None = None  # a PNG: white measured, black left out
    roi: str | None = None  # "x,y,w,h" in pixels
    keep_data_bar: bool = False  # measure a data bar found at an edge instead of leaving it out
    twins: str = "none"  # "count" or "merge"
    report: bool = False  # write report.html


@dataclass(frozen=True)
class MeasureReport:
    """What one `measure_files` call did."""

    out_dir: Path
    inputs: int
    measured: tuple[tuple[Path, str, ImageMeasurement], ...]  # (input, output name, measurement)
    failures: tuple[tuple[Path, str], ...]
    used: str  # the restoration used, or "" without --restore
    seconds: float
    notes: tuple[str, ...] = field(default=())  # one line each: no scale, inverted images, data bars, specimens

    @property
    def ok(self) -> bool:
        """True when every input was measured (the CLI exits 1 otherwise)."""
        return not self.failures

    def messages(self) -> list[str]:
        """One `failed: PATH: reason` line per input not measured."""
        return [f"failed: {source}: {reason}" for source, reason in self.failures]

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        if not self.measured:
            return f"measured 0 of {self.inputs} images: nothing written"
        grains = sum(m.table.count for _, _, m in self.measured)
        text = (f"measured {len(self.measured)} of {self.inputs} images ({grains} grains) in {self.seconds:.1f} s "
                f"-> {self.out_dir / SUMMARY_CSV}")
        return text + (f"; {len(self.failures)} failed" if self.failures else "")


def _check(options: MeasureOptions) -> None:
    pixel = options.pixel_size_um
    if pixel is not None and not (math.isfinite(pixel) and pixel > 0):
        raise MeasureError(f"--pixel-size must be > 0, got {pixel}")
    if pixel is not None and not plausible(pixel):
        raise MeasureError(f"--pixel-size {pixel:g} um per pixel is implausible: give {PLAUSIBLE_UM[0]:g} to "
                           f"{PLAUSIBLE_UM[1]:g} um")
    if options.min_grain is not None and options.min_grain < 1:
        raise MeasureError(f"--min-grain must be >= 1, got {options.min_grain}")
    if options.pattern not in PATTERNS:
        raise MeasureError(f"--pattern must be one of {', '.join(PATTERNS)}, got {options.pattern!r}")
    if not options.angles or not all(math.isfinite(a) for a in options.angles):
        raise MeasureError(f"--angles must be one or more finite angles in degrees, got {options.angles}")
    if len({a % 180 for a in options.angles}) != len(options.angles):
        raise MeasureError(f"--angles has the same direction twice: {', '.join(f'{a:g}' for a in options.angles)}")
    if options.twins not in TWIN_MODES:
        raise MeasureError(f"--twins must be one of {', '.join(TWIN_MODES)}, got {options.twins!r}")
    if options.roi is not None:
        try:
            parse_roi(options.roi)
        except ValueError as exc:
            raise MeasureError(f"--roi: {exc}") from None


def measure_image(boundary: np.ndarray, options: MeasureOptions, pixel_size_um: float | None = None,
                  field: np.ndarray | None = None) -> ImageMeasurement:
    """Measure one uint8 boundary image (0 boundary, 255 background) with `options` (pixel size given, else none)."""
    pixel = options.pixel_size_um if options.pixel_size_um is not None else pixel_size_um
    return measure_boundary(boundary, pixel, options.min_grain, options.exclude_border, tuple(options.angles),
                            options.pattern, field, options.twins)


def read_boundary(gray: np.ndarray, invert: bool) -> tuple[np.ndarray, bool, float]:
    """(uint8 boundary image, inverted?, dark share): dark (< 0.5) is boundary unless `invert`, or unless
    more than three quarters of the image is dark, which no boundary map is: then the bright pixels are."""
    dark = float(np.count_nonzero(gray < 0.5)) / max(1, gray.size)
    inverted = invert or dark > DARK_SHARE
    boundary = (gray >= 0.5) != inverted  # True: background
    return np.where(boundary, 255, 0).astype(np.uint8), inverted, dark


def check_writable(out_dir: Path) -> None:
    """MeasureError unless --out is, or can be made as, a writable folder (nothing is created here)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise MeasureError(f"--out {out_dir} exists and is not a directory")
        if not os.access(out_dir, os.W_OK):
            raise MeasureError(f"--out {out_dir} is not writable")
        return
    parent = out_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise MeasureError(f"cannot create --out {out_dir}: {parent} is not a writable folder")


def measure_files(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                  options: MeasureOptions = MeasureOptions(), restore: RestoreOptions | None = None,
                  echo: Callable[[str], None] | None = None) -> MeasureReport:
    """Measure every image of `inputs` into out_dir; with `restore`, restore each one first (as `predict`)."""
    _check(options)
    out_dir = Path(out_dir)
    try:
        if restore is not None:
            check_options(restore)
            model_path_of(restore)
        found = specimen_inputs(inputs, options.specimens_csv)
        sources = list(found.sources)
        names = output_names(sources)
        per_image = PER_IMAGE + ((HISTOGRAM,) if not options.pooled else ()) + (
            (INTERCEPTS,) if options.intercepts_csv else ()) + ((BOUNDARIES,) if restore is not None else ())
        wanted = [[name + suffix for suffix in per_image] for name in names]
        check_out_dir(out_dir, sources, wanted + [[SUMMARY_CSV, SUMMARY_JSON, POOLED_HISTOGRAM, REPORT_HTML]])
        check_writable(out_dir)
        mask = read_mask(options.mask) if options.mask else None
        restorer = Restorer(restore) if restore is not None else None
    except (InputError, PredictError, FieldError) as exc:
        raise MeasureError(str(exc)) from None
    say = echo or (lambda line: None)
    if found.skipped:
        say(f"left out {len(found.skipped)} files measure wrote itself ({', '.join(p.name for p in found.skipped[:3])}"
            f"{', ...' if len(found.skipped) > 3 else ''})")
    if restorer is not None:
        say(restorer.describe())
        say(restorer.inputs_line(survey(sources).values()))  # which inputs get which preparation, first

    start = time.perf_counter()
    records: list[ImageRecord] = []
    failures: list[tuple[Path, str]] = []
    for source, name, specimen in zip(sources, names, found.specimens):
        try:
            records.append(_measure_one(source, name, specimen, out_dir, options, restorer, mask))
        except (FieldError, ScaleError, ImageError) as exc:
            failures.append((source, str(exc)))
        except Exception as exc:  # one bad image must not stop the rest; a full disk or a signal stops them all
            raise_if_stopped(exc)
            if is_no_space(exc):
                raise MeasureError(no_space_line(exc, outcome=f"{len(records)} of {len(sources)} images were "
                                                              f"measured into {out_dir}")) from None
            failures.append((source, failure_reason(exc)))
    notes = run_notes(records, options, restorer is not None)
    for note in notes:
        say(note)
    report = MeasureReport(out_dir=out_dir, inputs=len(sources),
                           measured=tuple((r.source, r.name, r.measurement) for r in records),
                           failures=tuple(failures), used=restorer.describe() if restorer else "",
                           seconds=time.perf_counter() - start, notes=tuple(notes))
    if records:
        write_summaries(out_dir, records, failures, options, restore, restorer, notes)
    return report


def run_notes(records: Sequence[ImageRecord], options: MeasureOptions, restoring: bool) -> list[str]:
    """The lines printed after the images: what each image's reading left out or assumed, then the specimens."""
    notes: list[str] = []
    for record in records:
        m = record.measurement
        notes.extend(record.notes)
        if record.inverted and not options.invert and not restoring:
            notes.append(f"{record.name}: more than 3/4 of it is dark: read as bright boundaries on a dark background "
                         f"(inverted; --invert says so)")
        if many_below(m):
            notes.append(f"{record.name}: {m.below_min_grain} background pieces under --min-grain {m.min_grain} px "
                         f"were not counted as grains (beside {m.table.count} grains); if some are grains, give a "
                         f"smaller --min-grain")
    unscaled = [r.name for r in records if not r.scale_source]
    if unscaled:
        notes.append(f"no scale for {len(unscaled)} of {len(records)} images ({', '.join(unscaled[:3])}"
                     f"{', ...' if len(unscaled) > 3 else ''}): G and µm figures left empty; G needs --pixel-size UM "
                     f"(or TIFF resolution tags)")
    return notes + specimen_lines(records)


def write_summaries(out_dir: Path, records: Sequence[ImageRecord], failures: Sequence[tuple[Path, str]],
                    options: MeasureOptions, restore: RestoreOptions | None, restorer: Restorer | None,
                    notes: Sequence[str]) -> None:
    """summary.csv, summary.json, the pooled histogram (--pooled) and report.html (--report)."""
    if options.pooled:
        scaled = [r.measurement.table.diameter_um for r in records if r.scale_source]
        pooled = scaled if scaled else [r.measurement.table.diameter_px for r in records]
        write_histogram(out_dir / POOLED_HISTOGRAM, np.concatenate(pooled), f"{len(records)} images",
                        "µm" if scaled else "px")
    columns = summary_columns(options.pattern, options.angles, options.twins != "none")
    rows = summary_rows(records, columns)
    settings = {**asdict(options), "angles": list(options.angles)}
    write_json(out_dir / SUMMARY_JSON, {
        "options": settings,
        "restore": ({**asdict(restore), "used": restorer.describe()} if restore is not None and restorer else None),
        "images": [{"image": r.name, "source": str(r.source), "specimen": r.specimen,
                    "pixel_size_um": r.measurement.pixel_size_um, "scale_from": r.scale_source or None,
                    "inverted": r.inverted, "min_grain_px": r.measurement.min_grain,
                    "pits_filled": r.measurement.pits, "field_px": r.measurement.field_area_px} for r in records],
        "specimens": list(dict.fromkeys(r.specimen for r in records)),
        "failures": [{"source": str(source), "reason": reason} for source, reason in failures],
        "notes": list(notes),
    })
    atomic_write(out_dir / SUMMARY_CSV, csv_bytes(columns, rows))
    if options.report:
        write_report(out_dir / REPORT_HTML, records, columns, rows, settings, restorer.describe() if restorer else "",
                     list(notes), failures)


def _measure_one(source: Path, name: str, specimen: str, out_dir: Path, options: MeasureOptions,
                 restorer: Restorer | None, mask: np.ndarray | None) -> ImageRecord:
    """Read, (restore,) measure and write the files of one image."""
    gray = read_image(source)
    if options.pixel_size_um is not None:
        pixel, scale_source = options.pixel_size_um, "option"
    else:
        scale = scale_of(source)
        pixel, scale_source = (scale.um_per_px, scale.source) if scale else (None, "")
    field, left_out = image_field(gray, options.roi, mask, not options.keep_data_bar)
    if restorer is not None:
        boundary = restorer.restore(gray)[0]  # (not the probability map: 16 MB kept through the measuring)
        inverted = bool(getattr(restorer.options, "invert", False))
    else:
        boundary, inverted, _ = read_boundary(gray, options.invert)
    result = measure_image(boundary, options, pixel, field)
    make_out_dir(out_dir)
    write_grain_csv(out_dir / f"{name}_grains.csv", result.table, result.shapes, result.twins)
    write_grain_map(out_dir / f"{name}_grains.tif", result.table)
    write_overlay(out_dir / f"{name}_overlay.png", gray, boundary == 0, result.table, field)
    if restorer is not None:
        write_boundaries(out_dir / f"{name}{BOUNDARIES}", boundary == 0, field)
    if not options.pooled:
        if scale_source:
            write_histogram(out_dir / f"{name}{HISTOGRAM}", result.table.diameter_um, name, "µm")
        else:
            write_histogram(out_dir / f"{name}{HISTOGRAM}", result.table.diameter_px, name, "px")
    if options.intercepts_csv:
        write_intercepts_csv(out_dir / f"{name}{INTERCEPTS}", result.per_path, result.pixel_size_um)
    notes = tuple(f"{name}: left out {what} (--keep-data-bar measures it)" for what in left_out)
    return ImageRecord(source, name, result.lean(), scale_source, inverted, specimen, notes)
