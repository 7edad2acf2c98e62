"""`measure`: grain statistics for a folder of boundary images (or raw micrographs restored first).

`measure_files` checks everything (options, inputs, output names, the model when restoring)
before creating the output directory, raising MeasureError with one line; then it measures
each image, writing its files, and at the end summary.csv and summary.json. An image that
cannot be read or measured is named in the report and the others go on. See docs/measure.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.store import atomic_write
from model.inference.images import InputError, collect_inputs, read_image
from model.inference.predict import check_out_dir, failure_reason, make_out_dir, output_names
from model.inference.predictor import PredictError
from model.inference.restore import RestoreOptions, Restorer, check_options, model_path_of
from .grains import ImageMeasurement, measure_boundary
from .outputs import csv_bytes, write_grain_csv, write_grain_map, write_histogram, write_json, write_overlay

SUMMARY_CSV, SUMMARY_JSON, POOLED_HISTOGRAM = "summary.csv", "summary.json", "histogram.png"
PER_IMAGE = ("_grains.csv", "_grains.tif", "_overlay.png")
HISTOGRAM = "_histogram.png"
SUMMARY_COLUMNS = ("image", "source", "width_px", "height_px", "grains", "grains_inside", "grains_cut",
                   "mean_area_um2", "median_area_um2", "mean_diameter_um", "astm_g_planimetric",
                   "astm_g_intercept", "mean_intercept_um", "intercepts")


class MeasureError(ValueError):
    """Options, inputs or a model that cannot be used; raised before any output is written. One line."""


@dataclass(frozen=True)
class MeasureOptions:
    """What `measure` was asked for (written to summary.json)."""

    pixel_size_um: float = 1.0
    min_grain: int = 10
    exclude_border: bool = False
    pooled: bool = False


@dataclass(frozen=True)
class MeasureReport:
    """What one `measure_files` call did."""

    out_dir: Path
    inputs: int
    measured: tuple[tuple[Path, str, ImageMeasurement], ...]  # (input, output name, measurement)
    failures: tuple[tuple[Path, str], ...]
    used: str  # the restoration used, or "" without --restore
    seconds: float

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
        text = (f"measured {len(self.measured)} of {self.inputs} images ({grains} grains) in {self.seconds:.1f} s "
                f"-> {self.out_dir / SUMMARY_CSV}")
        return text + (f"; {len(self.failures)} failed" if self.failures else "")


def _check(options: MeasureOptions) -> None:
    if not options.pixel_size_um > 0 or not np.isfinite(options.pixel_size_um):
        raise MeasureError(f"--pixel-size must be > 0, got {options.pixel_size_um}")
    if options.min_grain < 1:
        raise MeasureError(f"--min-grain must be >= 1, got {options.min_grain}")


def measure_image(boundary: np.ndarray, options: MeasureOptions) -> ImageMeasurement:
    """Measure one uint8 boundary image (0 boundary, 255 background) with `options`."""
    return measure_boundary(boundary, options.pixel_size_um, options.min_grain, options.exclude_border)


def measure_files(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                  options: MeasureOptions = MeasureOptions(), restore: RestoreOptions | None = None,
                  echo: Callable[[str], None] | None = None) -> MeasureReport:
    """Measure every image of `inputs` into out_dir; with `restore`, restore each one first (as `predict`)."""
    _check(options)
    try:
        if restore is not None:
            check_options(restore)
            model_path_of(restore)
        sources = collect_inputs(inputs)
        out_dir = Path(out_dir)
        names = output_names(sources)
        wanted = [[name + suffix for suffix in PER_IMAGE + ((HISTOGRAM,) if not options.pooled else ())]
                  for name in names]
        check_out_dir(out_dir, sources, wanted + [[SUMMARY_CSV, SUMMARY_JSON, POOLED_HISTOGRAM]])
        restorer = Restorer(restore) if restore is not None else None
        make_out_dir(out_dir)
    except (InputError, PredictError) as exc:
        raise MeasureError(str(exc)) from None
    if restorer is not None and echo is not None:
        echo(restorer.describe())

    start = time.perf_counter()
    measured: list[tuple[Path, str, ImageMeasurement]] = []
    failures: list[tuple[Path, str]] = []
    for source, name in zip(sources, names):
        try:
            gray = read_image(source)
            if restorer is not None:
                boundary, _ = restorer.restore(gray)
            else:
                boundary = np.where(gray >= 0.5, 255, 0).astype(np.uint8)  # < 128 of 255 is boundary
            result = measure_image(boundary, options)
            write_grain_csv(out_dir / f"{name}_grains.csv", result.table)
            write_grain_map(out_dir / f"{name}_grains.tif", result.table)
            write_overlay(out_dir / f"{name}_overlay.png", gray, boundary == 0, result.table)
            if not options.pooled:
                write_histogram(out_dir / f"{name}{HISTOGRAM}", result.table.diameter_um, name)
            measured.append((source, name, result))
        except Exception as exc:  # one bad image must not stop the rest
            failures.append((source, failure_reason(exc)))
    if options.pooled:
        pooled = [m.table.diameter_um for _, _, m in measured]
        write_histogram(out_dir / POOLED_HISTOGRAM, np.concatenate(pooled) if pooled else np.zeros(0),
                        f"{len(measured)} images")
    rows = [[name, str(source)] + list(m.summary().values()) for source, name, m in measured]
    write_json(out_dir / SUMMARY_JSON, {
        "options": asdict(options),
        "restore": ({**asdict(restore), "used": restorer.describe()} if restore is not None and restorer else None),
        "images": [{"image": name, "source": str(source)} for source, name, _ in measured],
        "failures": [{"source": str(source), "reason": reason} for source, reason in failures],
    })
    atomic_write(out_dir / SUMMARY_CSV, csv_bytes(SUMMARY_COLUMNS, rows))
    return MeasureReport(out_dir=out_dir, inputs=len(sources), measured=tuple(measured), failures=tuple(failures),
                         used=restorer.describe() if restorer else "", seconds=time.perf_counter() - start)
