"""Dask workers as jobs of a batch scheduler (SLURM, PBS, SGE, LSF), through dask-jobqueue.

Jobs are described the way dask-jobqueue's users already describe them: `jobqueue.<kind>.*` in
their `jobqueue.yaml` (~/.config/dask/ or DASK_CONFIG): cores, memory, queue, account, walltime,
job-script-prologue, interface... This module adds only what generation needs: every job runs
`cores` worker processes of one thread each (polySim is not thread-safe), with the project's
Dask settings and its worker plugin, and the dashboard listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clusters import DEFAULT_JOBS, SCHEDULERS
from .executors import DASK_SETTINGS, DaskExecutor, ExecutorError, _dotted, quiet_lost_results
from .jobstatus import GONE, ended_jobs

if TYPE_CHECKING:
    from .plugins import WorkerPresence

REPO = Path(__file__).resolve().parents[1]
# Jobs lost in one run (wall time, preemption, a failed node) that are submitted again, in total:
# `reconstruction-gb.resubmit-limit` in the user's Dask configuration overrides it.
RESUBMIT_LIMIT = 3
# The batch scheduler is asked whether a job none of whose workers has joined still exists at
# most this often (and at least every worker-timeout): squeue and its kin are shared by everyone.
JOB_STATUS_INTERVAL_S = 30.0


def resubmit_limit() -> int:
    """Lost jobs resubmitted per run (Dask configuration `reconstruction-gb.resubmit-limit`)."""
    import dask

    value = dask.config.get("reconstruction-gb.resubmit-limit", RESUBMIT_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExecutorError(f"reconstruction-gb.resubmit-limit must be a whole number >= 0, got {value!r}")
    return value


class BatchExecutor(DaskExecutor):
    """Tasks on workers that dask-jobqueue submits as `jobs` batch jobs; the scheduler runs here."""

    def __init__(self, kind: str, jobs: int = DEFAULT_JOBS, notify: Callable[[str], None] = lambda line: None):
        if kind not in SCHEDULERS:
            raise ExecutorError(f"unknown batch scheduler {kind!r}; choose one of {', '.join(SCHEDULERS)}")
        if jobs < 1:
            raise ExecutorError(f"jobs must be >= 1, got {jobs}")
        super().__init__(workers=None, notify=notify)
        from .plugins import WorkerPresence  # imports Dask: after its configuration was checked

        self.kind, self.jobs = kind, jobs
        self.cores = 1
        self.resubmit_limit = resubmit_limit()
        self.lost = self.resubmitted = 0
        self._last_seen: dict[str, float] = {}  # job name -> when one of its workers was last connected
        self._presence = WorkerPresence()  # every worker that joined, as the scheduler saw it
        self._job_ids: dict[str, str] = {}  # job name -> the batch scheduler's job id
        # How often the batch scheduler is asked about jobs none of whose workers has joined.
        self.job_status_interval = min(JOB_STATUS_INTERVAL_S, self.worker_timeout)
        self._next_status_query = 0.0

    @property
    def description(self) -> str:
        link = self.client.dashboard_link if self.client is not None else None
        where = (f"{self.kind.upper()} cluster through dask-jobqueue, {self.jobs} job(s) of {self.cores} "
                 "single-thread workers")
        return f"{where} (dashboard: {link})" if link else where

    @property
    def workers(self) -> int:
        """Workers asked for (they join as the jobs start)."""
        return self.jobs * self.cores

    def __enter__(self) -> BatchExecutor:
        import dask
        import yaml
        from distributed import Client

        class_name, submit, cancel = SCHEDULERS[self.kind]
        quiet_lost_results()
        for command in (submit, cancel):
            if shutil.which(command) is None:
                raise ExecutorError(f"--cluster {self.kind} needs the `{command}` command, which is not on PATH "
                                    "(run generate on a login node of the cluster)")
        try:
            dask_jobqueue = _import_dask_jobqueue()
        except ImportError:
            raise ExecutorError("--cluster needs dask-jobqueue (pip install -r requirements.txt)") from None
        config = f"jobqueue.{self.kind}"
        cores, memory = dask.config.get(f"{config}.cores", None), dask.config.get(f"{config}.memory", None)
        if not cores or not memory:
            raise ExecutorError(f"set {config}.cores and {config}.memory in your jobqueue.yaml "
                                "(~/.config/dask/ or $DASK_CONFIG; see docs/cluster.md)")
        self.cores = int(cores)
        prologue = [*(dask.config.get(f"{config}.job-script-prologue", None) or []),
                    f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}",
                    f"export DASK_CONFIG={shlex.quote(str(DASK_SETTINGS.parent))}"]
        scheduler_options = {**(dask.config.get(f"{config}.scheduler-options", None) or {}),
                             "dashboard_address": "127.0.0.1:0"}
        try:
            with dask.config.set(_dotted(yaml.safe_load(DASK_SETTINGS.read_text()))):
                self.cluster = getattr(dask_jobqueue, class_name)(
                    processes=self.cores, job_script_prologue=prologue, scheduler_options=scheduler_options)
            self.cluster.sync(_submit, self.cluster, self.jobs, self._presence)
            self.client = Client(self.cluster)
        except (OSError, TimeoutError, RuntimeError, ValueError) as exc:
            self.__exit__()
            raise ExecutorError(f"cannot submit a {self.kind.upper()} job: {_one_line(exc)}") from None
        from .plugins import WorkerSetup

        self.client.register_plugin(WorkerSetup(ignore_signals=False), name="reconstruction-gb-setup")
        return self

    def _may_get_workers(self) -> bool:
        """A job not lost (queued, starting or running) may still bring workers."""
        return bool(self.cluster is not None and self.cluster.worker_spec)

    def _watch_workers(self) -> None:
        """Cancel and resubmit jobs that are gone (their workers all left, or the batch scheduler
        says they ended before any joined); then the generic check."""
        # From the scheduler's own record of joins and departures, not from what is connected at
        # this look: a job whose workers joined and left between two looks would otherwise never
        # count as having had workers, and be waited for forever, as if still queued.
        connected, last_seen = self._presence.snapshot()
        now = time.monotonic()
        lost: dict[str, str] = {}  # job name -> why it counts as lost
        never_joined = []
        for name, spec in list(self.cluster.worker_spec.items()):
            self._job_ids[name] = getattr(self.cluster.workers.get(name), "job_id", None) or self._job_ids.get(name, name)
            workers = {f"{name}{suffix}" for suffix in spec.get("group", [""])}
            if workers & connected:
                self._last_seen[name] = now
            elif workers & last_seen.keys():
                self._last_seen[name] = max(last_seen[worker] for worker in workers & last_seen.keys())
            else:
                never_joined.append(name)  # queued, starting, or ended before its workers joined
                continue
            if not workers & connected and (now - self._last_seen[name] >= self.worker_timeout
                                             or name not in self.cluster.workers):
                # It had workers and has had none for worker_timeout (or dask's SpecCluster has
                # dropped it already): it ended.
                lost[name] = "lost all its workers"
        if never_joined and now >= self._next_status_query:
            # Only the batch scheduler can tell a job still in its queue from one that ended
            # before its workers started; it is asked at most every job_status_interval.
            self._next_status_query = now + self.job_status_interval
            ids = {self._job_ids[name]: name for name in never_joined if name in self.cluster.workers}
            for job_id, state in ended_jobs(self.kind, list(ids)).items():
                how = "the scheduler lists it no more" if state == GONE else state
                lost[ids[job_id]] = f"ended ({how}) before any of its workers joined"
        if lost:
            self.cluster.sync(self._replace, lost)
        super()._watch_workers()

    async def _replace(self, lost: dict[str, str]) -> None:
        """Cancel the lost jobs (name -> why) and, while the limit allows, submit others in their place."""
        for name, why in lost.items():
            job_id = self._job_ids.pop(name, name)
            self.lost += 1
            self._last_seen.pop(name, None)
            if self.resubmitted < self.resubmit_limit:
                self.resubmitted += 1
                self.cluster.worker_spec.update(self.cluster.new_worker_spec())  # before the pop: a fresh name
                self.notify(f"{self.kind.upper()} job {job_id} {why}; submitting another "
                            f"({self.resubmitted} of at most {self.resubmit_limit} resubmissions)")
            else:
                self.notify(f"{self.kind.upper()} job {job_id} {why}; not resubmitted "
                            f"(reconstruction-gb.resubmit-limit: {self.resubmit_limit})")
            self.cluster.worker_spec.pop(name, None)
            job = self.cluster.workers.pop(name, None)
            if job is not None:
                try:
                    await job.close()  # scancel: it may still hold its allocation
                except Exception:  # noqa: BLE001 - the job is gone either way
                    pass
        try:
            await self.cluster._correct_state()  # submits the new specs (one call: no other spec is re-made)
        except Exception as exc:  # noqa: BLE001 - a refused submission is one more job that will not come
            for pending, pending_job in list(self.cluster.workers.items()):
                if getattr(pending_job, "job_id", None) is None:
                    self.cluster.workers.pop(pending, None)
                    self.cluster.worker_spec.pop(pending, None)
            self.notify(f"cannot submit a {self.kind.upper()} job: {_one_line(exc)}")

    def _lost_message(self) -> str:
        return (f"every {self.kind.upper()} job ended ({self.lost} lost, {self.resubmitted} resubmitted, "
                f"reconstruction-gb.resubmit-limit: {self.resubmit_limit}) and no worker has been connected "
                f"for {self.worker_timeout:g} s")


def _import_dask_jobqueue() -> Any:
    """dask_jobqueue, imported without its change to this process's Ctrl-C.

    Its runner module replaces the SIGINT handler with `sys.exit()` as it is imported: Ctrl-C
    then ended generate with exit status 0 and not a word, instead of committing what finished,
    saying so and exiting 130. The handler in place before the import is put back.
    """
    previous = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    finally:
        if threading.current_thread() is threading.main_thread() and previous is not None:
            signal.signal(signal.SIGINT, previous)
    return dask_jobqueue


async def _submit(cluster: Any, jobs: int, presence: WorkerPresence | None = None) -> None:
    """Submit `jobs` jobs and wait until each is submitted; raises if a submission fails.

    `presence` is installed on the scheduler first, so it sees every worker of these jobs join.
    (`cluster.scale(jobs=...)` would submit in the background and only log a failure, leaving
    generate waiting forever for workers that will never come.)
    """
    from distributed.core import Status

    if presence is not None:
        cluster.scheduler.add_plugin(presence, name=presence.name)
    for _ in range(jobs):
        cluster.worker_spec.update(cluster.new_worker_spec())
    try:
        await cluster._correct_state()
    except Exception:
        for name, job in list(cluster.workers.items()):
            if job.job_id is None:  # never submitted: nothing to cancel when the cluster closes
                job.status = Status.failed
                del cluster.workers[name]
                cluster.worker_spec.pop(name, None)
        raise


def _one_line(exc: BaseException) -> str:
    """The gist of an error from dask-jobqueue: the submission command's stderr, if it has one."""
    text = str(exc)
    if "stderr:" in text:
        lines = [line.strip() for line in text.split("stderr:", 1)[1].splitlines() if line.strip()]
        exit_code = next((line for line in text.splitlines() if line.startswith("Exit code:")), "")
        return f"{lines[-1] if lines else 'no message'} ({exit_code.lower() or 'failed'})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
