"""`generate --cluster slurm`: dask-jobqueue's real code submits real workers through stand-in
`sbatch`/`squeue`/`scancel` scripts (tests/standins) that run each job script as a local process."""

from __future__ import annotations

import os
import shlex
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
reconstruction-gb:
  worker-timeout: 2s
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


def _done_count(store: Path) -> int:
    import zarr

    try:
        return int(zarr.open_group(str(store), mode="r")["done"][:].sum())
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return 0  # not created yet


def _kill_first_job_once_samples_are_done(env, cwd: Path, jobs: Path, count: int, *extra: str):
    """Run generate; SIGKILL the first job's processes once a sample is done; returns (process, done at kill)."""
    command = [sys.executable, str(REPO / "cli.py"), "generate", "--count", str(count), "--size", "64",
               "--out", "lib.zarr", "--no-progress", "--cluster", "slurm", "--block", "1", *extra]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:  # events: a sample marked done in the store, or the run's end
        done = _done_count(cwd / "lib.zarr")
        if done:
            os.killpg(int((jobs / "1000.pid").read_text()), signal.SIGKILL)
            return process, done
        time.sleep(0.02)
    out, err = process.communicate()
    pytest.fail(f"generate ended (exit {process.returncode}) before any sample was done, so before the kill:\n"
                f"{out}{err}")


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    """(stdout, stderr) of the run once it exits; a run still going after 240 s is killed (never left
    behind) and the test fails with what it printed."""
    try:
        return process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"generate still running after 240 s (killed):\n{out}{err}")


@pytest.fixture(scope="module")
def serial_24(tmp_path_factory):
    from pipeline.config import GenerationConfig
    from pipeline.generate import generate

    out = tmp_path_factory.mktemp("serial24") / "serial.zarr"
    generate(out, 24, GenerationConfig(size=64), seed=0)
    return out


def test_a_job_killed_mid_run_is_resubmitted_and_the_store_matches_the_serial_one(tmp_path, slurm, serial_24):
    env, jobs = slurm
    (Path(env["DASK_CONFIG"]) / "limits.yaml").write_text("reconstruction-gb: {resubmit-limit: 1}\n")
    work = tmp_path / "work"
    work.mkdir()
    process, done = _kill_first_job_once_samples_are_done(env, work, jobs, 24)
    out, err = _finish(process)
    assert process.returncode == 0, out + err + "".join(p.read_text() for p in jobs.glob("*.log"))
    assert "SLURM job 1000 lost all its workers; submitting another (1 of at most 1 resubmissions)" in err, err
    assert "Traceback" not in out + err
    assert sorted(p.name for p in jobs.glob("*.sh")) == ["1000.sh", "1001.sh"]
    assert sorted((jobs / "cancelled").read_text().split()) == ["1000", "1001"]
    assert_same_arrays(serial_24, work / "lib.zarr")


def test_a_job_whose_workers_join_and_leave_between_two_looks_is_still_found_lost(tmp_path, slurm, monkeypatch):
    """The driver looks at the workers once a second; a job killed soon after its workers joined
    (before any look saw them) had workers all the same, and is resubmitted, not waited for."""
    import dask
    import yaml

    from pipeline.batch import BatchExecutor

    env, jobs = slurm
    for name in ("PATH", "STANDIN_JOBS"):
        monkeypatch.setenv(name, env[name])
    settings = yaml.safe_load(JOBQUEUE_YAML.format(workers=tmp_path / "worker-space"))
    lines: list[str] = []
    with dask.config.set({"jobqueue.slurm": settings["jobqueue"]["slurm"], "reconstruction-gb.worker-timeout": "2s",
                          "reconstruction-gb.resubmit-limit": 1}):
        with BatchExecutor("slurm", jobs=1, notify=lines.append) as executor:
            executor.client.wait_for_workers(2)  # both workers of job 1000 joined; the driver has not looked
            os.killpg(int((jobs / "1000.pid").read_text()), signal.SIGKILL)
            while executor.client.scheduler_info()["workers"]:  # event: the scheduler saw them leave
                time.sleep(0.05)
            left = time.monotonic()
            executor._watch_workers()  # the first look: no worker of any job is connected
            time.sleep(max(0.0, left + executor.worker_timeout - time.monotonic()))
            executor._watch_workers()  # a look once worker-timeout has passed since they left
            assert lines == ["SLURM job 1000 lost all its workers; submitting another (1 of at most 1 resubmissions)"]
            assert sorted(p.name for p in jobs.glob("*.sh")) == ["1000.sh", "1001.sh"]
    assert sorted((jobs / "cancelled").read_text().split()) == ["1000", "1001"]


