"""Benchmark: a library on a local S3 server (moto) against the same library on local disk (issue 34).

Measures, for `generate --workers W` at S px: pairs/s to local disk and to S3 (the target: S3 at
>= 0.85x), the S3 requests and bytes per pair of generation; and for the training reader
(`LibraryReader.dataset` as `train` reads an epoch: the whole train split shuffled from a folder,
by windows of 8 shards from a bucket, where each shard is then read whole): samples/s from each
store (target: S3 >= 0.8x), the same order from both, and requests and bytes per pair.

Run from the repo root (needs s3fs and moto[server], both in requirements.txt):
    .venv/bin/python benchmarks/object_storage.py [--count 200] [--size 512] [--workers 2] [--reads 400]
The S3 server runs in its own process on 127.0.0.1 (it logs every request; the counts come from
that log). The last printed line is one JSON object with all figures (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BUCKET = "bench"
BATCH = 4
WINDOW = 8  # train's --shuffle-window for a library in object storage (model.training.train.SHUFFLE_WINDOW)


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(log_file: Path) -> tuple[subprocess.Popen, str]:
    """moto's server in its own process; its endpoint once it answers."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=open(log_file, "w"))
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5).read()
            return server, endpoint
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"moto's server did not start: {log_file.read_text()[-2000:]}")
            time.sleep(0.05)
    raise SystemExit("moto's server did not answer within a minute")


def requests_since(log_file: Path, start: int) -> tuple[dict[str, int], int]:
    """Requests by HTTP method in the server's log from byte `start`, and the log's new end."""
    text = log_file.read_text()
    counts: dict[str, int] = {}
    for line in text[start:].splitlines():
        for method in ("GET", "PUT", "HEAD", "POST", "DELETE"):
            if f'"{method} /' in line:
                counts[method] = counts.get(method, 0) + 1
    return counts, len(text)


def generate(out: str, count: int, size: int, workers: int) -> float:
    """Seconds of one `generate` run (the CLI, as a user runs it)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "generate", "--count", str(count), "--size", str(size),
                    "--out", out, "--workers", str(workers), "--no-progress"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def read_rate(location: object, reads: int, window: int) -> tuple[float, int]:
    """Samples/s of the training reader as `train` reads an epoch (LibraryReader.dataset: the train split
    shuffled with --shuffle-window `window`, augmented, batches of BATCH) over its first `reads` samples,
    from making the epoch's dataset to its last batch (the store is opened once a run, before); and the
    bytes fetched from object storage."""
    from model.data import LibraryReader
    from pipeline.store import objects

    fetched = [0]
    originals = {name: getattr(objects.ObjectFiles, name) for name in ("read", "read_range")}

    def counting(call):  # type: ignore[no-untyped-def]
        def counted(self, *args):  # type: ignore[no-untyped-def]
            data = call(self, *args)
            fetched[0] += len(data)
            return data
        return counted

    for name, call in originals.items():
        setattr(objects.ObjectFiles, name, counting(call))
    try:
        reader = LibraryReader(location)  # opened once a run (about 110 small requests to a bucket), not timed
        started = time.perf_counter()
        dataset = reader.dataset("train", BATCH, epoch=0, seed=0, shuffle=True, augment=True, window=window)
        samples = sum(int(x.shape[0]) for x, _ in dataset.take(reads // BATCH))
        return samples / (time.perf_counter() - started), fetched[0]
    finally:
        for name, call in originals.items():
            setattr(objects.ObjectFiles, name, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reads", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as scratch:
        log_file = Path(scratch) / "moto.log"
        server, endpoint = start_server(log_file)
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1", AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
                          AWS_RESPONSE_CHECKSUM_VALIDATION="when_required")
        try:
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            local, url = str(Path(scratch) / "local.zarr"), f"s3://{BUCKET}/lib.zarr"
            log(f"generate {args.count} pairs at {args.size} px on {args.workers} workers: local disk")
            local_s = generate(local, args.count, args.size, args.workers)
            _, mark = requests_since(log_file, 0)
            log("the same to S3")
            s3_s = generate(url, args.count, args.size, args.workers)
            written, mark = requests_since(log_file, mark)
            from pipeline.store import LibraryStore

            stored = LibraryStore.open(url).bytes_on_disk()
            _, mark = requests_since(log_file, mark)
            read_rate(local, 8 * BATCH, 0)  # not timed: TensorFlow's import and tf.data's first graph
            log("reader: local, the whole split shuffled (train's default for a folder)")
            local_rate, _ = read_rate(local, args.reads, 0)
            log(f"reader: local, shuffled by windows of {WINDOW} shards")
            local_window_rate, _ = read_rate(local, args.reads, WINDOW)
            log(f"reader: S3, shuffled by windows of {WINDOW} shards (train's default for a bucket)")
            s3_rate, fetched = read_rate(url, args.reads, WINDOW)
            read, mark = requests_since(log_file, mark)
            log("reader: S3, the whole split shuffled (--shuffle-window 0: one ranged GET an image)")
            s3_ranged_rate, _ = read_rate(url, args.reads, 0)
        finally:
            server.terminate()
            server.wait()
    reads = min(args.reads, int(args.count * 0.7)) // BATCH * BATCH
    result = {
        "benchmark": "object_storage", "date": datetime.date.today().isoformat(),
        "count": args.count, "size": args.size, "workers": args.workers,
        "generate_pairs_per_s": {"local": args.count / local_s, "s3": args.count / s3_s},
        "generate_s3_vs_local": local_s / s3_s,
        "generate_requests_per_pair": {k: v / args.count for k, v in written.items()},
        "generate_bytes_per_pair": stored / args.count,
        "reader_samples_per_s": {"local": local_rate, f"local_window{WINDOW}": local_window_rate,
                                 f"s3_window{WINDOW}": s3_rate, "s3_window0": s3_ranged_rate},
        "reader_s3_vs_local": s3_rate / local_rate,
        "reader_s3_vs_local_same_order": s3_rate / local_window_rate,
        "reader_requests_per_pair": {k: v / reads for k, v in read.items()},
        "reader_bytes_per_pair": fetched / reads,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
