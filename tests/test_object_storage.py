"""Libraries on object storage (issue 34), against a real S3 API: moto's server on 127.0.0.1.

Every test gets an empty server with one bucket, `lib`; the CLI reaches it through the ordinary
AWS environment variables (AWS_ENDPOINT_URL and the keys), as a user of MinIO would.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, one_error_line

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")

BUCKET = "lib"
# "Within seconds": a failure to reach the store must not retry for minutes. Generous for a loaded
# 2-core machine (Python and the CLI start in about 2 s of it).
QUICK_S = 30


@pytest.fixture(scope="module")
def endpoint():
    """moto's S3 server in this process on a free port of 127.0.0.1; its URL once it answers."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line a request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for _ in range(600):  # until it answers (start() returns once it is bound)
        try:
            urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5).read()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    server.stop()


@pytest.fixture
def s3(endpoint, monkeypatch):
    """A fresh server holding the empty bucket `lib`, reached through the environment; a boto3 client on it."""
    import s3fs

    from pipeline.store import objects

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).read()
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    # s3fs instances keep their event loop and credentials: none may survive from another test.
    s3fs.S3FileSystem.clear_instance_cache()
    objects._FILESYSTEMS.clear()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    s3fs.S3FileSystem.clear_instance_cache()
    objects._FILESYSTEMS.clear()


