"""Benchmark: polySim alone (plain and with its fprintf muted) vs. the CLI serially and on 1 and 2 workers.

Run from the repo root: `.venv/bin/python benchmarks/generate.py [--count N] [--size S]`.
The last printed line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zarr  # noqa: E402

from pipeline import polysim  # noqa: E402
from pipeline.config import GenerationConfig  # noqa: E402
from pipeline.polysim import NO_PATCH_ENV, simulate  # noqa: E402
from pipeline.sample import draw  # noqa: E402

SEED = 0
CLI = ROOT / "cli.py"


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def time_polysim(count: int, size: int, muted: bool) -> float:
    """Seconds spent in polySim for samples 0..count-1, with the pipeline's exact parameters.

    muted: with polySim's fprintf made a no-op (what the pipeline does), else polySim as shipped.
    """
    if muted:
        reason = polysim.mute_fprintf()
        if reason:
            sys.exit(f"cannot mute polySim's fprintf here: {reason}")
    else:
        polysim.unmute_fprintf()
    config = GenerationConfig(size=size)
    total = 0.0
    for i in range(count):
        draws, _ = draw(config, SEED, i)  # the very parameters make_sample gives polySim
        start = time.perf_counter()
        simulate(config.size, draws.nucleation_rate, draws.growth_rate, config.height, draws.polysim_seed)
        total += time.perf_counter() - start
    return total


def _polysim_share(args: tuple[int, int, int, int]) -> float:
    """polySim on samples i = first, first + step, ... < count (one process's share)."""
    first, step, count, size = args
    config = GenerationConfig(size=size)
    for i in range(first, count, step):
        draws, _ = draw(config, SEED, i)
        simulate(config.size, draws.nucleation_rate, draws.growth_rate, config.height, draws.polysim_seed)
    return 0.0


def time_polysim_side_by_side(count: int, size: int, processes: int = 2) -> float:
    """Wall seconds of polySim alone on samples 0..count-1 split over `processes` processes.

    No pipeline, no Dask: how well the machine itself runs two polySim processes at once (shared
    caches, memory bandwidth, and whatever else the hypervisor shares), the ceiling of any
    multi-worker efficiency. Process start-up is excluded (the pool runs one sample first).
    """
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        pool.map(_polysim_share, [(k, processes, processes, size) for k in range(processes)], chunksize=1)
        start = time.perf_counter()
        pool.map(_polysim_share, [(k, processes, count, size) for k in range(processes)], chunksize=1)
        return time.perf_counter() - start


def time_cli(count: int, size: int, workers: int, store: Path, cwd: Path, muted: bool = True) -> float:
    """Wall-clock seconds of one `cli.py generate` subprocess, interpreter start-up included."""
    command = [sys.executable, str(CLI), "generate", "--count", str(count), "--size", str(size),
               "--seed", str(SEED), "--out", str(store), "--workers", str(workers), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != NO_PATCH_ENV} | ({} if muted else {NO_PATCH_ENV: "1"})
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"cli.py failed (workers={workers}, rc={result.returncode}):\n{result.stderr}")
    return elapsed


def arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a Zarr store, by its path inside the store."""
    members = zarr.open_group(str(path), mode="r").members(max_depth=None)
    return {name: member[...] for name, member in members if isinstance(member, zarr.Array)}


def identical(paths: list[Path]) -> bool:
    """Whether all stores hold the same array names with byte-identical contents."""
    reference = arrays(paths[0])
    for path in paths[1:]:
        other = arrays(path)
        if other.keys() != reference.keys():
            return False
        for name, a in reference.items():
            b = other[name]
            nan = a.dtype.kind in "fc"
            if a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=nan):
                log(f"difference in {name} of {path.name}")
                return False
    return True


def disk_bytes(path: Path) -> int:
    """Total size of the files under `path`."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    """Run all measurements and print the JSON summary as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    count, size = args.count, args.size

    log(f"polySim alone as shipped, {count} samples at {size} px ...")
    plain_rate = count / time_polysim(count, size, muted=False)
    log(f"  {plain_rate:.2f} pairs/s")
    log("polySim alone with its fprintf muted, the same samples ...")
    polysim_rate = count / time_polysim(count, size, muted=True)
    log(f"  {polysim_rate:.2f} pairs/s ({polysim_rate / plain_rate:.2f}x)")
    log("polySim alone (muted), the same samples over 2 processes side by side ...")
    side_by_side_rate = count / time_polysim_side_by_side(count, size)
    log(f"  {side_by_side_rate:.2f} pairs/s ({side_by_side_rate / (2 * polysim_rate):.2f} of twice the serial rate)")

    figures: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        stores = []
        runs = (("serial", 0, True), ("dask_1", 1, True), ("dask_2", 2, True), ("dask_2_plain_polysim", 2, False))
        for label, workers, muted in runs:
            store = tmp / f"{label}.zarr"
            log(f"cli.py --workers {workers}{'' if muted else f' with {NO_PATCH_ENV}=1'} ...")
            seconds = time_cli(count, size, workers, store, tmp, muted)
            rate = count / seconds
            figures[label] = {"workers": workers, "seconds": round(seconds, 3), "pairs_per_s": round(rate, 3),
                              "efficiency": round(rate / (max(workers, 1) * polysim_rate), 3),
                              "x_plain_polysim": round(rate / plain_rate, 3)}
            log(f"  {seconds:.1f} s, {rate:.2f} pairs/s, efficiency {figures[label]['efficiency']:.2f}, "
                f"{figures[label]['x_plain_polysim']:.2f}x plain polySim")
            stores.append(store)
        same = identical(stores)
        last = tmp / "dask_2.zarr"  # the default run: 2 workers, fprintf muted
        pair_bytes = (disk_bytes(last / "micro") + disk_bytes(last / "label")) / count
        store_bytes = disk_bytes(last) / count
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "count": count, "size": size, "seed": SEED,
        "polysim_plain_pairs_per_s": round(plain_rate, 3),
        "polysim_pairs_per_s": round(polysim_rate, 3),
        "polysim_muted_speedup": round(polysim_rate / plain_rate, 3),
        "polysim_2_processes_pairs_per_s": round(side_by_side_rate, 3),
        "polysim_2_processes_efficiency": round(side_by_side_rate / (2 * polysim_rate), 3),
        **figures,
        "identical": same,
        "bytes_per_pair_micro_label": round(pair_bytes),
        "bytes_per_pair_store": round(store_bytes),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "machine": platform.machine(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
