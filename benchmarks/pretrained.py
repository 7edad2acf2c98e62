"""Benchmark: the bundled model's table (model/pretrained/README.md) on a library's test split.

Run from the repo root, on the seed-0 14,999-pair 512 px library:

    .venv/bin/python cli.py generate --count 14999 --size 512 --out generated_data/reconstruction.zarr
    .venv/bin/python benchmarks/pretrained.py generated_data/reconstruction.zarr [--limit N] [--model PATH]

It runs the `evaluate` command's own code with the model's validation-chosen settings: the
`model+bridge` and `model` rows (the first is the bundled model's default method), beside
identity and bridge, on the same samples. It prints the markdown table, then, as its last line,
one JSON object with every figure (`results`, by row), the settings and the wall time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import quiet_tensorflow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="library store (the seed-0 14,999-pair 512 px library for the card)")
    parser.add_argument("--model", default=None, help="a .keras model [default: the bundled one]")
    parser.add_argument("--split", default="test", choices=("test", "val"))
    parser.add_argument("--limit", type=int, default=None, help="score only the first N samples of the split")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", default=None, help="folder for metrics.json, report.md, evaluation.png")
    args = parser.parse_args()

    quiet_tensorflow()
    from model.scoring.evaluate import evaluate, saved_model

    method = saved_model(args.model, args.batch, plus_bridge=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pretrained-"))
    started = time.perf_counter()
    evaluation = evaluate(args.store, method, out, args.split, args.limit)
    seconds = time.perf_counter() - started
    print(evaluation.table())
    print(json.dumps({
        "store": str(Path(args.store).absolute()), "split": args.split, "limit": args.limit,
        "model": method.name, "settings": method.settings, "results": evaluation.results,
        "seconds": round(seconds, 1), "out": str(out),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
