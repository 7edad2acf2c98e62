"""Dask plugins of generation runs: per-worker setup, and the scheduler's record of workers.

Kept apart from pipeline/executors.py and pipeline/batch.py because subclassing Dask's plugin
classes imports distributed, and with it the user's Dask configuration: those modules import
this one only once a cluster starts, where a malformed configuration becomes one line
(executors.import_dask), and `generate --workers 0` needs no Dask at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from distributed import WorkerPlugin
from distributed.diagnostics.plugin import SchedulerPlugin

from .executors import quiet_native_threads, quiet_unawaited


def _ignore_sigint() -> None:
    """Ctrl-C (SIGINT) and SLURM's or Kubernetes' SIGTERM reach the whole process group: only the
    driver reacts (it stops the cluster, whose nannies end their workers by message), so no worker
    dies mid-task, is restarted, and logs a traceback or leaks its semaphores."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


class WorkerSetup(WorkerPlugin):
    """Per worker process: polySim's scratch directory inside the worker's own directory.

    Local workers share the driver's process group and ignore SIGINT and SIGTERM (`_ignore_sigint`).
    Batch-job workers (`ignore_signals=False`) run in their job's own session, which the driver's
    signals never reach: there SIGTERM is the scheduler ending the job (scancel, walltime), and a
    worker that ignored it would outlive its job.
    """

    def __init__(self, ignore_signals: bool = True) -> None:
        self.ignore_signals = ignore_signals

    def setup(self, worker: Any) -> None:
        from . import polysim

        if self.ignore_signals:
            _ignore_sigint()
        # Ctrl-C cancels the running tasks; each would log "Async instruction ... ended with
        # CancelledError" on this worker, where the user is owed a single line.
        logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
        quiet_unawaited()
        quiet_native_threads()
        polysim.use_scratch_dir(os.path.join(worker.local_directory, "polysim-scratch"))

    def teardown(self, worker: Any) -> None:
        import gc

        # The process is about to end: its final garbage collections over every module would
        # hold up the cluster's shutdown (about 0.3 s), and free nothing the OS does not.
        gc.freeze()


class WorkerPresence(SchedulerPlugin):
    """Scheduler plugin (the scheduler runs in this process): when each worker, by name, was last
    connected, from the scheduler's own joins and departures, so none is missed between two looks."""

    name = "reconstruction-gb-presence"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # hooks run on the scheduler's event loop, readers in the driver
        self._names: dict[str, str] = {}  # worker address -> name
        self._seen: dict[str, float] = {}  # worker name -> time.monotonic() when it joined or last left

    def add_worker(self, scheduler: Any, worker: str) -> None:
        with self._lock:
            name = str(scheduler.workers[worker].name)
            self._names[worker] = name
            self._seen[name] = time.monotonic()

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        with self._lock:
            name = self._names.pop(worker, None)
            if name is not None:
                self._seen[name] = time.monotonic()

    def snapshot(self) -> tuple[set[str], dict[str, float]]:
        """(names of the workers connected now, name -> when it joined or last left) for every worker that joined."""
        with self._lock:
            return set(self._names.values()), dict(self._seen)
