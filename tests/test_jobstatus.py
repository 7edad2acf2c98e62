"""pipeline/jobstatus.py: which batch jobs ended, read from what squeue, qstat and bjobs print.

The answers below are the schedulers' own formats (SLURM 23, PBS Pro 2022 and Torque 6, Son of
Grid Engine 8, LSF 10); tests/test_cluster.py runs the SLURM path end to end through stand-ins.
"""

from __future__ import annotations

import pytest

from pipeline.jobstatus import GONE, ended_jobs


def answers(*replies):
    """A runner that gives `replies` (code, stdout, stderr) in turn and records the commands asked."""
    asked: list[list[str]] = []
    queue = list(replies)

    def run(argv: list[str]):
        asked.append(argv)
        return queue.pop(0)

    run.asked = asked  # type: ignore[attr-defined]
    return run


def test_slurm_running_queued_ended_and_purged_jobs():
    run = answers((0, "1000 RUNNING\n1001 PENDING\n1002 FAILED\n1003 COMPLETING\n", ""))
    assert ended_jobs("slurm", ["1000", "1001", "1002", "1003", "1004"], run) == {
        "1002": "FAILED", "1003": "COMPLETING", "1004": GONE}
    assert run.asked == [["squeue", "--noheader", "--format=%i %T", "--jobs=1000,1001,1002,1003,1004"]]


def test_slurm_refusing_a_list_for_one_purged_id_is_asked_job_by_job():
    invalid = (1, "", "slurm_load_jobs error: Invalid job id specified\n")
    run = answers(invalid, (0, "1000 PENDING\n", ""), invalid)
    assert ended_jobs("slurm", ["1000", "1001"], run) == {"1001": GONE}
    assert [argv[-1] for argv in run.asked] == ["--jobs=1000,1001", "--jobs=1000", "--jobs=1001"]


@pytest.mark.parametrize("kind, reply", [
    ("slurm", (1, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n")),
    ("slurm", None),  # squeue missing, or it hung
    ("pbs", (2, "", "qstat: cannot connect to server pbs01 (errno=111)\n")),
    ("sge", (1, "", "error: commlib error: got select error (Connection refused)\n")),
    ("lsf", (255, "", "LSF is down. Please wait ...\n")),
])
def test_a_scheduler_that_cannot_answer_ends_no_job(kind, reply):
    assert ended_jobs(kind, ["1000"], answers(reply)) == {}


def test_pbs_finished_unknown_and_running_jobs():
    table = ("Job id            Name             User              Time Use S Queue\n"
             "----------------  ---------------- ----------------  -------- - -----\n"
             "1000.pbs01        dask-worker      ana               00:00:03 R workq\n"
             "1001.pbs01        dask-worker      ana               00:00:00 C workq\n")
    errors = ("qstat: Unknown Job Id 1002.pbs01\n"
              "qstat: 1003.pbs01 Job has finished, use -x or -H to obtain historical job information\n")
    run = answers((35, table, errors))
    assert ended_jobs("pbs", ["1000", "1001", "1002", "1003"], run) == {"1001": "C", "1002": GONE, "1003": GONE}
    assert run.asked == [["qstat", "1000", "1001", "1002", "1003"]]


def test_sge_lists_queued_jobs_and_an_error_state_never_runs():
    table = ("job-ID  prior   name       user         state submit/start at     queue          slots ja-task-ID\n"
             "-----------------------------------------------------------------------------------------------\n"
             "   1000 0.55500 dask-worke ana          r     06/01/2026 10:00:00 all.q@node1       2\n"
             "   1001 0.55500 dask-worke ana          Eqw   06/01/2026 10:00:00                   2\n"
             "   1002 0.00000 dask-worke ana          qw    06/01/2026 10:00:01                   2\n")
    assert ended_jobs("sge", ["1000", "1001", "1002", "1003"], answers((0, table, ""))) == {
        "1001": "Eqw", "1003": GONE}


def test_lsf_done_exit_and_forgotten_jobs():
    table = ("JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n"
             "1000    ana     RUN   normal     login1      node3       dask-worker Jun  1 10:00\n"
             "1001    ana     PEND  normal     login1                  dask-worker Jun  1 10:00\n"
             "1002    ana     EXIT  normal     login1      node4       dask-worker Jun  1 10:00\n")
    run = answers((255, table, "Job <1003> is not found\n"))
    assert ended_jobs("lsf", ["1000", "1001", "1002", "1003"], run) == {"1002": "EXIT", "1003": GONE}
    assert run.asked == [["bjobs", "-w", "1000", "1001", "1002", "1003"]]


def test_no_job_asks_nothing():
    assert ended_jobs("slurm", [], answers()) == {}
