"""Benchmark: tiled inference (model/inference/predict.py) on one large synthetic micrograph.

Run from the repo root: `.venv/bin/python benchmarks/predict.py [--model PATH] [--size 4096]`.
Without --model, an untrained fully convolutional stand-in of the `small` preset is built (its
speed is that of a trained one; its output is meaningless). Reports megapixels/s of the whole
tiled run, the model's own time on the same batches (timed inside the run), the time of tiling
and blending alone (the same run with an identity model), and the peak RSS of the process.
Progress goes to stderr; the last stdout line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model import quiet_tensorflow  # noqa: E402
from model.inference.predict import DEFAULT_BATCH, Predictor, default_overlap, load_model  # noqa: E402
from model.inference.tiling import count_tiles, predict_tiled  # noqa: E402


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_micrograph(size: int, seed: int = 0) -> np.ndarray:
    """float32 (size, size) in {0, 1}: background 1 with random dark boundary lines."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 255, np.uint8)
    for _ in range(size // 8):
        p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 0, 2)
    return image.astype(np.float32) / 255


def stand_in(tile: int | None) -> Predictor:
    """An untrained fully convolutional Attention U-Net of the `small` preset."""
    from model.network.presets import PRESETS
    from model.network.unet import build_unet

    return Predictor(build_unet(PRESETS["small"], size=None), tile)


def main() -> None:
    """Run the measurements and print the JSON summary as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="a saved .keras model [default: untrained small stand-in]")
    parser.add_argument("--size", type=int, default=4096, help="image side in pixels")
    parser.add_argument("--tile", type=int, default=None, help="tile side [default: the model's]")
    parser.add_argument("--overlap", type=int, default=None, help="overlap [default: tile // 4]")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    args = parser.parse_args()

    quiet_tensorflow()
    before_model = peak_rss_mb()
    predictor = Predictor(load_model(args.model), args.tile) if args.model else stand_in(args.tile)
    overlap = default_overlap(min(predictor.tile)) if args.overlap is None else args.overlap
    image = synthetic_micrograph(args.size)
    tiles = count_tiles(image.shape, predictor.tile, overlap)
    log(f"{args.size}x{args.size} image, {tiles} tiles of {predictor.tile[0]}x{predictor.tile[1]}, "
        f"overlap {overlap}, batch {args.batch}")
    predictor.predict_batch(np.zeros((args.batch, *predictor.tile, 1), np.float32))  # warm-up at the full batch

    model_seconds = 0.0

    def timed(batch: np.ndarray) -> np.ndarray:
        nonlocal model_seconds
        start = time.perf_counter()
        answer = predictor.predict_batch(batch)
        model_seconds += time.perf_counter() - start
        return answer

    rss_before_run = peak_rss_mb()
    start = time.perf_counter()
    probability = predict_tiled(image, timed, predictor.tile, overlap, batch=args.batch)
    full_seconds = time.perf_counter() - start
    rss_after_run = peak_rss_mb()
    log(f"tiled run: {full_seconds:.2f} s, of which model {model_seconds:.2f} s")

    start = time.perf_counter()
    same = predict_tiled(image, lambda batch: batch, predictor.tile, overlap, batch=args.batch)
    tiling_seconds = time.perf_counter() - start
    log(f"tiling + blending alone (identity model): {tiling_seconds:.2f} s; "
        f"max |identity - image| = {float(np.abs(same - image).max()):.2e}")

    megapixels = args.size * args.size / 1e6
    figures = {
        "benchmark": "predict",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "model": str(args.model) if args.model else "untrained small preset (stand-in)",
        "size": args.size, "tile": list(predictor.tile), "overlap": overlap, "batch": args.batch, "tiles": tiles,
        "seconds": round(full_seconds, 3),
        "megapixels_per_s": round(megapixels / full_seconds, 4),
        "model_seconds": round(model_seconds, 3),
        "overhead_seconds": round(full_seconds - model_seconds, 3),
        "overhead_fraction": round((full_seconds - model_seconds) / full_seconds, 4),
        "overhead_vs_model": round((full_seconds - model_seconds) / model_seconds, 4),  # target < 0.10
        "tiling_only_seconds": round(tiling_seconds, 3),
        "image_mb": round(image.nbytes / 1e6, 1),
        "peak_rss_mb_before_model": round(before_model, 1),
        "peak_rss_mb_before_run": round(rss_before_run, 1),
        "peak_rss_mb": round(rss_after_run, 1),
        "probability_range": [float(probability.min()), float(probability.max())],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
