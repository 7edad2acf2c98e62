"""What a generation run will do, decided before any work starts (pure functions, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import GenerationConfig

# Largest default block: bounds the work lost to a kill, the memory of one task, and the time
# workers wait for the last block (~1.5 s at 512 px).
MAX_DEFAULT_BLOCK = 32
# Default blocks aim at this many tasks per worker (load balance, steady progress).
TASKS_PER_WORKER = 50


@dataclass(frozen=True)
class Block:
    """Consecutive samples [start, stop) made and written by one task."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"block of samples {self.start}-{self.stop - 1}"


@dataclass(frozen=True)
class Plan:
    """The blocks of samples still to make for the library (config, seed)."""

    config: GenerationConfig
    seed: int
    count: int
    blocks: tuple[Block, ...]

    @property
    def pending(self) -> int:
        """Number of samples the plan will make."""
        return sum(len(b) for b in self.blocks)


def default_block_size(count: int, workers: int) -> int:
    """A block size giving about TASKS_PER_WORKER tasks per worker, at most MAX_DEFAULT_BLOCK."""
    return max(1, min(MAX_DEFAULT_BLOCK, count // (TASKS_PER_WORKER * max(1, workers))))


def make_plan(config: GenerationConfig, seed: int, done: np.ndarray, block_size: int, shard: int = 1) -> Plan:
    """Cover every sample not marked done with blocks of whole shards, about `block_size` samples each.

    A shard holding any sample not done is made again whole (its done samples come out the same
    bytes: a sample is a pure function of (config, seed, i)), since one task writes whole shards.
    A block is `ceil(block_size / shard)` consecutive pending shards, never crossing a done shard,
    so every block is a contiguous index range starting on a shard boundary.
    """
    if block_size <= 0 or shard <= 0:
        raise ValueError(f"block size and shard must be > 0, got {block_size} and {shard}")
    done = np.asarray(done, dtype=bool)
    count = len(done)
    shards = -(-count // shard)
    padded = np.ones(shards * shard, dtype=bool)
    padded[:count] = done
    pending = np.flatnonzero(~padded.reshape(shards, shard).all(axis=1))
    per_block = -(-block_size // shard)
    blocks: list[Block] = []
    if pending.size:
        run_starts = np.flatnonzero(np.diff(pending) != 1) + 1
        for run in np.split(pending, run_starts):
            first, last = int(run[0]), int(run[-1]) + 1
            blocks.extend(Block(s * shard, min(min(s + per_block, last) * shard, count))
                          for s in range(first, last, per_block))
    return Plan(config=config, seed=seed, count=count, blocks=tuple(blocks))
