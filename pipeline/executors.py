"""Where blocks run: serially in this process, or on a Dask cluster (local or existing).

An executor is a context manager (connect / start on enter, release on exit) with one method,
`map(function, items, on_result)`, which calls `on_result` in this process as results arrive.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
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


class WorkersLost(ExecutorError):
    """No worker has been connected for `worker_timeout` seconds and none is coming: the run stops."""


# How long a run goes on with no worker at all (or a batch job with none of its workers) before
# it acts: `reconstruction-gb.worker-timeout` in the user's Dask configuration overrides it.
WORKER_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = 1.0  # how often the driver looks at the workers while it waits for results


def import_dask() -> None:
    """Import Dask, which reads the user's Dask configuration (DASK_CONFIG, ~/.config/dask):
    ExecutorError, one line naming the file, for a malformed one."""
    try:
        import dask  # noqa: F401
    except ValueError as exc:  # dask.config refuses a file it cannot parse, by name
        raise ExecutorError(_config_problem(str(exc))) from None


def _config_problem(message: str) -> str:
    """dask.config's many-line complaint about a configuration file, as one line."""
    lines = [line for line in message.splitlines() if line.strip()]
    head = lines[0] if lines else "a Dask configuration file is malformed"
    named = re.match(r"A dask config file at '(.*)' is malformed(.*?)(, original error message:)?$", head)
    if named:
        head = f"the Dask configuration file {named.group(1)} is malformed{named.group(2).replace(' - ', ': ', 1)}"
    # YAML's own explanation: its unindented lines ("expected ',' or ']'..."), then where.
    problem = [line.strip() for line in lines[1:] if not line.startswith((" ", "\t"))]
    where = [line.split(", line ", 1)[1].rstrip(":") for line in lines[1:] if ", line " in line]
    if problem:
        head += f": {problem[-1]}" + (f" (line {where[-1]})" if where else "")
    return f"{head}; fix or remove it"


def worker_timeout() -> float:
    """Seconds without workers before a run stops (Dask configuration `reconstruction-gb.worker-timeout`)."""
    import_dask()
    import dask
    from dask.utils import parse_timedelta

    value = dask.config.get("reconstruction-gb.worker-timeout", WORKER_TIMEOUT_S)
    try:
        # dask raises KeyError for an unknown unit ("2 lightyears", "nan"), TypeError for a list,
        # IndexError for "" (an environment variable set to nothing).
        seconds = parse_timedelta(value, default="seconds")
    except (TypeError, ValueError, KeyError, OverflowError, IndexError):
        seconds = None
    if seconds is None or isinstance(value, bool) or not math.isfinite(seconds):
        raise ExecutorError(f"reconstruction-gb.worker-timeout must be a duration such as 60s, got {value!r}")
    if seconds <= 0:
        raise ExecutorError(f"reconstruction-gb.worker-timeout must be > 0, got {value!r}")
    return float(seconds)


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


# Local worker processes per core at most: polySim is CPU-bound, so more than one per core gains
# nothing, and every worker (a nanny and a process, each with its sockets and pipes) costs the
# driver about 30 open files: 10000 of them hang on start-up and end in "Too many open files".
WORKERS_PER_CORE = 4
FILES_PER_WORKER = 32


def local_worker_limit() -> int:
    """The most local worker processes `--workers` accepts on this machine."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    by_files = (soft - 64) // FILES_PER_WORKER if soft != resource.RLIM_INFINITY else WORKERS_PER_CORE * available_cores()
    return max(1, min(WORKERS_PER_CORE * available_cores(), by_files))


def check_scheduler_address(address: str) -> None:
    """Refuse an address Dask cannot connect to (e.g. no port) before anything starts."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise ExecutorError(f"--scheduler {address!r} is not a Dask scheduler address such as tcp://host:8786 "
                            f"({exc})") from None


class _NoGatherNoise(logging.Filter):
    """Drop the logged noise of a result whose worker died: the scheduler's and client's
    "Couldn't gather keys" and asyncio's "Task exception was never retrieved" for the gather the
    driver gave up waiting on. The result is computed again (or the run stops when no worker is
    left), which the driver says in words of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Couldn't gather"):
            return False
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ != "AllExit"


class _NoCancelBeforeStart(logging.Filter):
    """Drop distributed's own error when Ctrl-C (or SIGTERM) reaches the driver inside one of
    distributed's blocking calls (`distributed.utils.sync`) before its coroutine has started, as
    happens on a loaded machine: the cancel callback it then schedules reads a variable not yet
    set, and tornado logs "NameError: cannot access free variable 'future'" with a traceback.
    Nothing had started, so nothing needed cancelling; the run's own line says what stopped."""

    def filter(self, record: logging.LogRecord) -> bool:
        callback = record.args[0] if isinstance(record.args, tuple) and record.args else None
        function = getattr(callback, "func", callback)
        cancel = (getattr(function, "__module__", None) == "distributed.utils"
                  and getattr(function, "__qualname__", None) == "sync.<locals>.cancel")
        return not (cancel and record.exc_info and isinstance(record.exc_info[1], NameError))


