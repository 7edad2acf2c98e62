"""`python cli.py generate` and `info`, driven as a user would."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import REPO, assert_same_arrays, one_error_line, store_arrays, tree
from pipeline.store import FORMAT_VERSION

SUMMARY = re.compile(r"(\d+) pairs in [\d.]+ s \([\d.]+ pairs/s\) -> (\S+) \(([\d.]+) MB\)$", re.MULTILINE)


def generate(run_cli, out, *extra, count=24, size=96, check=True):
    result = run_cli("generate", "--count", count, "--size", size, "--out", out, "--no-progress", *extra)
    if check:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The serial store every executor must match byte for byte."""
    from click.testing import CliRunner

    from cli import cli

    out = tmp_path_factory.mktemp("ref") / "serial.zarr"
    result = CliRunner().invoke(cli, ["generate", "--count", "24", "--size", "96", "--out", str(out),
                                      "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("options", [["--workers", "2"], ["--workers", "2", "--block", "5"], ["--workers", "0", "--block", "7"]])
def test_stores_are_byte_identical_whatever_the_executor_or_block(run_cli, tmp_path, reference, options):
    out = tmp_path / "other.zarr"
    generate(run_cli, out, *options)
    assert_same_arrays(reference, out)
    # The files themselves (shards and per-sample chunks), not only what they decode to.
    chunks = sorted(p.relative_to(reference) for p in reference.rglob("c.*"))
    assert chunks == sorted(p.relative_to(out) for p in out.rglob("c.*"))
    assert all((reference / key).read_bytes() == (out / key).read_bytes() for key in chunks)


def test_store_layout_and_contents(reference):
    group = zarr.open_group(str(reference), mode="r")
    attrs = group.attrs
    assert attrs["format"] == "reconstruction-gb" and attrs["format_version"] == FORMAT_VERSION
    assert attrs["seed"] == 0 and attrs["count"] == 24 and attrs["config"]["size"] == 96
    assert set(attrs["versions"]) >= {"reconstruction_gb", "polySim", "numpy", "zarr"}
    arrays = store_arrays(reference)
    for name in ("micro", "label"):
        assert arrays[name].shape == (24, 96, 96) and arrays[name].dtype == np.uint8
        assert group[name].chunks == (1, 96, 96)
        assert set(np.unique(arrays[name])) == {0, 255}
    assert arrays["grains"].dtype == np.uint16 and arrays["grains"].shape == (24, 96, 96)
    assert arrays["done"].all()
    # num_grains agrees with the grain maps; splits are 70/10/20 over 20 samples and more.
    for i in range(24):
        assert arrays["num_grains"][i] == arrays["grains"][i].max() == len(np.unique(arrays["grains"][i]))
    assert np.bincount(arrays["split"][:20], minlength=3).tolist() == [14, 2, 4]
    assert ((arrays["erased_fraction"] >= 0) & (arrays["erased_fraction"] <= 1)).all()
    assert set(np.unique(arrays["dilation"])) <= {1, 3}


def test_no_two_samples_share_a_microstructure(run_cli, tmp_path):
    out = tmp_path / "s.zarr"
    generate(run_cli, out, "--workers", "2", count=40, size=128)
    digests = {hashlib.sha1(g.tobytes()).hexdigest() for g in store_arrays(out)["grains"]}
    assert len(digests) == 40


def test_different_seeds_give_different_libraries(run_cli, tmp_path, reference):
    out = tmp_path / "seed1.zarr"
    generate(run_cli, out, "--workers", "0", "--seed", "1")
    a, b = store_arrays(reference), store_arrays(out)
    assert not any(np.array_equal(a["grains"][i], b["grains"][i]) for i in range(24))


def test_working_directory_holds_only_the_store_and_polysim_stays_silent(tmp_path):
    for workers in ("0", "2"):
        run = subprocess.run(
            [sys.executable, str(REPO / "cli.py"), "generate", "--count", "6", "--size", "64",
             "--out", f"lib{workers}.zarr", "--workers", workers, "--no-progress"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stderr
        assert "starting" not in run.stdout + run.stderr  # polySim's C printf
        assert SUMMARY.match(run.stdout.strip().splitlines()[-1]), run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib0.zarr", "lib2.zarr"]


def test_summary_line_and_progress(run_cli, tmp_path):
    out = tmp_path / "p.zarr"
    result = run_cli("generate", "--count", 5, "--size", 64, "--out", out, "--workers", 0)
    assert result.exit_code == 0, result.output
    assert "5/5" in result.output  # the progress bar went to the end
    match = SUMMARY.search(result.output)  # click's runner may put tqdm's last newline after it
    assert match and match.group(1) == "5" and match.group(2) == str(out), result.output


def test_running_again_continues_and_finds_nothing_left(run_cli, tmp_path):
    out = tmp_path / "r.zarr"
    generate(run_cli, out, "--workers", "0", count=6, size=64)
    before = store_arrays(out)
    result = generate(run_cli, out, "--workers", "0", count=6, size=64)
    assert "resuming: 6 of 6 pairs done" in result.output
    assert result.output.strip().splitlines()[-1].startswith("0 pairs in")
    assert all(np.array_equal(before[k], v, equal_nan=True) for k, v in store_arrays(out).items())


def test_other_settings_on_an_existing_store_are_refused_unless_overwrite(run_cli, tmp_path):
    out = tmp_path / "c.zarr"
    generate(run_cli, out, "--workers", "0", count=4, size=64)
    result = generate(run_cli, out, "--workers", "0", "--seed", "3", count=4, size=80, check=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "different settings (size, patch_count, seed)" in result.output
    generate(run_cli, out, "--workers", "0", "--seed", "3", "--overwrite", count=4, size=80)
    assert zarr.open_group(str(out), mode="r").attrs["seed"] == 3


def test_info_describes_the_store(run_cli, reference):
    result = run_cli("info", reference)
    assert result.exit_code == 0, result.output
    out = result.output
    train, val, test = np.bincount(store_arrays(reference)["split"], minlength=3)
    assert f"24 done / 24 planned (train {train}, val {val}, test {test})" in out
    assert "96 x 96" in out and "seed:      0" in out and '"polySim": "0.1.2"' in out
    assert re.search(r"bytes per pair: [\d,]+ \(micro \+ label\)", out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count", "0"], "Invalid value for '--count'"),
        (["--size", "63"], "Invalid value for '--size'"),
        (["--seed", "-1"], "Invalid value for '--seed'"),
        (["--block", "0"], "Invalid value for '--block'"),
        (["--workers", "-1"], "Invalid value for '--workers'"),
        (["--nucleation-rate", "0", "5"], "nucleation rate must be >= 1"),
        (["--nucleation-rate", "20", "10"], "nucleation rate min 20 is greater than max 10"),
        (["--growth-rate", "0", "2"], "growth rate must be >= 1"),
        (["--growth-rate", "3", "1"], "growth rate min 3 is greater than max 1"),
        (["--task", "denoising"], "Invalid value for '--task'"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "only one of --workers, --scheduler, --cluster"),
        (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
        # Used to raise MemoryError and leave an empty store behind that `info` could not read.
        (["--count", "1000000000000"], "need about"),
        (["--count", "1", "--size", "65536", "--workers", "0"], "of memory;"),
        # Used to hang for minutes, then "Too many open files".
        (["--workers", "10000"], "--workers 10000 is more than this machine can use: at most "),
        # Used to end in tracebacks: "missing port number", or a reader allocating exabytes.
        (["--scheduler", "notanaddress"], "--scheduler 'notanaddress' is not a Dask scheduler address such as "
                                          "tcp://host:8786 (missing port number"),
        # Used to create the store, then fail to record the drawn rates (uint16) at the first commit.
        (["--growth-rate", "70000", "70001"], "growth rate must be <= 65535, got max 70001"),
        (["--nucleation-rate", "1000000", "1000000"], "nucleation rate must be <= 65535, got max 1000000"),
        # Used to write samples of one grain and no boundary, exit 0.
        (["--growth-rate", "5000", "5000", "--workers", "0"],
         "growth rate 5000 gives 64 px samples of one grain and no boundary: from 351 on, polySim's first grain "
         "fills the image in its first step; use at most 350 at 64 px; nothing was written"),
        (["--growth-rate", "1", "351", "--workers", "0"], "growth rate 351 gives 64 px samples of one grain"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(run_cli, tmp_path, args, message):
    out = tmp_path / "bad.zarr"
    result = run_cli("generate", "--count", 3, "--size", 64, "--out", out, "--no-progress", *args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert tree(tmp_path) == []


@pytest.mark.parametrize("size", [64, 128])
def test_from_the_refused_growth_rate_on_polysim_makes_one_grain_only(size):
    """The limit `generate` gives is where a single grain becomes certain, whatever the seed."""
    from pipeline import polysim
    from pipeline.config import max_growth_rate

    refused = max_growth_rate(size, 300) + 1
    assert {polysim.simulate(size, rate, refused, 300, seed).num_grains
            for seed in range(1, 21) for rate in (1, 120)} == {1}


def test_a_block_larger_than_the_count_is_one_block_of_every_pair(run_cli, tmp_path):
    # It used to be sized as a billion pairs and refused as needing "16.4 TB of memory".
    result = run_cli("generate", "--count", 4, "--size", 64, "--out", tmp_path / "big.zarr", "--workers", 0,
                     "--block", 1000000000, "--no-progress")
    assert result.exit_code == 0, result.output
    reference = run_cli("generate", "--count", 4, "--size", 64, "--out", tmp_path / "ref.zarr", "--workers", 0,
                        "--no-progress")
    assert reference.exit_code == 0, reference.output
    assert_same_arrays(tmp_path / "ref.zarr", tmp_path / "big.zarr")


def test_out_must_not_be_a_file_or_a_foreign_directory(run_cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    before = tree(tmp_path)
    for out, message in [("notes.txt", "is a file, not a store"), ("photos", "is not a Reconstruction-GB store"),
                         ("notes.txt/lib.zarr", "notes.txt is not a folder")]:
        for extra in ([], ["--overwrite"]):
            result = run_cli("generate", "--count", 2, "--size", 64, "--out", tmp_path / out, "--workers", 0, *extra)
            assert result.exit_code == 1 and message in result.output, result.output
    assert tree(tmp_path) == before and (tmp_path / "notes.txt").read_text() == "mine"


def test_info_on_something_that_is_not_a_store(run_cli, tmp_path):
    result = run_cli("info", tmp_path)
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "not a Reconstruction-GB store" in result.output
    result = run_cli("info", tmp_path / "missing.zarr")
    assert result.exit_code == 1 and "does not exist" in result.output


def test_an_unwritable_place_is_one_line_and_leaves_nothing(run_cli, tmp_path):
    result = run_cli("generate", "--count", 2, "--size", 64, "--out", "/proc/x.zarr", "--workers", 0, "--no-progress")
    line = one_error_line(result)
    assert "/proc" in line and not Path("/proc/x.zarr").exists()


class DiskFull:
    """atomic_write that fails with ENOSPC after `allowed` writes, as a full disk does."""

    def __init__(self, real, allowed):
        self.real, self.allowed = real, allowed

    def __call__(self, target, data):
        if self.allowed <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.allowed -= 1
        return self.real(target, data)


def test_disk_full_mid_run_is_one_line_the_store_stays_consistent_and_resumes(run_cli, tmp_path, reference,
                                                                              monkeypatch):
    import pipeline.store.files

    out = tmp_path / "full.zarr"
    monkeypatch.setattr(pipeline.store.files, "atomic_write", DiskFull(pipeline.store.files.atomic_write, allowed=3 * 5))
    result = generate(run_cli, out, "--workers", "0", "--block", "1", check=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[:-1] == ["running on serial (this process)"], result.output
    line = result.output.splitlines()[-1]
    assert line.startswith("Error: cannot write") and "No space left on device" in line and "pairs are done and kept" in line
    assert "run the same command to continue" in line
    monkeypatch.undo()
    done = store_arrays(out)["done"]
    assert 0 < done.sum() < 24 and not list(out.rglob("*.partial"))
    result = generate(run_cli, out, "--workers", "0")
    assert f"resuming: {done.sum()} of 24 pairs done" in result.output
    assert_same_arrays(reference, out)
