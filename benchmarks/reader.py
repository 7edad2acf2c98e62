"""Benchmark the streaming reader: samples/s alone, and peak RSS of an epoch over 200 vs 5,000 pairs.

    python benchmarks/reader.py --data STORE [--samples 3000] [--batch 4] [--small 200] [--large 5000]

STORE must hold at least --large done pairs (the full 512 px library: `python cli.py generate
--count 14999 --size 512 --out STORE`). Each RSS figure comes from a fresh process that reads one
whole shuffled, augmented training epoch of the first N pairs (as `train --limit N` would); the
study's load-everything trainer is given by arithmetic: N pairs x 2 images x S^2 x 8 bytes (float64).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def epoch(data: str, limit: int | None, batch: int, samples: int | None = None) -> dict[str, float]:
    """Read one training epoch (shuffled, augmented) of the first `limit` pairs; rate and peak RSS."""
    from model import quiet_tensorflow

    quiet_tensorflow()
    from model.data import LibraryReader

    reader = LibraryReader(data, limit)
    dataset = reader.dataset("train", batch, epoch=0, seed=0, shuffle=True, augment=True)
    total, count, started = 0, 0, None
    for x, _ in dataset:
        total += int(x.shape[0])
        if started is None:  # the first batch pays for tf.data's start-up, not for reading
            started = time.perf_counter()
        else:
            count += int(x.shape[0])
        if samples is not None and count >= samples:
            break
    seconds = time.perf_counter() - started
    return {"samples": total, "seconds": seconds, "samples_per_s": count / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(data: str, limit: int | None, batch: int, samples: int | None) -> dict[str, float]:
    """Run `epoch` in a fresh interpreter, so that its peak RSS is its own."""
    command = [sys.executable, __file__, "--data", data, "--batch", str(batch), "--child"]
    command += ["--limit", str(limit)] if limit else []
    command += ["--samples", str(samples)] if samples else []
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--samples", type=int, default=None, help="samples read for the rate [3000]")
    parser.add_argument("--repeats", type=int, default=3, help="rate runs (median quoted)")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(epoch(args.data, args.limit, args.batch, args.samples)))
        return

    from pipeline.store import LibraryStore

    store = LibraryStore.open(args.data)
    size, done = store.config.size, int(store.done().sum())
    if done < args.large:
        sys.exit(f"error: {args.data} has {done} done pairs; --large {args.large} needs that many")
    rates = []
    for run in range(args.repeats):
        result = child(args.data, None, args.batch, args.samples or 3000)
        rates.append(result["samples_per_s"])
        print(f"rate run {run + 1}: {result['samples_per_s']:.0f} samples/s", file=sys.stderr)
    small = child(args.data, args.small, args.batch, None)
    large = child(args.data, args.large, args.batch, None)
    print(f"epoch over {args.small} pairs: {small['peak_rss_mb']:.0f} MB peak; "
          f"over {args.large}: {large['peak_rss_mb']:.0f} MB", file=sys.stderr)
    study_bytes = args.large * 2 * size * size * 8
    print(json.dumps({
        "store": str(store.path), "size": size, "batch": args.batch, "cores": os.cpu_count(),
        "reader_samples_per_s_median": round(statistics.median(rates), 1),
        "reader_samples_per_s_runs": [round(r, 1) for r in rates],
        "target_samples_per_s": 300,
        "epoch_pairs": [args.small, args.large],
        "epoch_train_samples": [small["samples"], large["samples"]],
        "peak_rss_mb": [round(small["peak_rss_mb"], 1), round(large["peak_rss_mb"], 1)],
        "rss_ratio_large_to_small": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "study_load_everything_gb_for_large": round(study_bytes / 1e9, 2),
    }))


if __name__ == "__main__":
    main()
