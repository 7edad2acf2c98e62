"""`generate`: make (or continue) a library store, block by block, on any executor."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from .config import ConfigError, GenerationConfig
from .executors import Executor, SerialExecutor, WorkersLost
from .plan import Block, Plan, default_block_size, make_plan
from .resources import ResourceError, check_resources
from .presets import make_sample
from .sample import SampleMeta
from .store import (META_ARRAYS, ImageWriter, LibraryStore, Location, StoreError, StoreURL, check_creatable,
                    creation_cut_short, files_at, is_store, shard_samples, store_location)

# The driver records finished blocks at most this often: each commit rewrites a chunk of every
# per-sample array (~25 ms of the driver's CPU, taken from the workers on a small machine),
# and a kill loses at most this much work.
COMMIT_INTERVAL_S = 5.0
# A short run commits sooner: the interval grows with the run's age (a quarter of it) from this
# floor up to COMMIT_INTERVAL_S, so a kill a few seconds in loses about a second of work.
MIN_COMMIT_INTERVAL_S = 0.5


class GenerationError(RuntimeError):
    """A generation request that cannot be carried out; nothing was written."""


class RunStopped(GenerationError):
    """The run stopped part-way (its workers are gone): what finished is committed, the rest resumes."""

    def __init__(self, reason: str, done: int, count: int):
        super().__init__(f"{reason}: stopped with {done} of {count} pairs done (kept); run the same command to continue")
        self.reason, self.done, self.count = reason, done, count


class Interrupted(Exception):
    """Ctrl-C / SIGINT during a run: what finished is committed."""

    def __init__(self, done: int, count: int):
        super().__init__(f"interrupted: {done} of {count} pairs done; run the same command to continue")
        self.done, self.count = done, count


@dataclass(frozen=True)
class BlockResult:
    block: Block
    metas: tuple[SampleMeta, ...]
    crcs: tuple[tuple[int, ...], ...] = ()  # per sample: its chunks' CRC32C (micro, label, grains)


@dataclass(frozen=True)
class Report:
    """What one `generate` call did."""

    path: Location
    made: int  # pairs made by this call
    done: int  # pairs done in the store now
    count: int
    seconds: float
    store_bytes: int

    @property
    def rate(self) -> float:
        return self.made / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.made} pairs in {self.seconds:.1f} s ({self.rate:.1f} pairs/s) -> "
                f"{self.path} ({self.store_bytes / 1e6:.1f} MB)")


def make_block(writer: ImageWriter, config: GenerationConfig, seed: int, block: Block) -> BlockResult:
    """Task body: make the samples of `block` and write their images with `writer` (runs on a worker).

    The driver opens the store once and sends its writer with every task (2 KB): opening the
    store in each task read 14 metadata files through zarr, about 6 ms a block.
    """
    samples = [make_sample(config, seed, i) for i in range(block.start, block.stop)]
    crcs = writer.write(samples)
    return BlockResult(block, tuple(s.meta for s in samples), tuple(crcs))


def generate(
    out: str | os.PathLike[str] | StoreURL,
    count: int,
    config: GenerationConfig,
    seed: int = 0,
    executor: Executor | None = None,
    block_size: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], Progress] | None = None,
    echo: Callable[[str], None] = lambda line: None,
    commit_interval: float = COMMIT_INTERVAL_S,
) -> Report:
    """Make every sample of the library (config, seed) of `count` pairs that `out` lacks.

    `progress(total)` returns a progress display (tqdm fits) for the pairs this call makes;
    finished samples are marked done at most every `commit_interval` seconds (sooner while the run
    is young, MIN_COMMIT_INTERVAL_S), and at the end.
    """
    if count <= 0:
        raise GenerationError(f"count must be > 0, got {count}")
    if seed < 0:
        raise GenerationError(f"seed must be >= 0, got {seed}")
    if block_size is not None and block_size <= 0:
        raise GenerationError(f"block must be > 0, got {block_size}")
    try:
        config.check_makes_boundaries()
    except ConfigError as exc:
        raise GenerationError(f"{exc}; nothing was written") from None
    if block_size is not None:
        block_size = min(block_size, count)  # a larger block is the same plan: one block of every pair
    out = store_location(out)
    try:
        return _generate(out, count, config, seed, executor, block_size, overwrite, progress, echo, commit_interval)
    except KeyboardInterrupt:  # outside the run itself (start-up, creation): nothing or nothing new is done
        raise Interrupted(_done_count(out), count) from None


def _done_count(out: Location) -> int:
    try:
        return int(LibraryStore.open(out).done().sum())
    except StoreError:
        return 0


def _generate(out: Location, count: int, config: GenerationConfig, seed: int, executor: Executor | None,
              block_size: int | None, overwrite: bool, progress: Callable[[int], Progress] | None,
              echo: Callable[[str], None], commit_interval: float) -> Report:
    resume = _check_target(out, config, seed, count, overwrite)
    executor = executor if executor is not None else SerialExecutor()
    started = time.perf_counter()
    if resume:
        store = LibraryStore.open(out, mode="r+")
        with store.writer_lock():
            done = store.done()
            echo(f"resuming: {int(done.sum())} of {store.count} pairs done")
            if done.all() and count == store.count:
                store.remove_partials()
                return _report(store, 0, started)  # nothing to do: no cluster to start
            pending = int((~done).sum()) + count - store.count
            _check_resources(out, pending, count, config.size, executor, block_size, store.shard)
            with executor:
                echo(f"running on {executor.description}")
                made = _execute(store, count, block_size, executor, progress, commit_interval)
        return _report(store, made, started)
    _check_resources(out, count, count, config.size, executor, block_size, shard_samples(count))
    with executor:  # connect first: an unreachable cluster must not leave a store behind
        echo(f"running on {executor.description}")
        if is_store(out):  # --overwrite, or a creation cut short
            with files_at(out).lock():
                LibraryStore.remove(out)
        store = _create(out, config, seed, count)
        with store.writer_lock():
            made = _execute(store, count, block_size, executor, progress, commit_interval)
    return _report(store, made, started)


def _check_resources(out: Location, pairs: int, count: int, size: int, executor: Executor, block_size: int | None,
                     shard: int) -> None:
    try:
        check_resources(out, pairs, count, size, executor.workers, max(block_size or 1, shard))
    except ResourceError as exc:
        raise GenerationError(f"{exc}; nothing was written") from None


def _create(out: Location, config: GenerationConfig, seed: int, count: int) -> LibraryStore:
    """A new store at `out` (absent or an empty folder); on failure, nothing of it is left."""
    if isinstance(out, StoreURL):
        try:
            return LibraryStore.create(out, config, seed, count)
        except (OSError, StoreError) as exc:
            files_at(out).remove_all()  # a creation cut short before this is marked incomplete: replaced next run
            raise GenerationError(f"cannot create {out}: {getattr(exc, 'strerror', None) or exc}; "
                                  "nothing was written") from None
    existed = out.exists()
    try:
        return LibraryStore.create(out, config, seed, count)
    except OSError as exc:
        if existed:  # the empty folder the user gave: keep it, empty
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(out, ignore_errors=True)
        raise GenerationError(f"cannot create {out}: {exc.strerror or exc}; nothing was written") from None


def _execute(store: LibraryStore, count: int, block_size: int | None, executor: Executor,
             progress: Callable[[int], Progress] | None, commit_interval: float) -> int:
    """With the writer lock held and the executor running: tidy, grow if asked, make what is missing."""
    store.remove_partials()
    if count > store.count:
        store.resize(count)  # in the driver, before any task runs
    size = block_size or default_block_size(count, executor.workers)
    plan = make_plan(store.config, store.seed, store.done(), size, store.shard)
    try:
        return _run(plan, store, executor, progress, commit_interval)
    except KeyboardInterrupt:
        raise Interrupted(int(store.done().sum()), store.count) from None
    except WorkersLost as exc:
        raise RunStopped(str(exc), int(store.done().sum()), store.count) from None
    except OSError as exc:  # disk full, or the store's filesystem gone: shards are whole or absent
        raise GenerationError(f"cannot write {store.path} ({exc.strerror or exc}); {int(store.done().sum())} of "
                              f"{store.count} pairs are done and kept: free space and run the same command "
                              "to continue") from None


def _report(store: LibraryStore, made: int, started: float) -> Report:
    return Report(path=store.path, made=made, done=int(store.done().sum()), count=store.count,
                  seconds=time.perf_counter() - started, store_bytes=store.bytes_on_disk())


def _check_target(out: Location, config: GenerationConfig, seed: int, count: int, overwrite: bool) -> bool:
    """Validate the output path without touching it; True when an existing store is continued."""
    if isinstance(out, StoreURL):
        files = files_at(out)
        if not is_store(out):  # reaches the bucket first: an unreachable one is one line here
            if files.exists():
                raise GenerationError(f"{out} holds objects that are not a Reconstruction-GB store; choose another --out")
            files.check_creatable()
            return False
    elif not out.exists():
        check_creatable(out)
        return False
    elif not out.is_dir():
        raise GenerationError(f"{out} is a file, not a store")
    elif not is_store(out):
        if any(out.iterdir()):
            raise GenerationError(f"{out} exists and is not a Reconstruction-GB store; choose another --out")
        return False  # an empty directory is a place for a new store
    if overwrite or creation_cut_short(out):
        return False  # replaced (a store whose own creation marked it incomplete holds no sample yet)
    try:
        store = LibraryStore.open(out)
        for name in META_ARRAYS:  # every per-sample array is rewritten by commits: all must be sound
            store.metadata(name)
        store.recorded_crcs()
        store.done()
    except StoreError as exc:  # damaged, or another format: never replaced unasked
        raise GenerationError(f"{exc}; nothing was changed (--overwrite replaces it)") from None
    if store.source_kind != "generate":
        raise GenerationError(f"{out} was built by {store.source_kind}, not generated: generate cannot add to it; "
                              "choose another --out")
    differing = config.differences(store.config) + (["seed"] if seed != store.seed else [])
    if differing:
        raise GenerationError(
            f"{out} holds a library with different settings ({', '.join(differing)}); "
            "use --overwrite to replace it or another --out"
        )
    if count < store.count:
        raise GenerationError(f"{out} plans {store.count} pairs; a smaller --count ({count}) cannot shrink it")
    return True


def _run(plan: Plan, store: LibraryStore, executor: Executor, progress: Callable[[int], Progress] | None,
         commit_interval: float) -> int:
    bar = progress(plan.pending) if progress else _NoProgress()
    task = partial(make_block, store.image_writer(), plan.config, plan.seed)
    buffer: list[BlockResult] = []
    made = 0
    started = last_commit = time.monotonic()

    def commit() -> None:
        nonlocal last_commit
        indices = [i for r in buffer for i in range(r.block.start, r.block.stop)]
        store.commit(indices, [m for r in buffer for m in r.metas], [c for r in buffer for c in r.crcs])
        buffer.clear()
        last_commit = time.monotonic()

    def on_result(result: BlockResult) -> None:
        nonlocal made
        buffer.append(result)
        made += len(result.block)
        bar.update(len(result.block))
        now = time.monotonic()
        if now - last_commit >= min(commit_interval, max(MIN_COMMIT_INTERVAL_S, (now - started) / 4)):
            commit()

    try:
        executor.map(task, plan.blocks, on_result)
    except BaseException:
        try:
            commit()  # whatever finished is kept, even when a task failed or the run was interrupted
        except OSError:
            pass  # disk full: those samples stay not done, and the next run makes them again
        raise
    else:
        commit()
    finally:
        bar.close()
    return made


class Progress(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> None: ...


class _NoProgress:
    def update(self, n: int) -> None:
        return None

    def close(self) -> None:
        return None
