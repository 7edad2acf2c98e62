"""Restoring in a child process: TensorFlow never loads into napari's process.

TensorFlow carries its own LLVM, and so does Mesa's OpenGL driver that draws napari's canvas on
many Linux machines: loading both into one process crashes it (a segmentation fault in LLVM's
static initialisers), whichever loads first. So the Restore widget sends each job to one
long-lived child (started with `spawn`, so it inherits no Qt or OpenGL) that keeps the loaded
model between jobs and reports tiles done as it goes. The child restores through `adapter`.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.connection import Connection
from typing import Any, Iterator

import numpy as np


def _serve(conn: Connection) -> None:
    """The child's loop: (options, gray) in; ('tiles', n), ('done', k)..., then ('labels', a) or ('error', s) out."""
    from . import adapter

    restorers: dict[Any, Any] = {}
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        options, gray = job
        try:
            restorer = restorers.get(options)
            if restorer is None:
                restorer = restorers[options] = adapter.make_restorer(options)
            conn.send(("tiles", (adapter.tiles_of(restorer, gray.shape), adapter.describe(restorer))))
            labels = adapter.restore(restorer, gray, progress=lambda tiles: conn.send(("done", int(tiles))))
            conn.send(("labels", labels))
        except adapter.PluginError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # noqa: BLE001 - the widget shows one line; the child keeps serving
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class RestoreProcess:
    """One child process that restores jobs in turn (one at a time: the widget runs one job at once)."""

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._process: mp.process.BaseProcess | None = None
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def _start(self) -> Connection:
        if self._process is None or not self._process.is_alive():
            context = mp.get_context("spawn")
            ours, theirs = context.Pipe()
            self._process = context.Process(target=_serve, args=(theirs,), daemon=True, name="reconstruction-gb restore")
            self._process.start()
            theirs.close()
            self._conn = ours
        assert self._conn is not None
        return self._conn

    def run(self, options: Any, gray: np.ndarray) -> Iterator[tuple[str, Any]]:
        """Send one job; yield ('tiles', (n, used)) and ('done', k) as the child reports, then ('labels', array).

        A child that dies mid-job (killed, out of memory) gives ('error', ...), one stopped by `cancel`
        ('cancelled', None); either is restarted next job.
        """
        with self._lock:
            conn = self._start()
            conn.send((options, gray))
            if self._cancelled.is_set():  # cancelled before the child was there to stop
                self.cancel()
            while True:
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):
                    process, self._process = self._process, None
                    if process is not None:
                        process.join(timeout=5)
                    if self._cancelled.is_set():
                        yield "cancelled", None
                    else:
                        code = process.exitcode if process is not None else None
                        yield "error", f"the restore process stopped (exit code {code})"
                    return
                yield kind, value
                if kind in ("labels", "error"):
                    return

    def new_job(self) -> None:
        """Forget an earlier cancel: call before each job, on the thread that calls `cancel`."""
        self._cancelled.clear()

    def cancel(self) -> None:
        """Stop the job under way: the child is terminated (its loaded model with it; the next job
        starts a new one), and `run` ends with ('cancelled', None). Safe from any thread."""
        self._cancelled.set()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()

    def close(self) -> None:
        """Stop the child (it also stops with napari: it is a daemon process)."""
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
        self._conn = self._process = None