def test_when_every_job_is_lost_generate_stops_with_one_line_and_resumes(tmp_path, slurm, serial_24):
    env, jobs = slurm
    (Path(env["DASK_CONFIG"]) / "limits.yaml").write_text("reconstruction-gb: {resubmit-limit: 0}\n")
    work = tmp_path / "work"
    work.mkdir()
    process, done = _kill_first_job_once_samples_are_done(env, work, jobs, 24)
    out, err = _finish(process)
    assert process.returncode == 1, out + err
    last = err.strip().splitlines()[-1]
    kept = _done_count(work / "lib.zarr")
    assert kept >= done
    assert last.startswith("Error: every SLURM job ended (1 lost, 0 resubmitted, reconstruction-gb.resubmit-limit: 0) "
                           "and no worker has been connected for 2 s: "
                           f"stopped with {kept} of 24 pairs done (kept); to continue, run: "), err
    assert last.endswith("cli.py generate --count 24 --size 64 --out lib.zarr --no-progress --cluster slurm --block 1")
    assert "Traceback" not in out + err and "leaked semaphore" not in err
    assert sorted(p.name for p in jobs.glob("*.sh")) == ["1000.sh"]
    # The command it names continues the library to the store a single uninterrupted run makes.
    (Path(env["DASK_CONFIG"]) / "limits.yaml").unlink()
    run = subprocess.run(shlex.split(last.split("to continue, run: ", 1)[1]), cwd=work, env=env,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"resuming: {kept} of 24 pairs done" in run.stdout
    assert_same_arrays(serial_24, work / "lib.zarr")


def _with_prologue(env, *lines: str) -> None:
    """Add `lines` to the job script of every job, before its workers start (jobqueue.yaml's job-script-prologue)."""
    import yaml

    path = Path(env["DASK_CONFIG"]) / "jobqueue.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["jobqueue"]["slurm"]["job-script-prologue"] = list(lines)
    path.write_text(yaml.safe_dump(settings))


def test_jobs_that_end_before_their_workers_join_are_resubmitted_then_the_run_stops_with_one_line(tmp_path, slurm):
    """A job whose script fails before its workers start looked, to Dask, like a job still queued:
    generate waited forever. squeue says it ended: it is lost, resubmitted up to the limit, then
    the run stops with the pairs done and the command that continues."""
    env, jobs = slurm
    (Path(env["DASK_CONFIG"]) / "limits.yaml").write_text("reconstruction-gb: {resubmit-limit: 1}\n")
    _with_prologue(env, "exit 3")
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, str(REPO / "cli.py"), "generate", "--count", "12", "--size", "64", "--out", "lib.zarr",
               "--no-progress", "--cluster", "slurm", "--block", "1"]
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = _finish(process)
    assert process.returncode == 1, out + err
    assert "Traceback" not in out + err
    assert ("SLURM job 1000 ended (FAILED) before any of its workers joined; submitting another "
            "(1 of at most 1 resubmissions)") in err, err
    assert ("SLURM job 1001 ended (FAILED) before any of its workers joined; not resubmitted "
            "(reconstruction-gb.resubmit-limit: 1)") in err, err
    assert err.strip().splitlines()[-1] == (
        "Error: every SLURM job ended (2 lost, 1 resubmitted, reconstruction-gb.resubmit-limit: 1) and no worker has "
        f"been connected for 2 s: stopped with 0 of 12 pairs done (kept); to continue, run: {shlex.join(command)}")
    assert sorted(p.name for p in jobs.glob("*.sh")) == ["1000.sh", "1001.sh"]


