"""Generation as a batch job: killed workers, killed runs, and a real Dask cluster."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zarr

from conftest import REPO, assert_same_arrays, store_arrays
from faults import KillingExecutor
from pipeline.config import GenerationConfig
from pipeline.executors import ExecutorError
from pipeline.generate import generate

CLI = [sys.executable, str(REPO / "cli.py")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A serial, uninterrupted 60-pair library at 96 px."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    generate(out, 60, GenerationConfig(size=96), seed=0)
    return out


def test_a_worker_killed_once_has_its_block_retried(tmp_path, reference):
    out = tmp_path / "s.zarr"
    marker = tmp_path / "killed-once"
    report = generate(out, 60, GenerationConfig(size=96), executor=KillingExecutor(23, marker, once=True, workers=2),
                      block_size=5)
    assert marker.exists()  # a worker did die
    assert report.made == 60 and report.done == 60
    assert_same_arrays(reference, out)


def test_a_block_that_always_kills_its_worker_ends_the_run_and_keeps_the_rest(tmp_path):
    out = tmp_path / "s.zarr"
    executor = KillingExecutor(23, tmp_path / "marker", once=False, workers=2)
    # 40 pairs: shards of 2 samples; blocks of 5 pairs are rounded up to 3 whole shards (6 samples).
    with pytest.raises(ExecutorError, match=r"block of samples 18-23 failed: the worker process running it died"):
        generate(out, 40, GenerationConfig(size=64), executor=executor, block_size=5)
    done = store_arrays(out)["done"]
    assert not done[18:24].any()
    assert done.sum() <= 34  # every other block either finished (and is marked) or was cancelled
    report = generate(out, 40, GenerationConfig(size=64))  # the rest can be finished
    assert report.made == 40 - done.sum() and store_arrays(out)["done"].all()


def _run_until_killed(command: list[str], cwd: Path, when: Callable[[], bool]) -> bool:
    """Run `command` in a process group of its own; SIGKILL the whole group once `when()` holds.

    Returns whether the kill happened (False: the run ended first).
    """
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    while process.poll() is None:  # events only: the condition, or the run's end
        if when():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    process.wait()
    return False


def _done_count(store: Path) -> int:
    try:
        return int(zarr.open_group(str(store), mode="r")["done"][:].sum())
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return 0  # not created yet, or creation under way


# The CLI's generate with 2 local Dask workers, marking samples done after every block (the CLI
# marks them every 5 s, longer than these short runs last).
KILLABLE_RUN = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from pipeline.config import GenerationConfig
from pipeline.executors import DaskExecutor
from pipeline.generate import generate
if __name__ == "__main__":
    generate("s.zarr", 60, GenerationConfig(size=96), executor=DaskExecutor(workers=2), block_size=2,
             commit_interval=0)
"""


