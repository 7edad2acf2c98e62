"""Benchmark: the classical baselines scored by the metric suite on the test split of a store.

Run from the repo root: `.venv/bin/python benchmarks/evaluate.py STORE [--limit N]`.
Progress goes to stderr; the last printed line is one JSON object with every figure:
images scored, metric-suite speed (triples scored per second, metrics alone), the speed of
each baseline (images per second, baseline alone), every metric for every baseline, and the
wall time of the `evaluate` command's own code (`model.scoring.evaluate.evaluate`, scoring the
identity baseline with the bridge row beside it, files written) on the same samples.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model.methods.classical import BASELINES  # noqa: E402
from model.scoring.metrics import MetricAccumulator  # noqa: E402
from pipeline.sample import TEST  # noqa: E402
from pipeline.store import LibraryStore  # noqa: E402

PROGRESS_EVERY = 100


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def test_indices(store: LibraryStore, limit: int | None) -> np.ndarray:
    """Indices of the done test samples, in order, at most `limit` of them."""
    indices = np.flatnonzero(store.done() & (store.metadata("split") == TEST))
    return indices if limit is None else indices[:limit]


def evaluate(store: LibraryStore, indices: np.ndarray) -> dict[str, object]:
    """Run every baseline on every sample and score it; returns the figures."""
    scores = {name: MetricAccumulator() for name in BASELINES}
    baseline_seconds = dict.fromkeys(BASELINES, 0.0)
    metric_seconds = 0.0
    started = time.perf_counter()
    for n, index in enumerate(indices, 1):
        micro, label = store.read("micro", int(index)), store.read("label", int(index))
        for name, baseline in BASELINES.items():
            tick = time.perf_counter()
            prediction = baseline(micro)
            tock = time.perf_counter()
            scores[name].update(prediction, label, micro)
            baseline_seconds[name] += tock - tick
            metric_seconds += time.perf_counter() - tock
        if n % PROGRESS_EVERY == 0 or n == len(indices):
            elapsed = time.perf_counter() - started
            line = ", ".join(f"{name} gce {acc.result()['grain_count_error']:.3f}" for name, acc in scores.items())
            log(f"{n}/{len(indices)} samples, {elapsed:.0f} s: {line}")
    triples = len(indices) * len(BASELINES)
    return {
        "images": len(indices),
        "metrics_images_per_s": triples / metric_seconds if metric_seconds else None,
        **{f"{name}_images_per_s": len(indices) / s if s else None for name, s in baseline_seconds.items()},
        "seconds": time.perf_counter() - started,
        **{name: acc.result() for name, acc in scores.items()},
    }


def time_command(store: Path, limit: int | None) -> float:
    """Wall seconds of `cli.py evaluate --baseline identity` (its library call) on the test split."""
    import tempfile

    from model.scoring.evaluate import baseline, evaluate as score

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        score(store, baseline("identity"), out, "test", limit)
        seconds = time.perf_counter() - started
    log(f"evaluate --baseline identity (identity and bridge rows): {seconds:.1f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a Reconstruction-GB store (read only)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N test samples")
    args = parser.parse_args()
    if args.limit is not None and args.limit <= 0:
        parser.error("--limit must be > 0")

    store = LibraryStore.open(args.store)
    indices = test_indices(store, args.limit)
    if not len(indices):
        sys.exit(f"{args.store} has no done test sample")
    log(f"scoring {len(indices)} test samples of {store.path} ({store.config.size} px) "
        f"with {', '.join(BASELINES)}")
    figures = evaluate(store, indices)
    figures["evaluate_command_seconds"] = time_command(store.path, args.limit)
    figures = {
        "store": str(store.path),
        "size": store.config.size,
        "limit": args.limit,
        **figures,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "python": platform.python_version(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
