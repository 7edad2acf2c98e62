"""Benchmark: writing image chunks through zarr vs. the pipeline's direct ImageWriter.

Run from the repo root: `.venv/bin/python benchmarks/store_write.py [--count N] [--size S]`.
Progress goes to stderr; the last stdout line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import zarr  # noqa: E402

from pipeline.config import GenerationConfig  # noqa: E402
from pipeline.executors import quiet_native_threads  # noqa: E402
from pipeline.presets import make_sample  # noqa: E402
from pipeline.sample import Sample  # noqa: E402
from pipeline.store import IMAGE_ARRAYS, SAMPLE_IMAGES, LibraryStore  # noqa: E402

SEED = 0
BLOCK = 32  # samples per task, as the pipeline writes them
NAMES = SAMPLE_IMAGES
TRIM_ENV = {"MALLOC_TRIM_THRESHOLD_": "65536"}  # what Dask's nanny sets in its workers


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def write_zarr(store: LibraryStore, block: Sequence[Sample], config: dict[str, bool] | None = None) -> None:
    """Write a block through zarr itself, one sample and array at a time."""
    arrays = [store.group[name].with_config(config) if config else store.group[name] for name in NAMES]
    for sample in block:
        for name, array in zip(NAMES, arrays):
            array[sample.index] = getattr(sample, name)


WRITERS: dict[str, Callable[[LibraryStore, Sequence[Sample]], None]] = {
    "zarr_default": write_zarr,
    "zarr_write_empty": lambda store, block: write_zarr(store, block, {"write_empty_chunks": True}),
    "direct": lambda store, block: store.image_writer().write(block),
}


def time_writes(path: str, samples: Sequence[Sample], store: LibraryStore) -> dict[str, float]:
    """CPU (all threads) and wall milliseconds per pair of writing all samples' images."""
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(samples), BLOCK):
        WRITERS[path](store, samples[start : start + BLOCK])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_pair": round(1000 * cpu / len(samples), 3),
            "wall_ms_per_pair": round(1000 * wall / len(samples), 3)}


def matches(store: LibraryStore, samples: Sequence[Sample]) -> bool:
    """Whether zarr decodes the store's images to exactly the in-memory samples."""
    group = zarr.open_group(str(store.path), mode="r")
    return all(np.array_equal(group[name][:], np.stack([getattr(s, name) for s in samples])) for name in NAMES)


def generate_and_write(count: int, size: int, out: Path) -> dict[str, float]:
    """make_sample + direct write, block by block: ms per pair (CPU of both, CPU of the writes, wall)."""
    config = GenerationConfig(size=size)
    store = LibraryStore.create(out, config, SEED, count)
    write_cpu = 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, count, BLOCK):
        block = [make_sample(config, SEED, i) for i in range(start, min(start + BLOCK, count))]
        before = time.process_time()
        store.image_writer().write(block)
        write_cpu += time.process_time() - before
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_pair": round(1000 * cpu / count, 3),
            "write_cpu_ms_per_pair": round(1000 * write_cpu / count, 3),
            "wall_ms_per_pair": round(1000 * wall / count, 3)}


def run_subprocess(count: int, size: int, extra_env: dict[str, str]) -> dict[str, float]:
    """generate_and_write in a fresh interpreter with exactly `extra_env` of the malloc variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | extra_env
    command = [sys.executable, __file__, "--only", "direct", "--count", str(count), "--size", str(size)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"subprocess failed (rc={result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run all measurements and print the JSON summary as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--only", choices=["direct"], help="internal: one make_sample + write run, JSON only")
    args = parser.parse_args()
    count, size = args.count, args.size
    quiet_native_threads()

    if args.only:
        with tempfile.TemporaryDirectory(prefix="bench-store-write-") as tmp:
            print(json.dumps(generate_and_write(count, size, Path(tmp) / "store.zarr")))
        return

    config = GenerationConfig(size=size)
    log(f"making {count} samples at {size} px (not timed) ...")
    samples = [make_sample(config, SEED, i) for i in range(count)]
    figures: dict[str, dict[str, float]] = {}
    same = True
    with tempfile.TemporaryDirectory(prefix="bench-store-write-") as tmp:
        for path in WRITERS:  # warm-up: imports, zarr's event loop and thread pool
            WRITERS[path](LibraryStore.create(Path(tmp) / f"warm-{path}.zarr", config, SEED, count), samples[:2])
        for path in WRITERS:
            store = LibraryStore.create(Path(tmp) / f"{path}.zarr", config, SEED, count)
            figures[path] = time_writes(path, samples, store)
            log(f"{path:>18}: {figures[path]['cpu_ms_per_pair']:8.2f} ms CPU/pair, "
                f"{figures[path]['wall_ms_per_pair']:8.2f} ms wall/pair")
            same = matches(store, samples) and same
        images_bytes = store.bytes_on_disk(IMAGE_ARRAYS) / count  # the direct store
        grains_bytes = store.bytes_on_disk(["grains"]) / count
    log(f"identical: {same}; {images_bytes / 1024:.1f} KiB/pair micro+label, {grains_bytes / 1024:.1f} KiB/pair grains")
    del samples

    for name, env in (("direct_subprocess", {}), ("direct_malloc_trim", TRIM_ENV)):
        log(f"{name}: make_sample + write in a subprocess{' with ' + str(env) if env else ''} ...")
        figures[name] = run_subprocess(count, size, env)
        log(f"{name:>18}: {figures[name]['cpu_ms_per_pair']:8.2f} ms CPU/pair "
            f"({figures[name]['write_cpu_ms_per_pair']:.2f} in writes), "
            f"{figures[name]['wall_ms_per_pair']:8.2f} ms wall/pair")

    print(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "count": count, "size": size, "seed": SEED, "block": BLOCK,
        "zarr": zarr.__version__, "zarr_write_empty_chunks_default": zarr.config.get("array.write_empty_chunks"),
        **figures,
        "identical": same,
        "bytes_per_pair_micro_label": round(images_bytes),
        "bytes_per_pair_grains": round(grains_bytes),
        "malloc_trim_env": TRIM_ENV,
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
