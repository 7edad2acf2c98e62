"""Benchmark: seconds and memory of `measure --restore` on a folder of 2048 x 2048 gray micrographs (issue 35).

Run from the repo root: `.venv/bin/python benchmarks/measure_restore_speed.py [--count 4] [--size 2048]
[--method M]`.

The images are rendered as `benchmarks/gray_micrographs.py` renders its micrographs (Voronoi grains in
gray levels 120-205, dark boundaries 3 px wide with faded stretches, an illumination gradient, blur and
noise; 1,000 cells per 2048 x 2048 image, seed 2026), 8-bit PNG. The README's first command then runs
on the folder, as a user runs it, in a child process: `cli.py measure --restore DIR --out OUT
--pixel-size 0.5` (with `--method M` when given), with the time of each image's work (restore,
measure, its output files) taken around the function `measure` calls per image. Printed: the
median and each image's seconds of work (and the median CPU seconds, all threads), the start-up
(process start to the first image: imports, the model loaded once per run), the whole run's wall
clock, the child's peak resident memory (`ru_maxrss`) and the grains found against the truth. The
last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CELLS_PER_MPX = 1000 / (2048 * 2048 / 1e6)


def child(folder: str, out: str, method: str | None, timings: str) -> None:
    """In the child: the CLI's `measure --restore` with each image's work timed; timings written as JSON."""
    started = time.perf_counter()
    import model.measure.run as run

    seconds: list[float] = []
    cpu: list[float] = []  # process CPU seconds (all threads): what the machine's load does not change
    first: list[float] = []
    measure_one = run._measure_one

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        begin, begin_cpu = time.perf_counter(), time.process_time()
        if not first:
            first.append(begin - started)
        try:
            return measure_one(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - begin)
            cpu.append(time.process_time() - begin_cpu)

    run._measure_one = timed
    from cli import cli

    args = ["measure", "--restore", folder, "--out", out, "--pixel-size", "0.5"] + (
        ["--method", method] if method else [])
    try:
        cli.main(args, standalone_mode=False)
    finally:
        Path(timings).write_text(json.dumps({"seconds": seconds, "cpu": cpu, "startup_s": first[0] if first else None}))


def render_folder(folder: Path, count: int, size: int) -> dict[str, int]:
    """`count` gray micrographs of size x size into `folder`; each name's true grain count."""
    import cv2
    import numpy as np

    import gray_micrographs as bench

    kind = bench.Kind(f"gray{size}", size, size, round(CELLS_PER_MPX * size * size / 1e6), 3, ".png", 8)
    folder.mkdir(parents=True, exist_ok=True)
    truths = {}
    for number in range(count):
        image, truth = bench.render(kind, np.random.default_rng([bench.BENCHMARK_SEED, 100 + number]))
        name = f"{kind.name}_{number}"
        if not cv2.imwrite(str(folder / f"{name}.png"), image):
            raise OSError(f"cannot write {folder / name}.png")
        truths[name] = bench.truth_of(truth, bench.PIXEL_SIZE_UM)[0]
    return truths


def found_grains(out: Path) -> dict[str, int]:
    """Grains per image from summary.csv's image rows."""
    import csv

    with open(out / "summary.csv", newline="") as handle:
        return {row["image"]: int(row["grains"]) for row in csv.DictReader(handle) if row["level"] == "image"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--method", default=None, help="measure's --method [default: none given, as the README]")
    parser.add_argument("--child", nargs=3, metavar=("DIR", "OUT", "TIMINGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.method, args.child[2])
        return
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        print(f"rendering {args.count} micrographs of {args.size} px...", file=sys.stderr, flush=True)
        truths = render_folder(work / "in", args.count, args.size)
        command = [sys.executable, __file__, "--child", str(work / "in"), str(work / "out"), str(work / "t.json")] + (
            ["--method", args.method] if args.method else [])
        begin = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - begin
        if status != 0:
            sys.exit(f"measure --restore failed ({status}):\n{output[-3000:]}")
        timings = json.loads((work / "t.json").read_text())
        found = found_grains(work / "out")
    seconds = timings["seconds"]
    result = {
        "benchmark": "measure_restore_speed", "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "python": platform.python_version(), "command": "cli.py measure --restore DIR --out OUT --pixel-size 0.5"
        + (f" --method {args.method}" if args.method else ""),
        "images": len(seconds), "size": args.size,
        "median_s_per_image": round(statistics.median(seconds), 2), "seconds": [round(s, 2) for s in seconds],
        "median_cpu_s_per_image": round(statistics.median(timings["cpu"]), 2),
        "startup_s": round(timings["startup_s"], 2), "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024), "grains": found, "truth": truths,
    }
    print("\n".join(line for line in output.splitlines() if line.strip()))
    print(f"median {result['median_s_per_image']} s of work per {args.size} px image ({result['seconds']}; "
          f"CPU {result['median_cpu_s_per_image']} s); "
          f"start-up {result['startup_s']} s; wall {result['wall_s']} s; peak {result['peak_rss_mb']} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
