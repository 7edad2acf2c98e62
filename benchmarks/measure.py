"""Benchmark: grain statistics from rendered gray micrographs, per restoration method, against the truth.

Run from the repo root: `.venv/bin/python benchmarks/measure.py STORE [--model PATH] [--split test]
[--limit N] [--binarize otsu] [--sweep-min-speck]`.

Each sample of the split: the library's fragmented boundary image (`micro`, fragmented as the
library does) is rendered as a gray micrograph (`render`: shading, blur, noise, dark dust;
deterministic per sample), then restored with each method exactly as `measure --restore` does
(model.inference.restore.Restorer) and measured (model.measure.grains.measure_boundary); the
ground truth is the same measurement of the sample's `label`. Reported per method: mean
relative grain-count error and mean |G - G_true| for the planimetric and intercept ASTM numbers.
`none` (preparation and speck filter, no restoration) is the floor. Model rows need --model or
the bundled model; without either they are left out. With --sweep-min-speck, the bridge method is
run for several --min-speck values instead (use --split val: the default is chosen there).
The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model.inference.restore import RestoreOptions, Restorer  # noqa: E402
from model.measure.grains import measure_boundary  # noqa: E402
from model.pretrained import BUNDLED_MODEL  # noqa: E402
from pipeline.store import LibraryStore  # noqa: E402

SPLITS = {"train": 0, "val": 1, "test": 2}
SPECK_SWEEP = (0, 5, 10, 20, 30, 50, 80)


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def render(micro: np.ndarray, seed: int, index: int) -> np.ndarray:
    """A gray uint8 micrograph of a boundary image: grains ~175 with a random linear shading of +-25,
    boundaries 70, Gaussian blur (sigma 1), 2 + 40 dark dust dots per 100k px (radius 1-2),
    Gaussian noise (sigma 14). Deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, index])
    height, width = micro.shape
    angle = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:height, 0:width]
    ramp = (np.cos(angle) * (x / width - 0.5) + np.sin(angle) * (y / height - 0.5)) * 50.0
    gray = np.where(micro < 128, 70.0, 175.0 + ramp).astype(np.float32)
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0)
    dots = int(rng.integers(2, 41) * height * width / 100_000)
    for cy, cx, r in zip(rng.integers(0, height, dots), rng.integers(0, width, dots), rng.integers(1, 3, dots)):
        cv2.circle(gray, (int(cx), int(cy)), int(r), 70.0, -1)
    gray += rng.normal(0.0, 14.0, gray.shape).astype(np.float32)
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def score(truth: list[tuple[int, float, float]], found: list[tuple[int, float, float]]) -> dict[str, float]:
    """Mean relative count error and mean |G error| (planimetric, intercept) over images where both are defined."""
    def mean(values: list[float]) -> float:
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    return {
        "grain_count_error": mean([abs(f[0] - t[0]) / t[0] if t[0] else math.nan for t, f in zip(truth, found)]),
        "astm_g_planimetric_error": mean([abs(f[1] - t[1]) for t, f in zip(truth, found)]),
        "astm_g_intercept_error": mean([abs(f[2] - t[2]) for t, f in zip(truth, found)]),
        "grains": mean([float(f[0]) for f in found]),
    }


def figures(boundary: np.ndarray) -> tuple[int, float, float]:
    """(grains, planimetric G, intercept G) of one boundary image."""
    result = measure_boundary(boundary)
    return result.table.count, result.astm_g_planimetric, result.astm_g_intercept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model, if installed")
    parser.add_argument("--split", choices=sorted(SPLITS), default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N samples of the split")
    parser.add_argument("--binarize", choices=["none", "otsu", "adaptive"], default="adaptive")
    parser.add_argument("--denoise", choices=["none", "median", "nlmeans"], default="median")
    parser.add_argument("--seed", type=int, default=0, help="rendering seed")
    parser.add_argument("--sweep-min-speck", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    library = LibraryStore.open(args.store)
    chosen = np.flatnonzero(library.done() & (library.metadata("split") == SPLITS[args.split]))[: args.limit]
    model = args.model if args.model is not None else (BUNDLED_MODEL if BUNDLED_MODEL.is_file() else None)
    prepare = {"binarize": args.binarize, "denoise": args.denoise}
    if args.sweep_min_speck:
        runs = {f"bridge min_speck={n}": RestoreOptions(method="bridge", min_speck=n, **prepare) for n in SPECK_SWEEP}
    else:
        runs = {"none": RestoreOptions(method="none", **prepare), "bridge": RestoreOptions(method="bridge", **prepare)}
        if model is not None:
            runs["model"] = RestoreOptions(method="model", model=model, **prepare)
            runs["model+bridge"] = RestoreOptions(method="model+bridge", model=model, **prepare)
        else:
            log("no --model and no bundled model: model rows left out")
    restorers = {name: Restorer(options) for name, options in runs.items()}
    for name, restorer in restorers.items():
        log(restorer.describe())

    truth: list[tuple[int, float, float]] = []
    found: dict[str, list[tuple[int, float, float]]] = {name: [] for name in runs}
    seconds = dict.fromkeys(runs, 0.0)
    for k, index in enumerate(chosen, start=1):
        truth.append(figures(library.read("label", int(index))))
        gray = render(library.read("micro", int(index)), args.seed, int(index)).astype(np.float32) / 255
        for name, restorer in restorers.items():
            start = time.perf_counter()
            found[name].append(figures(restorer.restore(gray)[0]))
            seconds[name] += time.perf_counter() - start
        if k % 10 == 0:
            log(f"{k}/{len(chosen)} samples")

    results = {name: {**score(truth, found[name]), "seconds_per_image": seconds[name] / max(1, len(chosen))}
               for name in runs}
    header = "| method | grain-count error | planimetric G error | intercept G error | grains (truth {:.1f}) | s/image |"
    print(header.format(float(np.mean([t[0] for t in truth])) if truth else math.nan))
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['grain_count_error']:.4f} | {r['astm_g_planimetric_error']:.4f} | "
              f"{r['astm_g_intercept_error']:.4f} | {r['grains']:.1f} | {r['seconds_per_image']:.3f} |")
    print(json.dumps({
        "store": str(args.store), "split": args.split, "samples": int(len(chosen)), "model": str(model),
        "prepare": prepare, "render_seed": args.seed, "used": {n: r.describe() for n, r in restorers.items()},
        "truth_grains": float(np.mean([t[0] for t in truth])) if truth else None, "results": results,
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {platform.python_version()}",
    }))


if __name__ == "__main__":
    main()
