"""Benchmark: seconds to measure one 2048 x 2048 boundary image (the outputs aside).

Run from the repo root: `.venv/bin/python benchmarks/measure_speed.py [--size 2048] [--repeat 5]`.
The image is a known-answer Voronoi tessellation (benchmarks/measure_known.py: 48 px cells, 3 px
lines, about 2,000 grains); `model.measure.grains.measure_boundary` runs with the defaults
(`--min-grain` from the image, lines at 0, 45, 90 and 135 degrees), `--repeat` times. Printed:
the median wall-clock and process CPU seconds (the CPU time is what the machine's load does not
change). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_known import known_image  # noqa: E402
from model.measure.grains import measure_boundary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    image, _, _ = known_image("voronoi", args.size, 48.0, 3, seed=1)
    wall, cpu = [], []
    for _ in range(args.repeat):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        found = measure_boundary(image, 1.0, None)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    result = {"size": args.size, "grains": found.table.count, "crossings": found.intercepts,
              "wall_s_median": round(statistics.median(wall), 3), "cpu_s_median": round(statistics.median(cpu), 3),
              "wall_s": [round(w, 3) for w in wall], "load_average": [round(v, 2) for v in os.getloadavg()],
              "date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    print(f"{args.size} px: median {result['wall_s_median']} s wall, {result['cpu_s_median']} s CPU", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