def quiet_lost_results() -> None:
    """Install `_NoGatherNoise` once on the loggers that report lost results in this process,
    `_NoCancelBeforeStart` on tornado's, and silence the unawaited-coroutine warnings of a
    cancelled run's shutdown (`quiet_unawaited`)."""
    for name, noise in (("distributed.scheduler", _NoGatherNoise), ("distributed.client", _NoGatherNoise),
                        ("asyncio", _NoGatherNoise), ("tornado.application", _NoCancelBeforeStart)):
        log = logging.getLogger(name)
        if not any(isinstance(f, noise) for f in log.filters):
            log.addFilter(noise())
    quiet_unawaited()


def quiet_unawaited() -> None:
    """Ctrl-C or SIGTERM cancels the running tasks; as the cluster shuts down, tornado coroutines of
    those tasks can be collected without having been awaited, and Python prints a RuntimeWarning
    for each ("coroutine 'Future._result' was never awaited", seen in 1 of about 10 interrupted
    runs), where the user is owed one line. Nothing is lost: the run's results are committed."""
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)


class DaskExecutor:
    """Tasks on a Dask cluster: a new local one (`workers` processes) or an existing one."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, connect_timeout: float = 10.0,
                 notify: Callable[[str], None] = lambda line: None):
        if workers is not None and scheduler is not None:
            raise ExecutorError("give either a number of workers or a scheduler address, not both")
        import_dask()  # first: every check below imports it
        if workers is not None and not 1 <= workers <= local_worker_limit():
            raise ExecutorError(f"--workers {workers} is more than this machine can use: at most {local_worker_limit()} "
                                f"({WORKERS_PER_CORE} per core, and each worker process needs open files); "
                                "nothing was written")
        if scheduler is not None:
            check_scheduler_address(scheduler)
        self.n_workers = workers if workers is not None else available_cores()
        self.scheduler = scheduler
        self.connect_timeout = connect_timeout
        self.notify = notify
        self.worker_timeout = worker_timeout()
        self.client: Any = None
        self.cluster: Any = None
        self._no_worker_since: float | None = None

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

        quiet_lost_results()
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
        except (OSError, TimeoutError, RuntimeError, ValueError, TypeError, MemoryError) as exc:
            self.__exit__()
            if self.scheduler is None:
                raise ExecutorError(f"cannot start a local Dask cluster: {exc}") from None
            # Something that answers, but not with Dask's protocol, makes its reader allocate
            # whatever length the first bytes claim (MemoryError) or fail to parse them.
            if isinstance(exc, (MemoryError, ValueError, TypeError)):
                raise ExecutorError(f"{self.scheduler} answered, but not as a Dask scheduler "
                                    f"({type(exc).__name__})") from None
            raise ExecutorError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
        from .plugins import WorkerSetup

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
        results = as_completed(futures)
        self._no_worker_since = None
        watched = time.monotonic()
        try:
            while not results.is_empty():
                # Not `for future in results`: that waits forever when every worker is gone.
                ready = results.next_batch(block=False) if results.has_ready() else []
                if not ready:
                    with results.thread_condition:
                        results.thread_condition.wait(timeout=0.1)
                for future in ready:
                    try:
                        result = self._result(future)
                    except WorkersLost:
                        raise
                    except KilledWorker:
                        raise ExecutorError(
                            f"{task_of[future.key]} failed: the worker process running it died every time it was "
                            "tried (killed, or out of memory); the samples finished before are kept"
                        ) from None
                    except Exception as exc:  # noqa: BLE001 - reported with the task that raised it
                        raise ExecutorError(f"{task_of[future.key]} failed: {type(exc).__name__}: {exc}") from exc
                    future.release()
                    on_result(result)
                if time.monotonic() - watched >= WATCH_INTERVAL_S:
                    watched = time.monotonic()
                    self._watch_workers()
        finally:
            self.client.cancel(futures)

    def _result(self, future: Any) -> Any:
        """A finished task's result, watching the workers meanwhile: it lives on a worker, and when
        that worker died after finishing, the task is computed again (or never, with no worker)."""
        while True:
            try:
                return future.result(timeout=WATCH_INTERVAL_S)
            except TimeoutError:
                self._watch_workers()

    def _connected_workers(self) -> dict[str, Any]:
        """The workers the scheduler knows now, by address."""
        return dict(self.client.scheduler_info()["workers"])

    def _may_get_workers(self) -> bool:
        """Whether a worker may still join (a batch job waiting in its queue); an existing cluster: never known."""
        return False

    def _watch_workers(self) -> None:
        """Stop the run once no worker has been connected for `worker_timeout` and none is coming."""
        workers = self._connected_workers()
        if workers or self._may_get_workers():
            self._no_worker_since = None
            return
        now = time.monotonic()
        if self._no_worker_since is None:
            self._no_worker_since = now
            self.notify(f"no worker is connected; waiting up to {self.worker_timeout:g} s for one")
        elif now - self._no_worker_since >= self.worker_timeout:
            raise WorkersLost(self._lost_message())

    def _lost_message(self) -> str:
        where = f"the Dask cluster at {self.scheduler}" if self.scheduler else "the local Dask cluster"
        return f"no worker of {where} has been connected for {self.worker_timeout:g} s"
