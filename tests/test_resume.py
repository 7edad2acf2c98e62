"""Continuing, extending and locking a store."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from conftest import REPO, assert_same_arrays, one_error_line, store_arrays
from pipeline.store import LibraryStore


def generate(run_cli, out, count, *extra):
    result = run_cli("generate", "--count", count, "--size", 64, "--out", out, "--no-progress", *extra)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_finished_store_is_left_alone_without_starting_a_cluster(run_cli, tmp_path):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, 6, "--workers", "0")
    output = generate(run_cli, out, 6, "--workers", "2")
    assert "resuming: 6 of 6 pairs done" in output and "running on" not in output
    assert "0 pairs in" in output


def test_unfinished_samples_and_orphan_partials_are_redone(run_cli, tmp_path):
    reference, out = tmp_path / "ref.zarr", tmp_path / "s.zarr"
    generate(run_cli, reference, 12, "--workers", "0")
    generate(run_cli, out, 12, "--workers", "0")
    # What a kill leaves: samples without their done marker (one with a torn-looking image), and orphans.
    group = zarr.open_group(str(out), mode="r+")
    group["done"][[3, 7, 8]] = False
    (out / "micro" / "c.7.0.0").write_bytes(b"garbage")
    (out / "label" / "c.8.0.0.1f2e3d.partial").write_bytes(b"half")
    output = generate(run_cli, out, 12, "--workers", "2", "--block", "2")
    assert "resuming: 9 of 12 pairs done" in output
    assert output.count("pairs in") == 1 and "3 pairs in" in output
    assert not list(out.rglob("*.partial"))
    assert_same_arrays(reference, out)


def test_a_larger_count_extends_the_store_to_what_a_fresh_run_gives(run_cli, tmp_path):
    fresh, grown = tmp_path / "fresh.zarr", tmp_path / "grown.zarr"
    generate(run_cli, fresh, 70, "--workers", "0")
    generate(run_cli, grown, 40, "--workers", "0")
    first = store_arrays(grown)
    output = generate(run_cli, grown, 70, "--workers", "2")
    assert "resuming: 40 of 40 pairs done" in output and "30 pairs in" in output
    assert_same_arrays(fresh, grown)
    after = store_arrays(grown)
    for name in ("micro", "label", "grains", "split", "seed"):
        assert np.array_equal(after[name][:40], first[name])
    assert zarr.open_group(str(grown), mode="r").attrs["count"] == 70


def test_a_smaller_count_is_refused(run_cli, tmp_path):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, 6, "--workers", "0")
    result = run_cli("generate", "--count", 4, "--size", 64, "--out", out, "--workers", 0)
    assert result.exit_code == 1 and "cannot shrink it" in result.output


def test_a_store_held_by_a_live_run_is_refused_at_once(run_cli, tmp_path):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, 6, "--workers", "0")
    zarr.open_group(str(out), mode="r+")["done"][5] = False
    with LibraryStore.open(out).writer_lock():
        for extra in ([], ["--overwrite"]):
            result = run_cli("generate", "--count", 6, "--size", 64, "--out", out, "--workers", 0, *extra)
            assert result.exit_code == 1, result.output
            assert "is being written by another generate run" in result.output
    assert not store_arrays(out)["done"][5]


def test_the_lock_dies_with_a_killed_holder(run_cli, tmp_path):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, 4, "--workers", "0")
    zarr.open_group(str(out), mode="r+")["done"][1] = False
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(REPO)!r})
            from pipeline.store import LibraryStore
            with LibraryStore.open({str(out)!r}).writer_lock():
                print("locked", flush=True)
                time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run_cli("generate", "--count", 4, "--size", 64, "--out", out, "--workers", 0)
        assert result.exit_code == 1 and "is being written by another generate run" in result.output
        holder.send_signal(signal.SIGKILL)
        holder.wait()  # SIGKILL always ends it
        output = generate(run_cli, out, 4, "--workers", "0")
        assert "resuming: 3 of 4 pairs done" in output and store_arrays(out)["done"].all()
    finally:
        holder.kill()
        holder.wait()


def test_a_store_whose_creation_was_cut_short_is_made_afresh(run_cli, tmp_path):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, 4, "--workers", "0")
    # What a kill during creation leaves: `complete` still false (it is written last), some arrays missing.
    zarr.open_group(str(out), mode="r+").attrs["complete"] = False
    for name in ("done", "split"):
        shutil.rmtree(out / name)
    result = run_cli("info", out)
    assert result.exit_code == 1 and "was never completely created" in result.output
    output = generate(run_cli, out, 4, "--workers", "0")
    assert "resuming" not in output and "4 pairs in" in output
    assert store_arrays(out)["done"].all()


def files(path):
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "micro" / "zarr.json").unlink(), "array 'micro' is missing or its metadata cannot be read"),
    (lambda out: (out / "done" / "c.0").unlink(), "the done markers of samples 0-3 are missing"),
    (lambda out: (out / "split" / "c.0").write_bytes(b"garbage"), "cannot read the per-sample array 'split'"),
    (lambda out: (out / "zarr.json").write_bytes(b"{"), "zarr.json (JSONDecodeError): the store's metadata is damaged"),
])
def test_a_damaged_finished_store_is_never_replaced_without_overwrite(run_cli, tmp_path, damage, message):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, 4, "--workers", "0")
    damage(out)
    before = files(out)
    result = run_cli("generate", "--count", 4, "--size", 64, "--out", out, "--workers", 0, "--no-progress")
    line = one_error_line(result)
    assert message in line, line
    assert files(out) == before  # the whole store used to be deleted, exit 0