def test_kill_9_at_random_moments_then_rerun_gives_the_uninterrupted_store(tmp_path, reference):
    script = tmp_path.parent / f"{tmp_path.name}-run.py"  # outside the directory that is checked
    script.write_text(KILLABLE_RUN)
    out = tmp_path / "s.zarr"
    rng = random.Random(2026)
    run = [sys.executable, str(script)]
    # Three random moments: during start-up, then when random shares of the pairs are done.
    start = time.monotonic()
    early = rng.uniform(0.2, 1.0)
    _run_until_killed(run, tmp_path, lambda: time.monotonic() - start > early)
    for low, high in [(6, 26), (30, 54)]:
        target = rng.randint(low, high)
        assert _run_until_killed(run, tmp_path, lambda: _done_count(out) >= target), "the run ended before the kill"
        assert 0 < _done_count(out) < 60
    final = subprocess.run([*CLI, "generate", "--count", "60", "--size", "96", "--out", "s.zarr", "--workers", "2",
                            "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert "resuming:" in final.stdout
    assert store_arrays(out)["done"].all()
    assert not list(out.rglob("*.partial"))
    assert_same_arrays(reference, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_during_a_two_worker_run_is_one_line_and_resumable(tmp_path, signum, status):
    command = [*CLI, "generate", "--count", "400", "--size", "64", "--out", "s.zarr", "--workers", "2", "--no-progress"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("running on local Dask cluster"), first + process.communicate()[1]
        # Interrupt the run proper: once the workers have written their first shards (on a loaded
        # machine a fixed delay could land in the cluster's start-up instead).
        shards = tmp_path / "s.zarr" / "micro"
        while process.poll() is None and not [p for p in shards.glob("c*") if not p.name.endswith(".partial")]:
            time.sleep(0.05)
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before its first shard was seen"
        # Ctrl-C reaches every process of the group; so does SLURM's (or Kubernetes') SIGTERM.
        os.killpg(process.pid, signum)
        out, err = process.communicate(timeout=240)
    finally:
        process.kill()
    assert process.returncode == status, err
    assert "Traceback" not in out + err and "leaked semaphore" not in err, err
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    match = re.fullmatch(word + r": (\d+) of 400 pairs done; run the same command to continue", err.strip())
    assert match, err
    assert int(match.group(1)) == int(store_arrays(tmp_path / "s.zarr")["done"].sum())
    if signum == signal.SIGTERM:
        return  # resuming is the same as after Ctrl-C
    final = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"resuming: {match.group(1)} of 400 pairs done" in final.stdout
    assert store_arrays(tmp_path / "s.zarr")["done"].all()


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two `dask worker`s (1 and 2 threads) on 127.0.0.1; yields the address."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    scheduler_file = tmp_path / "scheduler.json"
    started = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not scheduler_file.exists() or not scheduler_file.read_text().rstrip().endswith("}"):
            assert started[0].poll() is None, f"dask scheduler exited ({started[0].returncode}) before writing its address"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for threads in (1, 2):
            started.append(subprocess.Popen(
                [str(bin_dir / "dask"), "worker", address, "--nthreads", str(threads), "--host", "127.0.0.1",
                 "--no-dashboard", "--local-directory", str(tmp_path / f"worker{threads}")],
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=30) as client:
            while len(client.scheduler_info()["workers"]) < 2:  # the event: both workers registered
                exited = [p.returncode for p in started[1:] if p.poll() is not None]
                assert not exited, f"a dask worker exited ({exited}) before registering with the scheduler"
                time.sleep(0.1)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_generate_on_an_existing_cluster_matches_the_serial_run(tmp_path, reference, dask_cluster, run_cli):
    out = tmp_path / "cluster.zarr"
    result = run_cli("generate", "--count", 60, "--size", 96, "--out", out, "--scheduler", dask_cluster,
                     "--block", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"running on Dask cluster at {dask_cluster}" in result.output
    assert_same_arrays(reference, out)


def test_when_the_last_worker_of_an_existing_cluster_goes_generate_stops_with_one_line(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(REPO), "DASK_RECONSTRUCTION_GB__WORKER_TIMEOUT": "2s"}
    scheduler_file = tmp_path.parent / f"{tmp_path.name}-scheduler.json"  # outside the directory that is checked
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                 cwd=tmp_path.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = [scheduler]
    try:
        while not scheduler_file.exists() or not scheduler_file.read_text().rstrip().endswith("}"):
            assert scheduler.poll() is None, "dask scheduler ended before writing its address"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                   "--no-dashboard", "--local-directory", str(tmp_path.parent / f"{tmp_path.name}-w")],
                                  cwd=tmp_path.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        started.append(worker)
        # Enough pairs that the run is still going when the worker is killed: all 40 once finished
        # (61 pairs/s) between the first being seen done and the kill.
        command = [*CLI, "generate", "--count", "1000", "--size", "64", "--out", "s.zarr", "--scheduler", address,
                   "--block", "1", "--no-progress"]
        run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        started.append(run)
        while run.poll() is None and not _done_count(tmp_path / "s.zarr"):  # the event: a sample marked done
            time.sleep(0.02)
        assert run.poll() is None, f"the run ended (exit {run.returncode}) before the worker was killed"
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its nanny: the cluster's last worker
        out, err = run.communicate(timeout=240)
    finally:
        for process in reversed(started):
            process.kill()
            process.wait()
    assert run.returncode == 1, out + err
    kept = _done_count(tmp_path / "s.zarr")
    assert 0 < kept < 1000
    last = err.strip().splitlines()[-1]
    assert last == (f"Error: no worker of the Dask cluster at {address} has been connected for 2 s: stopped with "
                    f"{kept} of 1000 pairs done (kept); to continue, run: {shlex.join(command)}"), err
    assert "Traceback" not in out + err and "leaked semaphore" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_an_address_that_answers_but_is_no_dask_scheduler_is_one_line(tmp_path, run_cli):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer_with_garbage() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"\xff" * 64)  # a frame header claiming exabytes

    threading.Thread(target=answer_with_garbage, daemon=True).start()
    try:
        result = run_cli("generate", "--count", 4, "--size", 64, "--out", tmp_path / "s.zarr", "--no-progress",
                         "--scheduler", f"tcp://127.0.0.1:{port}")
    finally:
        listener.close()
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: tcp://127.0.0.1:{port} answered, but not as a Dask scheduler"), result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["2 lightyears", "nan", "inf", "[2s]"])
def test_a_bad_worker_timeout_is_one_line_and_writes_nothing(run_cli, tmp_path, value):
    """DASK_RECONSTRUCTION_GB__WORKER_TIMEOUT=2 lightyears (or nan, inf) gave dask's KeyError traceback."""
    import dask

    from conftest import one_error_line, tree

    with dask.config.set({"reconstruction-gb.worker-timeout": value}):
        line = one_error_line(run_cli("generate", "--count", 2, "--size", 64, "--out", tmp_path / "s.zarr",
                                      "--workers", 1, "--no-progress"))
    assert line == f"Error: reconstruction-gb.worker-timeout must be a duration such as 60s, got {value!r}"
    assert tree(tmp_path) == []


@pytest.mark.parametrize("text, problem", [
    ("reconstruction-gb:\n  worker-timeout: [2s\n", "expected ',' or ']', but got '<stream end>' (line 3, column 1)"),
    ("- a list\n", "config files must have a dict as the top level object, got a list instead"),
])
def test_a_malformed_dask_configuration_file_is_one_line_and_writes_nothing(tmp_path, text, problem):
    """Dask reads DASK_CONFIG as it is imported: that gave a ValueError traceback of dask.config."""
    config = tmp_path / "dask"
    config.mkdir()
    (config / "mine.yaml").write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run([*CLI, "generate", "--count", "2", "--size", "64", "--out", "s.zarr", "--workers", "1"],
                         cwd=work, env={**os.environ, "DASK_CONFIG": str(config)}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert (run.stdout + run.stderr).strip() == (f"Error: the Dask configuration file {config / 'mine.yaml'} is "
                                                 f"malformed: {problem}; fix or remove it")
    assert list(work.iterdir()) == []


CTRL_C_BEFORE_A_DASK_CALL_STARTS = r"""
import os, signal, sys, threading, time
from distributed.utils import LoopRunner, sync  # distributed's logging: errors go to stderr
from pipeline.executors import quiet_lost_results

quiet_lost_results()  # what every Dask executor installs as it starts
runner = LoopRunner()
runner.start()
main, interrupted = threading.main_thread().ident, threading.Event()


def waiting_in_sync():
    frame = sys._current_frames().get(main)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename.endswith(os.path.join("distributed", "utils.py")):
            return True
        frame = frame.f_back
    return False


def busy_loop():
    # The event loop is busy (a loaded machine) when Ctrl-C reaches the driver inside sync():
    # sync() schedules its cancel callback before its own coroutine has started.
    while not waiting_in_sync():  # the event: the main thread waits in sync()
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)
    interrupted.wait()  # the event: sync() has raised KeyboardInterrupt, its cancel callback queued


async def nothing():
    return None


runner.loop.add_callback(busy_loop)
try:
    sync(runner.loop, nothing)
except KeyboardInterrupt:
    interrupted.set()
sync(runner.loop, nothing)  # queued after the cancel callback: that has run when this returns
runner.stop()
print("interrupted")
"""


def test_ctrl_c_before_a_dask_call_starts_prints_no_traceback_from_distributed():
    """The Ctrl-C test above, on a loaded 2-core machine, printed distributed's
    `NameError: cannot access free variable 'future'` traceback: Ctrl-C had landed in one of
    distributed's blocking calls before its coroutine started. Here that moment is made, not hoped for."""
    run = subprocess.run([sys.executable, "-c", CTRL_C_BEFORE_A_DASK_CALL_STARTS], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == "interrupted\n", run.stdout + run.stderr
    assert run.stderr == ""
