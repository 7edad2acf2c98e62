"""Benchmark: the time to make one pair, per preset, in one process (what a worker spends per sample).

Run from the repo root: `.venv/bin/python benchmarks/presets.py [--count N] [--size S] [--rounds R]`.
Each round makes samples 0..N-1 of every preset in turn (interleaved, so load on the machine
falls on all presets alike); the figure per preset is the median over rounds of the mean time
per pair, and the ratios compare presets within the same run. The target of issue 32: the
micrograph preset costs at most 1.5x the general preset per pair. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import PRESET_RATES, GenerationConfig  # noqa: E402
from pipeline.presets import PRESETS, make_sample  # noqa: E402


def seconds_per_pair(config: GenerationConfig, count: int) -> float:
    """Mean seconds to make samples 0..count-1 of `config` (seed 0)."""
    start = time.perf_counter()
    for index in range(count):
        make_sample(config, 0, index)
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configs = {name: GenerationConfig(size=args.size, preset=name, **PRESET_RATES.get(name, {})) for name in PRESETS}
    times: dict[str, list[float]] = {name: [] for name in PRESETS}
    for round_ in range(args.rounds):
        for name, config in configs.items():
            times[name].append(seconds_per_pair(config, args.count))
            print(f"round {round_ + 1}: {name} {1000 * times[name][-1]:.1f} ms/pair", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>10}: {1000 * value:7.1f} ms/pair (median of {args.rounds} rounds of {args.count})")
    print(json.dumps({
        "benchmark": "presets", "date": datetime.date.today().isoformat(), "machine": platform.machine(),
        "python": platform.python_version(), "size": args.size, "count": args.count, "rounds": args.rounds,
        "ms_per_pair": {name: round(1000 * value, 2) for name, value in medians.items()},
        "micrograph_over_general": round(medians["micrograph"] / medians["general"], 3),
    }))


if __name__ == "__main__":
    main()
