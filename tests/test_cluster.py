"""`generate --cluster slurm`: dask-jobqueue's real code submits real workers through stand-in
`sbatch`/`squeue`/`scancel` scripts (tests/standins) that run each job script as a local process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_same_arrays, one_error_line, tree
from pipeline.executors import DASK_SETTINGS

STANDINS = REPO / "tests" / "standins"
JOBQUEUE_YAML = """
jobqueue:
  slurm:
    cores: 2
    memory: 2GB
    walltime: "00:10:00"
    interface: lo
    death-timeout: 30
    local-directory: {workers}
"""


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    from pipeline.config import GenerationConfig
    from pipeline.generate import generate

    out = tmp_path_factory.mktemp("serial") / "serial.zarr"
    generate(out, 12, GenerationConfig(size=64), seed=0)
    return out


@pytest.fixture
def slurm(tmp_path):
    """A fake SLURM: stand-ins first on PATH, the user's jobqueue.yaml in DASK_CONFIG; yields (env, jobs dir)."""
    jobs, config = tmp_path / "jobs", tmp_path / "dask-config"
    jobs.mkdir()
    config.mkdir()
    (config / "jobqueue.yaml").write_text(JOBQUEUE_YAML.format(workers=tmp_path / "worker-space"))
    env = {**os.environ, "PATH": f"{STANDINS}{os.pathsep}{os.environ['PATH']}", "DASK_CONFIG": str(config),
           "STANDIN_JOBS": str(jobs)}
    yield env, jobs
    leftover = _running_jobs(jobs)
    for pgid in leftover:  # never leave a process behind, even when the test failed
        os.killpg(pgid, signal.SIGKILL)
    assert not leftover, "job processes were still running after the test"


def _running_jobs(jobs: Path, wait: float = 30.0) -> list[int]:
    """Process groups of submitted jobs still alive after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        alive = []
        for pid_file in jobs.glob("*.pid"):
            pgid = int(pid_file.read_text())
            try:
                os.killpg(pgid, 0)
                alive.append(pgid)
            except ProcessLookupError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _generate(env, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "cli.py"), "generate", "--count", "12", "--size", "64",
               "--out", "lib.zarr", "--no-progress", *extra]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_generate_on_slurm_through_dask_jobqueue_matches_the_serial_store(tmp_path, slurm, serial):
    env, jobs = slurm
    work = tmp_path / "work"
    work.mkdir()
    run = _generate(env, work, "--cluster", "slurm", "--jobs", "2", "--block", "2")
    assert run.returncode == 0, run.stdout + run.stderr + "".join(p.read_text() for p in jobs.glob("*.log"))
    assert "running on SLURM cluster through dask-jobqueue, 2 job(s) of 2 single-thread workers" in run.stdout
    assert "127.0.0.1" in run.stdout  # the dashboard
    assert_same_arrays(serial, work / "lib.zarr")
    assert sorted(p.name for p in work.iterdir()) == ["lib.zarr"]
    # Two jobs were submitted, each ran two one-thread workers with the project's settings...
    scripts = sorted(jobs.glob("*.sh"))
    assert len(scripts) == 2
    script = scripts[0].read_text()
    assert "#SBATCH -t 00:10:00" in script and "--nthreads 1" in script and "--nworkers 2" in script
    assert f"export DASK_CONFIG={DASK_SETTINGS.parent}" in script  # the project's worker settings
    # ...and every job was cancelled at the end, its processes gone.
    assert sorted((jobs / "cancelled").read_text().split()) == ["1000", "1001"]
    assert _running_jobs(jobs) == []


@pytest.mark.parametrize("setup, message", [
    ("no-sbatch", "--cluster slurm needs the `sbatch` command, which is not on PATH"),
    ("fail-submit", "cannot submit a SLURM job: sbatch: error: Batch job submission failed: Invalid account"),
    ("no-cores", "set jobqueue.slurm.cores and jobqueue.slurm.memory in your jobqueue.yaml"),
])
def test_a_cluster_that_cannot_be_used_is_one_clear_line_and_writes_nothing(tmp_path, slurm, run_cli, monkeypatch,
                                                                              setup, message):
    env, jobs = slurm
    work = tmp_path / "work"
    work.mkdir()
    if setup == "no-sbatch":
        env = {**env, "PATH": os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != str(STANDINS))}
    elif setup == "fail-submit":
        (jobs / "fail-submit").touch()
    else:
        (Path(env["DASK_CONFIG"]) / "jobqueue.yaml").write_text("jobqueue: {slurm: {queue: short}}\n")
    run = _generate(env, work, "--cluster", "slurm")
    assert run.returncode == 1, run.stdout + run.stderr
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], run.stdout + run.stderr
    assert tree(work) == []
    assert not list(jobs.glob("*.pid"))


@pytest.mark.parametrize("args, message", [
    (["--cluster", "condor"], "Invalid value for '--cluster'"),
    (["--cluster", "slurm", "--workers", "2"], "only one of --workers, --scheduler, --cluster"),
    (["--jobs", "2"], "--jobs goes with --cluster"),
    (["--cluster", "slurm", "--jobs", "0"], "Invalid value for '--jobs'"),
])
def test_bad_cluster_options_are_one_clear_line(run_cli, tmp_path, args, message):
    result = run_cli("generate", "--count", 3, "--size", 64, "--out", tmp_path / "x.zarr", *args)
    assert message in one_error_line(result)
    assert tree(tmp_path) == []