def test_a_job_killed_before_its_workers_join_is_resubmitted_and_the_library_completes(tmp_path, slurm, serial):
    env, jobs = slurm
    (Path(env["DASK_CONFIG"]) / "limits.yaml").write_text("reconstruction-gb: {resubmit-limit: 1}\n")
    # Job 1000 waits as if queued (until killed); the job submitted after it starts its workers.
    _with_prologue(env, f"[ -e {shlex.quote(str(jobs / '1001.sh'))} ] || exec sleep 600")
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, str(REPO / "cli.py"), "generate", "--count", "12", "--size", "64", "--out", "lib.zarr",
               "--no-progress", "--cluster", "slurm", "--block", "2"]
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = jobs / "1000.pid"
    while not (pid_file.exists() and pid_file.read_text().strip()):  # the event: job 1000 started
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    os.killpg(int((jobs / "1000.pid").read_text()), signal.SIGKILL)
    out, err = _finish(process)
    assert process.returncode == 0, out + err + "".join(p.read_text() for p in jobs.glob("*.log"))
    assert ("SLURM job 1000 ended (FAILED) before any of its workers joined; submitting another "
            "(1 of at most 1 resubmissions)") in err, err
    assert "Traceback" not in out + err
    assert sorted((jobs / "cancelled").read_text().split()) == ["1000", "1001"]
    assert_same_arrays(serial, work / "lib.zarr")


def test_ctrl_c_while_the_job_is_queued_is_one_line_exit_130_and_the_job_cancelled(tmp_path, slurm):
    """Importing dask-jobqueue made Ctrl-C call sys.exit(): generate --cluster ended with exit 0 and not a word."""
    env, jobs = slurm
    _with_prologue(env, "exec sleep 600")  # a job that stays "queued": no worker ever joins
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, str(REPO / "cli.py"), "generate", "--count", "12", "--size", "64", "--out", "lib.zarr",
               "--no-progress", "--cluster", "slurm"]
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    first = process.stdout.readline()  # the event: the job is submitted and generate waits for its workers
    assert first.startswith("running on SLURM cluster"), first + process.communicate()[1]
    os.killpg(process.pid, signal.SIGINT)
    out, err = _finish(process)
    assert process.returncode == 130, out + err
    assert err.strip() == "interrupted: 0 of 12 pairs done; run the same command to continue"
    assert (jobs / "cancelled").read_text().split() == ["1000"]


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


def test_batch_workers_end_with_their_job_while_local_workers_leave_sigterm_to_the_driver(tmp_path):
    """scancel and the walltime end a job with SIGTERM to its session: a batch worker that ignored it
    (as local workers do, since they share the driver's process group) would outlive its job."""
    script = (
        "import signal, sys, types\n"
        "from pipeline.plugins import WorkerSetup\n"
        "worker = types.SimpleNamespace(local_directory=sys.argv[1])\n"
        "WorkerSetup(ignore_signals=sys.argv[2] == 'local').setup(worker)\n"
        "print(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, signal.getsignal(signal.SIGINT) == signal.SIG_IGN)\n"
    )
    seen = {kind: subprocess.run([sys.executable, "-c", script, str(tmp_path), kind], cwd=REPO, capture_output=True,
                                 text=True, timeout=120) for kind in ("local", "batch")}
    assert seen["local"].stdout.split() == ["True", "True"], seen["local"].stderr
    assert seen["batch"].stdout.split() == ["False", "False"], seen["batch"].stderr
