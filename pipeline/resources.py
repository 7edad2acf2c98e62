"""Up-front checks of a generation request against the machine: disk space and memory (no I/O but queries)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from .store import META_ARRAYS

# Stored bytes of one pair (micro + label + grains, compressed), per pixel of the image: measured
# at most 0.17 at 64 px, 0.10 at 128 px, 0.085 at 512 px (docs/store.md); rounded up.
STORED_BYTES_PER_PIXEL = 0.2
# Peak memory of making one sample, per pixel (polySim's map, Laplacian, blur, dilation): about
# 22 measured at 512 px; rounded up.
WORKING_BYTES_PER_PIXEL = 40
# The driver holds every per-sample array (and `done`) whole: bytes per planned sample.
DRIVER_BYTES_PER_SAMPLE = 8 * (len(META_ARRAYS) + 1)


class ResourceError(RuntimeError):
    """A request the machine cannot carry out; nothing was written."""


def stored_bytes(pairs: int, size: int) -> int:
    """Disk space `pairs` pairs of side `size` will take at most (estimate)."""
    return pairs * math.ceil(STORED_BYTES_PER_PIXEL * size * size + 64)  # integers: a 400-digit count stays exact


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_resources(out: Path | object, pairs: int, count: int, size: int, workers: int, block: int) -> None:
    """Raise ResourceError if `pairs` new pairs of a `count`-sample store cannot fit on disk or in memory.

    The disk is checked for a store in a folder only (`out` a Path): object storage has no free space to ask.
    """
    if isinstance(out, Path):
        _check_disk(out, pairs, size)
    _check_memory(pairs, count, size, workers, block)


def _check_disk(out: Path, pairs: int, size: int) -> None:
    ancestor = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(ancestor).free
    need = stored_bytes(pairs, size)
    if need > free:
        raise ResourceError(f"{pairs:,} pairs of {size} x {size} need about {_human(need)} on disk; "
                            f"{ancestor} has {_human(free)} free")


def _check_memory(pairs: int, count: int, size: int, workers: int, block: int) -> None:
    memory = available_memory()
    if memory is None:
        return
    per_worker = WORKING_BYTES_PER_PIXEL * size * size + block * size * size * 4  # a block held as it is written
    need = max(1, workers) * per_worker + count * DRIVER_BYTES_PER_SAMPLE
    if need > memory:
        raise ResourceError(f"{count:,} pairs of {size} x {size} on {workers} worker(s) need about {_human(need)} "
                            f"of memory; {_human(memory)} is available")


def _human(n: float) -> str:
    if n >= 10**21:  # past any disk or memory: an order of magnitude (a 400-digit count is no float either)
        return f"10^{len(str(int(n))) - 1} bytes"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} PB"
