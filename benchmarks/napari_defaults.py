"""Benchmark: the napari widgets' defaults on the four rendered gray micrographs, against the truth (issue 35).

Run from the repo root: `.venv/bin/python benchmarks/napari_defaults.py`.

The Restore and Measure widgets do their work through `model/napari/adapter.py` (no napari or Qt
in it): this runs that path with the widgets' default values, in-process, on the images
`benchmarks/gray_micrographs.py` renders (seed 2026: 700 x 500 to 1500 x 1100, PNG and 8- and
16-bit TIFF, 60 to 450 cells), read as napari's readers hand them over (the file's own samples, 8
or 16 bit): `restore_options()` (the bundled model's own method, automatic preparation),
`make_restorer`, `restore` of the layer's samples, then `measure` with the pixel size 0.5 um
(what the TIFF tags would give) and min grain 0 (from the image). `tests/test_napari.py` drives
the widgets themselves on the first image. Printed: per image, the input line the widget shows,
grains and planimetric G against the truth; the last stdout line is one JSON object.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

import gray_micrographs as bench  # noqa: E402
from model.napari import adapter  # noqa: E402


def main() -> None:
    options = adapter.restore_options("bundled model")  # the Restore widget's defaults
    started = time.perf_counter()
    restorer = adapter.make_restorer(options)
    load_s = time.perf_counter() - started
    measure = adapter.measure_options(bench.PIXEL_SIZE_UM, 0)  # Measure: the file's 0.5 um, min grain auto
    rows = {}
    for number, kind in enumerate(bench.KINDS):
        image, truth = bench.render(kind, np.random.default_rng([bench.BENCHMARK_SEED, number]))
        true_grains, true_g = bench.truth_of(truth, bench.PIXEL_SIZE_UM)
        line = adapter.preparation_line(adapter.kind_of(image), options)
        begin = time.perf_counter()
        labels = adapter.restore(restorer, image)
        result = adapter.measure(labels, measure)
        seconds = time.perf_counter() - begin
        grains, g = result.table.count, float(result.astm_g_planimetric)
        error = 100.0 * (grains - true_grains) / true_grains
        rows[kind.name] = {"grains": grains, "truth": true_grains, "error_pct": round(error, 1), "g": round(g, 2),
                           "truth_g": round(true_g, 2), "boundary_share": round(float(labels.mean()), 4),
                           "input": line, "seconds": round(seconds, 1)}
        print(f"{kind.name:12s} {line}: grains {grains:4d} (truth {true_grains:4d}, {error:+5.1f} %)  "
              f"G {g:5.2f} (truth {true_g:5.2f}, {g - true_g:+.2f})  boundary {100 * labels.mean():.1f} %",
              flush=True)
    worst = max(abs(r["error_pct"]) for r in rows.values())
    print(json.dumps({"benchmark": "napari_defaults", "date": datetime.date.today().isoformat(),
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
                      "used": adapter.describe(restorer), "load_s": round(load_s, 1), "images": rows,
                      "worst_error_pct": worst, "target_3pct_met": worst <= 3.0}))


if __name__ == "__main__":
    main()
