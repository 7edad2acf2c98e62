"""Where blocks run: serially in this process, or on a Dask cluster (local or existing).

An executor is a context manager (connect / start on enter, release on exit) with one method,
`map(function, items, on_result)`, which calls `on_result` in this process as results arrive.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


# Dask settings for generation workers, the same file that docs/cluster.md gives to workers of
# other clusters: Dask's default MALLOC_TRIM_THRESHOLD_ unset (it doubles the cost of writing
# chunks, docs/benchmarks.md), one task per worker thread, no statistical profiler.
DASK_SETTINGS = Path(__file__).resolve().parent / "dask_config" / "reconstruction-gb.yaml"  # -> config/dask/ in a checkout


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: dask.config.set replaces whole sub-trees it is given."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class ExecutorError(RuntimeError):
    """The executor could not start, or a task failed for good."""


class Executor(Protocol):
    description: str

    def __enter__(self) -> Executor: ...
    def __exit__(self, *exc: object) -> None: ...
    def map(self, function: Callable[[T], R], items: Iterable[T], on_result: Callable[[R], None]) -> None: ...


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def quiet_native_threads() -> None:
    """One worker, one core: stop OpenCV and Blosc from starting threads of their own."""
    import cv2
    import numcodecs.blosc

    cv2.setNumThreads(1)
    numcodecs.blosc.set_nthreads(1)


class SerialExecutor:
    """Every task in this process, in order: the debugger and the reference for other executors."""

    description = "serial (this process)"
    workers = 1

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, function: Callable[[T], R], items: Iterable[T], on_result: Callable[[R], None]) -> None:
        for item in items:
            on_result(function(item))


class DaskExecutor:
    """Tasks on a Dask cluster: a new local one (`workers` processes) or an existing one."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, connect_timeout: float = 10.0):
        if workers is not None and scheduler is not None:
            raise ExecutorError("give either a number of workers or a scheduler address, not both")
        self.n_workers = workers if workers is not None else available_cores()
        self.scheduler = scheduler
        self.connect_timeout = connect_timeout
        self.client: Any = None
        self.cluster: Any = None

    @property
    def description(self) -> str:
        where = f"Dask cluster at {self.scheduler}" if self.scheduler else f"local Dask cluster, {self.n_workers} worker processes"
        link = self.client.dashboard_link if self.client is not None else None
        return f"{where} (dashboard: {link})" if link else where

    @property
    def workers(self) -> int:
        """Worker threads available for tasks (known once connected)."""
        if self.client is None:
            return self.n_workers
        info = self.client.scheduler_info()["workers"].values()
        return max(1, sum(w.get("nthreads", 1) for w in info))

    def __enter__(self) -> DaskExecutor:
        import dask
        import yaml
        from distributed import Client, LocalCluster

        try:
            if self.scheduler is None:
                # Workers are processes of one thread each (polySim is not thread-safe), and
                # nothing listens beyond this machine: scheduler, workers and dashboard.
                with dask.config.set(_dotted(yaml.safe_load(DASK_SETTINGS.read_text()))):
                    self.cluster = LocalCluster(
                        n_workers=self.n_workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address="127.0.0.1:0",
                    )
                self.client = Client(self.cluster)
            else:
                self.client = Client(self.scheduler, timeout=self.connect_timeout)
        except (OSError, TimeoutError, RuntimeError) as exc:
            self.__exit__()
            if self.scheduler is None:
                raise ExecutorError(f"cannot start a local Dask cluster: {exc}") from None
            raise ExecutorError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
        self.client.register_plugin(WorkerSetup(), name="reconstruction-gb-setup")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def map(self, function: Callable[[T], R], items: Iterable[T], on_result: Callable[[R], None]) -> None:
        from distributed import KilledWorker, as_completed

        items = list(items)
        futures = self.client.map(function, items, pure=False)
        task_of = {f.key: item for f, item in zip(futures, items)}
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except KilledWorker:
                    raise ExecutorError(
                        f"{task_of[future.key]} failed: the worker process running it died every time it was "
                        "tried (killed, or out of memory); the samples finished before are kept"
                    ) from None
                except Exception as exc:  # noqa: BLE001 - reported with the task that raised it
                    raise ExecutorError(f"{task_of[future.key]} failed: {type(exc).__name__}: {exc}") from exc
                future.release()
                on_result(result)
        finally:
            self.client.cancel(futures)


try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object  # type: ignore[misc,assignment]


def _ignore_sigint() -> None:
    """Ctrl-C reaches the whole process group: only the driver reacts (it stops the cluster), no worker traceback."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerSetup(_WorkerPlugin):  # type: ignore[misc]
    """Per worker process: polySim's scratch directory inside the worker's own directory."""

    def setup(self, worker: Any) -> None:
        from . import polysim

        _ignore_sigint()
        # Ctrl-C cancels the running tasks; each would log "Async instruction ... ended with
        # CancelledError" on this worker, where the user is owed a single line.
        logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
        quiet_native_threads()
        polysim.use_scratch_dir(os.path.join(worker.local_directory, "polysim-scratch"))

    def teardown(self, worker: Any) -> None:
        import gc

        # The process is about to end: its final garbage collections over every module would
        # hold up the cluster's shutdown (about 0.3 s), and free nothing the OS does not.
        gc.freeze()
