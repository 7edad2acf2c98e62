"""Benchmark: what a `general`-preset library holds, from its per-sample arrays and a few images.

Run from the repo root: `.venv/bin/python benchmarks/general_library.py STORE [--images N]`.
Prints a markdown table, then one JSON object as its last line (house rule for benchmarks/):
the spread of grains per image and of mean grain area (image area / grains, over all done
samples; for an `aligned` store also split into its own draws and its general half), the
boundary widths drawn, the share of study samples, the erased share of the true
boundary, and, over the first N done images, the largest-to-median grain area within an image
(the breadth of one image's size distribution) and the share of grains elongated beyond 2:1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.presets import source_of  # noqa: E402
from pipeline.store import LibraryStore  # noqa: E402


def grain_shapes(grains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas (px) and aspect ratios (major / minor axis of the second moments) of every grain."""
    areas, aspects = [], []
    for grain in np.unique(grains):
        ys, xs = np.nonzero(grains == grain)
        if len(ys) < 20:
            continue
        moments = np.cov(np.stack([xs, ys]).astype(np.float64))
        low, high = np.linalg.eigvalsh(moments)
        areas.append(len(ys))
        aspects.append(float(np.sqrt(high / max(low, 1e-9))))
    return np.array(areas), np.array(aspects)


PERCENTILES = (("min", 0), ("p5", 5), ("median", 50), ("p95", 95), ("max", 100))


def spread(values: np.ndarray) -> dict[str, float]:
    """min, 5th percentile, median, 95th percentile and max of `values`."""
    return {q: float(np.percentile(values, p)) for q, p in PERCENTILES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--images", type=int, default=100, help="images read for the within-image figures")
    args = parser.parse_args()
    store = LibraryStore.open(args.store)
    done = np.flatnonzero(store.done())
    size = store.config.size
    grains_per_image = store.metadata("num_grains")[done].astype(np.float64)
    widths = store.metadata("dilation")[done]
    erased = store.metadata("erased_fraction")[done]
    config, seed = store.config, store.seed
    sources = [source_of(config, seed, int(i)).preset for i in done]
    aligned = np.array([config.preset == "aligned" and source == "aligned" for source in sources], dtype=bool)
    study = np.array([source == "study" for source in sources])
    mean_area = size * size / grains_per_image
    reader = store.image_reader(("grains",))
    spreads, elongated = [], []
    for i in done[:args.images]:
        areas, aspects = grain_shapes(reader.read(int(i))[0])
        spreads.append(float(areas.max() / np.median(areas)))
        elongated.append(float(np.mean(aspects > 2)))
    figures = {
        "store": str(store.path), "done": int(len(done)), "size": size, "preset": config.preset,
        "study_share": float(study.mean()),
        "grains_per_image": spread(grains_per_image),
        "mean_grain_area_px": spread(mean_area),
        "mean_area_span_p5_p95": float(np.percentile(mean_area, 95) / np.percentile(mean_area, 5)),
        "mean_area_span_min_max": float(mean_area.max() / mean_area.min()),
        "widths": {int(w): int((widths == w).sum()) for w in np.unique(widths)},
        "erased_fraction_median": float(np.median(erased)),
        "images_read": len(spreads),
        "largest_to_median_area_median": float(np.median(spreads)),
        "elongated_share_median": float(np.median(elongated)),
        "elongated_share_p90": float(np.percentile(elongated, 90)),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if config.preset == "aligned":
        figures["aligned_share"] = float(aligned.mean())
        figures["grains_per_image_aligned_draws"] = spread(grains_per_image[aligned])
        figures["grains_per_image_general_half"] = spread(grains_per_image[~aligned])
    print("| figure | value |\n| --- | --- |")
    for key in ("done", "study_share", "mean_area_span_p5_p95", "mean_area_span_min_max",
                "largest_to_median_area_median", "elongated_share_median", "erased_fraction_median"):
        print(f"| {key} | {figures[key]:.3g} |" if isinstance(figures[key], float) else f"| {key} | {figures[key]} |")
    print(f"| grains per image (min, p5, median, p95, max) | {', '.join(f'{v:.0f}' for v in figures['grains_per_image'].values())} |")
    for key, label in (("grains_per_image_aligned_draws", "aligned store's own draws"),
                       ("grains_per_image_general_half", "aligned store's general half")):
        if key in figures:
            print(f"| grains per image, {label} | {', '.join(f'{v:.0f}' for v in figures[key].values())} |")
    print(f"| widths (px: samples) | {figures['widths']} |")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