def objects_under(client, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` of the bucket, by key relative to it."""
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
            for item in page.get("Contents", [])]
    return {key[len(prefix) + 1:]: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def exported(run_cli, store: object, out: Path) -> dict[str, bytes]:
    result = run_cli("export", store, "--out", out)
    assert result.exit_code == 0, result.output
    return local_files(out)


def generate(run_cli, out: object, count: int, *extra: object) -> str:
    result = run_cli("generate", "--count", count, "--size", 64, "--out", out, "--no-progress", *extra)
    assert result.exit_code == 0, result.output
    return result.output


def test_generate_with_two_workers_writes_what_a_local_run_writes(run_cli, s3, tmp_path):
    local = tmp_path / "local.zarr"
    generate(run_cli, local, 32, "--workers", "0")  # 2 samples a shard
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})  # every PUT is kept
    output = generate(run_cli, f"s3://{BUCKET}/libs/a.zarr", 32, "--workers", "2", "--block", "3")
    assert "32 pairs in" in output and f"s3://{BUCKET}/libs/a.zarr" in output
    # Blocks of 3 are rounded up to whole shards: every shard object was written once, whole, in one PUT.
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="libs/a.zarr/micro/c.")["Versions"]
    keys = [version["Key"] for version in versions]
    assert len(keys) == 16 and len(set(keys)) == 16
    assert exported(run_cli, f"s3://{BUCKET}/libs/a.zarr", tmp_path / "from-s3") == \
        exported(run_cli, local, tmp_path / "from-disk")
    stored, files = objects_under(s3, "libs/a.zarr"), local_files(local)
    assert sorted(stored) == sorted(files)  # the same objects as files: no partial objects, no lock object
    shards = [key for key in files if "/c." in key]
    assert shards and all(stored[key] == files[key] for key in shards)  # whole shards, byte for byte
    # The lease lives beside the store while a run holds it, and is gone after it.
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="libs/a.zarr.lease")
    assert not (Path.cwd() / "s3:").exists()  # never a local folder named after the URL


def test_info_verify_and_storage_options_reach_the_bucket(run_cli, s3, monkeypatch, endpoint):
    generate(run_cli, f"s3://{BUCKET}/b.zarr", 4, "--workers", "0")
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # given as a storage option instead
    options = '{"endpoint_url": "%s"}' % endpoint
    result = run_cli("info", f"s3://{BUCKET}/b.zarr", "--storage-options", options)
    assert result.exit_code == 0, result.output
    assert f"store:     s3://{BUCKET}/b.zarr (format version 2)" in result.output and "4 done / 4 planned" in result.output
    result = run_cli("verify", f"s3://{BUCKET}/b.zarr", "--storage-options", options)
    assert result.exit_code == 0 and "verified 4 samples: all good" in result.output, result.output
    result = run_cli("generate", "--count", 4, "--size", 64, "--seed", 7, "--out", f"s3://{BUCKET}/b.zarr",
                     "--storage-options", options, "--workers", 0, "--no-progress", "--overwrite")
    assert result.exit_code == 0 and "4 pairs in" in result.output, result.output
    result = run_cli("info", f"s3://{BUCKET}/b.zarr", "--storage-options", options)
    assert "seed:      7" in result.output, result.output
    assert "not JSON" in one_error_line(run_cli("info", f"s3://{BUCKET}/b.zarr", "--storage-options", "{oops"))
    assert "applies to a URL" in one_error_line(run_cli("info", "some/folder.zarr", "--storage-options", options))


@pytest.mark.parametrize("given, expected", [
    ("s3://bucket/libs/a.zarr/", "s3://bucket/libs/a.zarr"),
    ("gs://bucket/a.zarr", "gs://bucket/a.zarr"),
    ("memory://a.zarr", "memory://a.zarr"),
    ("file:///tmp/a.zarr", Path("/tmp/a.zarr")),
    ("a.zarr", Path.cwd() / "a.zarr"),
    ("odd:name.zarr", Path.cwd() / "odd:name.zarr"),
])
def test_a_url_is_kept_as_a_url_and_anything_else_is_a_folder(given, expected):
    from pipeline.store import StoreURL, store_location

    location = store_location(given)
    assert (str(location) if isinstance(location, StoreURL) else location) == expected


def test_a_killed_generate_resumes_to_the_identical_library(run_cli, s3, tmp_path):
    from pipeline.store import LibraryStore, StoreError

    url = f"s3://{BUCKET}/k.zarr"
    run = subprocess.Popen([sys.executable, "cli.py", "generate", "--count", "24", "--size", "64", "--out", url,
                            "--workers", "0", "--no-progress"], cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        done = 0
        for _ in range(6000):  # until the run has committed some samples, not all (or it ended)
            if run.poll() is not None:
                break
            try:
                done = int(LibraryStore.open(url).done().sum())
            except StoreError:
                done = 0  # not created yet
            if done:
                break
            time.sleep(0.05)
        assert run.poll() is None, f"generate ended before it could be killed: {run.stderr.read()}"
        run.send_signal(signal.SIGKILL)  # its lease stays behind: a holder on this machine that is gone
        run.wait()
    finally:
        run.kill()
        run.wait()
    output = generate(run_cli, url, 24, "--workers", "0")
    assert "resuming: " in output and "24 pairs in" not in output
    local = tmp_path / "local.zarr"
    generate(run_cli, local, 24, "--workers", "0")
    assert exported(run_cli, url, tmp_path / "a") == exported(run_cli, local, tmp_path / "b")
    shards = {k: v for k, v in local_files(local).items() if "/c." in k}
    stored = objects_under(s3, "k.zarr")
    assert all(stored[key] == data for key, data in shards.items())


def test_a_second_writer_is_refused_while_the_lease_is_held(run_cli, s3):
    url = f"s3://{BUCKET}/s.zarr"
    generate(run_cli, url, 4, "--workers", "0")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(REPO)!r})
            from pipeline.store import LibraryStore
            with LibraryStore.open({url!r}).writer_lock():
                print("locked", flush=True)
                time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--overwrite"]):
            result = run_cli("generate", "--count", 6, "--size", 64, "--out", url, "--workers", 0, *extra)
            assert result.exit_code == 1 and "is being written by another generate run" in result.output, result.output
        lease = s3.get_object(Bucket=BUCKET, Key="s.zarr.lease")["Body"].read()
        assert str(holder.pid).encode() in lease
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        output = generate(run_cli, url, 6, "--workers", "0")  # a dead holder's lease is taken over at once
        assert "resuming: 4 of 4 pairs done" in output and "2 pairs in" in output
    finally:
        holder.kill()
        holder.wait()


def test_verify_finds_a_flipped_byte_in_a_shard_object_and_repair_rewrites_it(run_cli, s3):
    url = f"s3://{BUCKET}/v.zarr"
    generate(run_cli, url, 8, "--workers", "0")
    key = "v.zarr/micro/c.3.0.0"  # one sample a shard at 8 pairs
    original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 3] ^= 0x40
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(flipped))
    result = run_cli("verify", url)
    assert result.exit_code == 1 and "sample 3: micro" in result.output, result.output
    assert "verified 8 samples: 1 bad" in result.output
    result = run_cli("verify", url, "--repair")
    assert result.exit_code == 0 and "repaired sample 3" in result.output, result.output
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == original


def test_import_writes_a_store_into_the_bucket(run_cli, s3, tmp_path):
    url = f"s3://{BUCKET}/imported.zarr"
    folder = tmp_path / "pairs"
    generate(run_cli, tmp_path / "src.zarr", 4, "--workers", "0")
    before = exported(run_cli, tmp_path / "src.zarr", folder)
    result = run_cli("import", folder, "--out", url)
    assert result.exit_code == 0 and "imported 4 pairs" in result.output, result.output
    assert exported(run_cli, url, tmp_path / "again") == before
    assert "already exists" in one_error_line(run_cli("import", folder, "--out", url))


def test_evaluate_and_train_read_from_the_bucket(run_cli, s3, tmp_path):
    pytest.importorskip("tensorflow")
    url = f"s3://{BUCKET}/t.zarr"
    generate(run_cli, url, 20, "--workers", "0")  # train 14, val 2, test 4
    result = run_cli("evaluate", "--data", url, "--baseline", "identity", "--out", tmp_path / "eval", "--no-progress")
    assert result.exit_code == 0 and "test split, 4 samples" in result.output, result.output
    run_dir = tmp_path / "run"
    result = run_cli("train", "--data", url, "--out", run_dir, "--epochs", "1", "--preset", "small", "--batch", "4")
    assert result.exit_code == 0, result.output
    assert f"({64} x {64}, {url})" in result.output
    assert "shuffle: by windows of 8 shards" in result.output  # the default for a library in object storage
    assert json.loads((run_dir / "config.json").read_text())["options"]["shuffle_window"] == 8
    assert (run_dir / "best.keras").is_file() or any(run_dir.glob("*.keras"))


def test_a_windowed_epoch_reads_each_shard_object_once_and_gives_the_local_pairs(run_cli, s3, tmp_path,
                                                                                 monkeypatch):
    pytest.importorskip("tensorflow")
    import numpy as np

    from model.data import LibraryReader
    from pipeline.store import objects, store_location

    url, local = f"s3://{BUCKET}/w.zarr", tmp_path / "w.zarr"
    for out in (url, local):
        generate(run_cli, out, 128, "--workers", "0")  # 16 shards of 8
    remote = LibraryReader(store_location(url))
    assert remote._images.samples_per_shard == 8
    requests: dict[str, int] = {"read": 0, "read_range": 0, "read_suffix": 0}  # reading images, from here on
    for name in requests:
        def counted(self, *args, _name=name, _call=getattr(objects.ObjectFiles, name)):
            requests[_name] += 1
            return _call(self, *args)
        monkeypatch.setattr(objects.ObjectFiles, name, counted)
    batches = {}
    for reader in (remote, LibraryReader(local)):
        dataset = reader.dataset("train", 8, epoch=1, seed=3, shuffle=True, augment=True, window=2)
        batches[reader is remote] = [(x.numpy(), y.numpy()) for x, y in dataset]
    for (x, y), (x2, y2) in zip(batches[True], batches[False], strict=True):
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
    # micro and label of each of the 16 shards: one whole GET each, no ranged read
    assert requests == {"read": 32, "read_range": 0, "read_suffix": 0}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


@pytest.fixture
def refusing_auth(monkeypatch):
    """moto checks credentials and permissions from now on (it accepts any by default)."""
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


@pytest.mark.parametrize("problem", ["wrong endpoint", "missing bucket", "bad credentials", "no permission"])
@pytest.mark.parametrize("command", ["generate", "info"])
def test_an_unreachable_store_is_one_line_and_exit_1_within_seconds(run_cli, s3, monkeypatch, endpoint, problem,
                                                                     command, request):
    bucket = BUCKET
    if problem == "wrong endpoint":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    elif problem == "missing bucket":
        bucket = "no-such-bucket"
    elif problem == "bad credentials":
        request.getfixturevalue("refusing_auth")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    else:  # a real user with no policy at all
        iam = boto3.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="nobody")
        keys = iam.create_access_key(UserName="nobody")["AccessKey"]
        request.getfixturevalue("refusing_auth")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])
    url = f"s3://{bucket}/x.zarr"
    args = ["generate", "--count", 4, "--size", 64, "--out", url, "--workers", 0] if command == "generate" \
        else ["info", url]
    started = time.monotonic()
    env = {**os.environ}
    result = subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    elapsed = time.monotonic() - started
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.stderr, lines
    assert elapsed < QUICK_S, f"{elapsed:.0f} s"
    expected = {"wrong endpoint": "cannot reach", "missing bucket": "does not exist",
                "bad credentials": "access denied", "no permission": "access denied"}[problem]
    assert expected in lines[0] and url in lines[0], lines[0]


@pytest.mark.parametrize("expired", [False, True])
def test_a_lease_from_another_machine_blocks_until_it_expires(run_cli, s3, expired):
    import json

    url = f"s3://{BUCKET}/e.zarr"
    generate(run_cli, url, 4, "--workers", "0")
    lease = {"owner": "f00d", "host": "another-machine", "pid": 1, "pid_started": "1",
             "expires": time.time() + (-5 if expired else 600)}
    s3.put_object(Bucket=BUCKET, Key="e.zarr.lease", Body=json.dumps(lease).encode())
    result = run_cli("generate", "--count", 6, "--size", 64, "--out", url, "--workers", 0, "--no-progress")
    if expired:  # its holder stopped renewing it: taken over, then released
        assert result.exit_code == 0 and "resuming: 4 of 4 pairs done" in result.output, result.output
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="e.zarr.lease")
    else:
        assert result.exit_code == 1, result.output
        assert "is being written by another generate run (host another-machine, pid 1" in result.output
        assert json.loads(s3.get_object(Bucket=BUCKET, Key="e.zarr.lease")["Body"].read()) == lease


def test_a_live_holder_keeps_renewing_its_lease(run_cli, s3):
    import json

    url = f"s3://{BUCKET}/r.zarr"
    generate(run_cli, url, 4, "--workers", "0")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(REPO)!r})
            from pipeline.store import LibraryStore
            with LibraryStore.open({url!r}).writer_lock():
                print("locked", flush=True)
                time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "RECONSTRUCTION_GB_LEASE_S": "4"})
    try:
        assert holder.stdout.readline().strip() == "locked"
        seen = set()
        while len(seen) < 3:  # the lease rewritten twice since it was taken: renewals, 1 s apart
            lease = json.loads(s3.get_object(Bucket=BUCKET, Key="r.zarr.lease")["Body"].read())
            assert lease["pid"] == holder.pid and holder.poll() is None
            seen.add(lease["expires"])
            time.sleep(0.2)
        # Each renewal moves the expiry on: a live holder never lets its lease lapse.
        assert max(seen) > min(seen) + 1.5
        result = run_cli("generate", "--count", 6, "--size", 64, "--out", url, "--workers", 0, "--no-progress")
        assert result.exit_code == 1 and "is being written by another generate run" in result.output, result.output
    finally:
        holder.kill()
        holder.wait()


def test_any_fsspec_url_is_a_store_location(run_cli, tmp_path):
    """The generic fsspec path (no S3 API): memory://, as gs:// or az:// would go (lease by exclusive create)."""
    import fsspec

    from pipeline.store import LibraryStore

    url = "memory://libs/m.zarr"
    try:
        generate(run_cli, url, 4, "--workers", "0")
        result = run_cli("verify", url)
        assert result.exit_code == 0 and "verified 4 samples: all good" in result.output, result.output
        local = tmp_path / "local.zarr"
        generate(run_cli, local, 4, "--workers", "0")
        assert exported(run_cli, url, tmp_path / "a") == exported(run_cli, local, tmp_path / "b")
        with LibraryStore.open(url).writer_lock():
            result = run_cli("generate", "--count", 6, "--size", 64, "--out", url, "--workers", 0, "--no-progress")
            assert result.exit_code == 1 and "is being written by another generate run" in result.output
        assert "resuming: 4 of 4 pairs done" in generate(run_cli, url, 6, "--workers", "0")
    finally:
        fsspec.filesystem("memory").rm("/libs", recursive=True)


def test_dask_scheduler_address_names_the_cluster_unless_workers_are_given(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://nohost")  # no port: refused before anything starts
    line = one_error_line(run_cli("generate", "--count", 4, "--size", 64, "--out", tmp_path / "a.zarr", "--no-progress"))
    assert "'tcp://nohost' is not a Dask scheduler address" in line and not (tmp_path / "a.zarr").exists()
    assert "4 pairs in" in generate(run_cli, tmp_path / "b.zarr", 4, "--workers", "0")


def test_a_store_at_a_buckets_root_is_refused_in_one_line(run_cli, s3):
    for args in (["generate", "--count", 4, "--size", 64, "--out", f"s3://{BUCKET}", "--workers", 0], ["info", f"s3://{BUCKET}/"]):
        assert "give the store a name inside the bucket" in one_error_line(run_cli(*args))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
