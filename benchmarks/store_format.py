"""Benchmark: store format 1 against format 2, in one run: reader samples/s, generation pairs/s, files.

    python benchmarks/store_format.py --v1 STORE1 --v2 STORE2 [--samples 3000] [--repeats 3]
                                      [--generate 400] [--size 512] [--baseline-ref main]

STORE1 is a format-1 library (made by the code before format 2), STORE2 the same library as
format 2 (`python cli.py upgrade STORE1 --out STORE2`). Reader: the same random order of done
samples, micro + label, read by format 1's direct reader (one file read + Blosc decode per image,
reproduced below since the project no longer reads format 1) and by format 2's ImageReader (one
byte-range read + CRC32C + Blosc decode per image, shard indices kept); runs alternate, median
quoted. Generation: `cli.py generate --count N --size S --workers 2` of the code at
--baseline-ref (format 1, extracted with `git archive`) and of this tree, alternating.
Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numcodecs  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402

from pipeline.executors import quiet_native_threads  # noqa: E402
from pipeline.store import LibraryStore  # noqa: E402

RATE = re.compile(r"\(([\d.]+) pairs/s\)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Format1Reader:
    """Format 1's ImageReader as it was: `<array>/c.<i>.0.0` read whole, decoded with numcodecs Blosc."""

    def __init__(self, path: Path):
        group = zarr.open_group(str(path), mode="r")
        self.targets = []
        for name in ("micro", "label"):
            blosc = group[name].metadata.codecs[1]
            shuffle = {"shuffle": numcodecs.Blosc.SHUFFLE, "bitshuffle": numcodecs.Blosc.BITSHUFFLE,
                       "noshuffle": numcodecs.Blosc.NOSHUFFLE}[blosc.shuffle.value]
            codec = numcodecs.Blosc(cname=blosc.cname.value, clevel=blosc.clevel, shuffle=shuffle,
                                    blocksize=blosc.blocksize, typesize=1)
            self.targets.append((path / name, codec, tuple(group[name].shape[1:])))

    def read(self, index: int) -> tuple[np.ndarray, ...]:
        return tuple(np.frombuffer(codec.decode((root / f"c.{index}.0.0").read_bytes()), np.uint8).reshape(shape)
                     for root, codec, shape in self.targets)


def read_rate(make_reader, order: np.ndarray) -> tuple[float, float]:
    """Samples per wall second and per CPU second of reading micro + label of `order` with a fresh reader.

    CPU seconds are the steadier figure on a shared machine: other users' load stretches wall time.
    """
    reader = make_reader()
    started, cpu = time.perf_counter(), time.process_time()
    for index in order:
        reader.read(int(index))
    return len(order) / (time.perf_counter() - started), len(order) / (time.process_time() - cpu)


def generate_rate(source: Path, out: Path, count: int, size: int) -> float:
    """Pairs/s that `cli.py generate` of the code in `source` reports (2 local workers)."""
    command = [sys.executable, str(source / "cli.py"), "generate", "--count", str(count), "--size", str(size),
               "--out", str(out), "--workers", "2", "--no-progress"]
    result = subprocess.run(command, cwd=out.parent, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"generate failed in {source}:\n{result.stdout}{result.stderr}")
    return float(RATE.search(result.stdout).group(1))


def files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--v1", type=Path, required=True)
    parser.add_argument("--v2", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generate", type=int, default=400, help="pairs per generation run (0: skip)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--baseline-ref", default="main")
    args = parser.parse_args()
    quiet_native_threads()

    store = LibraryStore.open(args.v2)
    done = np.flatnonzero(store.done())
    order = np.random.default_rng(0).permutation(done)[: args.samples]
    readers = {"format1": lambda: Format1Reader(args.v1.absolute()),
               "format2": lambda: LibraryStore.open(args.v2).image_reader(("micro", "label"))}
    for name, make in readers.items():  # the same pairs from both
        a, b = make(), make()
        assert all(np.array_equal(x, y) for i in order[:50] for x, y in zip(a.read(int(i)), b.read(int(i))))
        read_rate(make, order[:200])  # warm-up: imports, page cache
    rates: dict[str, list[float]] = {name: [] for name in readers}
    cpu_rates: dict[str, list[float]] = {name: [] for name in readers}
    for run in range(args.repeats):
        for name, make in readers.items():
            wall, cpu = read_rate(make, order)
            rates[name].append(wall)
            cpu_rates[name].append(cpu)
            log(f"reader {name} run {run + 1}: {wall:.0f} samples/s, {cpu:.0f} samples per CPU second")

    generation: dict[str, list[float]] = {"format1": [], "format2": []}
    if args.generate:
        with tempfile.TemporaryDirectory(prefix="bench-format-") as tmp:
            baseline = Path(tmp) / "baseline"
            baseline.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_ref], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
            for run in range(args.repeats):
                for name, source in (("format1", baseline), ("format2", REPO)):
                    out = Path(tmp) / f"{name}-{run}.zarr"
                    generation[name].append(generate_rate(source, out, args.generate, args.size))
                    log(f"generate {name} run {run + 1}: {generation[name][-1]:.1f} pairs/s, {files(out)} files")
    print(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "v1": str(args.v1), "v2": str(args.v2), "size": store.config.size, "count": store.count,
        "shard_samples": store.shard, "samples_read": len(order),
        "files": {"format1": files(args.v1), "format2": files(args.v2)},
        "reader_samples_per_s_median": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "reader_samples_per_s_runs": {k: [round(r, 1) for r in v] for k, v in rates.items()},
        "reader_samples_per_cpu_s_median": {k: round(statistics.median(v), 1) for k, v in cpu_rates.items()},
        "reader_samples_per_cpu_s_runs": {k: [round(r, 1) for r in v] for k, v in cpu_rates.items()},
        "generate_pairs": args.generate, "generate_size": args.size, "baseline_ref": args.baseline_ref,
        "generate_pairs_per_s_median": {k: round(statistics.median(v), 2) for k, v in generation.items() if v},
        "generate_pairs_per_s_runs": generation,
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
