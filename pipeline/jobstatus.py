"""Whether batch jobs still exist, asked of their scheduler (squeue, qstat, bjobs) by job id.

The Dask scheduler only sees workers: a job that ends before any of its workers joins (a failing
prologue, a node that never boots, `scancel` while queued) looks to it exactly like a job still
waiting in the queue. Only the batch scheduler can tell the two apart.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence

ASK_TIMEOUT_S = 30.0  # a scheduler too busy to answer in this time is asked again later
GONE = "gone"  # the state of a job the scheduler no longer lists (ended, and forgotten)

# States after which a job runs no more. SLURM lists an ended job for a few minutes (MinJobAge),
# PBS Torque keeps completed jobs (C) for keep_completed seconds, LSF its DONE/EXIT jobs for an hour.
SLURM_ENDED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "COMPLETING", "DEADLINE", "FAILED", "NODE_FAIL",
                         "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT"})
PBS_ENDED = frozenset({"C", "E", "F"})  # completed (Torque), exiting, finished (PBS Pro)
LSF_ENDED = frozenset({"DONE", "EXIT"})

# (returncode, stdout, stderr) of a command, or None when it could not be run or did not answer.
Answer = tuple[int, str, str] | None
Runner = Callable[[list[str]], Answer]


def run_command(argv: list[str]) -> Answer:
    """Run a scheduler query; None if the command is missing, fails to start or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=ASK_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, done.stdout, done.stderr


def ended_jobs(kind: str, job_ids: Sequence[str], run: Runner = run_command) -> dict[str, str]:
    """The jobs of `job_ids` that the batch scheduler `kind` says have ended, each with its last
    state (e.g. FAILED, or GONE when no longer listed). A job it cannot tell about (the command
    failed or did not answer) is left out: it is not known to have ended."""
    job_ids = [str(job) for job in job_ids]
    if not job_ids:
        return {}
    return {"slurm": _slurm, "pbs": _pbs, "sge": _sge, "lsf": _lsf}[kind](job_ids, run)


def _slurm(job_ids: list[str], run: Runner) -> dict[str, str]:
    answer = run(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(job_ids)}"])
    if answer is None:
        return {}
    code, out, err = answer
    if code != 0:
        if "invalid job id" not in err.lower():
            return {}  # slurmctld unreachable, or another error: nothing is known
        if len(job_ids) == 1:
            return {job_ids[0]: GONE}  # purged after MinJobAge
        # Some SLURM versions refuse the whole list for one purged id: ask about each alone.
        ended: dict[str, str] = {}
        for job in job_ids:
            ended.update(_slurm([job], run))
        return ended
    states = _columns(out, 0, 1)
    return {job: states.get(job, GONE) for job in job_ids if states.get(job, GONE) in SLURM_ENDED | {GONE}}


def _pbs(job_ids: list[str], run: Runner) -> dict[str, str]:
    answer = run(["qstat", *job_ids])
    if answer is None:
        return {}
    code, out, err = answer
    states = {_bare(job): state for job, state in _columns(out, 0, 4).items()}
    ended = {job: states[job] for job in job_ids if states.get(job) in PBS_ENDED}
    for line in err.splitlines():  # one line per job qstat no longer knows, or keeps only in its history
        if re.search(r"unknown job id|job has finished", line, re.IGNORECASE):
            named = {_bare(token) for token in re.findall(r"[\w.\[\]-]+", line)}
            ended.update({job: GONE for job in job_ids if job in named})
    return ended


def _sge(job_ids: list[str], run: Runner) -> dict[str, str]:
    # `qstat -j ID` answers for one job only; plain `qstat` lists every queued or running job of the user.
    answer = run(["qstat"])
    if answer is None or answer[0] != 0:
        return {}
    states = _columns(answer[1], 0, 4)
    # E (error: the job will never start) and d (being deleted) end a job as surely as leaving the list.
    return {job: states.get(job, GONE) for job in job_ids
            if job not in states or "E" in states[job] or "d" in states[job]}


def _lsf(job_ids: list[str], run: Runner) -> dict[str, str]:
    answer = run(["bjobs", "-w", *job_ids])
    if answer is None:
        return {}
    _, out, err = answer
    states = _columns(out, 0, 2)
    ended = {job: states[job] for job in job_ids if states.get(job) in LSF_ENDED}
    for job in re.findall(r"Job <([^>]+)> is not found", err):
        if job in job_ids:
            ended[job] = GONE
    return ended


def _columns(table: str, key: int, value: int) -> dict[str, str]:
    """{row[key]: row[value]} for every whitespace-separated row of `table` long enough to have both."""
    rows = (line.split() for line in table.splitlines())
    return {row[key]: row[value] for row in rows if len(row) > max(key, value)}


def _bare(job: str) -> str:
    """A PBS job id without its server part (qsub prints 1234.server; dask-jobqueue keeps 1234)."""
    return job.split(".", 1)[0]
