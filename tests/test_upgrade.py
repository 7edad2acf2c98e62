"""`python cli.py upgrade`: a format-1 store (one file per sample, no checksums) rewritten as format 2, verified."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from conftest import assert_same_arrays, one_error_line, tree
from pipeline.config import GenerationConfig
from pipeline.presets import make_sample
from pipeline.store import META_ARRAYS, LibraryStore

COUNT = 10


def write_format1(path, config, seed, count, done):
    """A store exactly as format 1 (today's main before format 2) laid it out."""
    size = config.size
    group = zarr.open_group(str(path), mode="w-", zarr_format=3, attributes={
        "format": "reconstruction-gb", "format_version": 1, "config": config.to_dict(), "seed": seed,
        "count": count, "versions": {"polySim": "0.1.2"}, "created": "2026-11-20T10:00:00+00:00"})
    keys = {"name": "default", "separator": "."}
    for name, dtype, fill, codec in (("micro", "uint8", 255, BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")),
                                     ("label", "uint8", 255, BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")),
                                     ("grains", "uint16", 0, BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"))):
        group.create_array(name, shape=(count, size, size), chunks=(1, size, size), dtype=dtype, fill_value=fill,
                           compressors=codec, chunk_key_encoding=keys)
    for name, (dtype, fill) in {**META_ARRAYS, "done": ("bool", False)}.items():
        group.create_array(name, shape=(count,), chunks=(4096,), dtype=dtype, fill_value=fill, chunk_key_encoding=keys)
    samples = [make_sample(config, seed, i) for i in range(count) if done[i]]
    for s in samples:
        for name in ("micro", "label", "grains"):
            group[name][s.index] = getattr(s, name)
        for name in META_ARRAYS:
            group[name][s.index] = getattr(s.meta, name)
    group["done"][:] = np.asarray(done)
    return path


@pytest.fixture(scope="module")
def format1(tmp_path_factory):
    root = tmp_path_factory.mktemp("v1")
    done = [True] * COUNT
    done[7] = False  # a run cut short: generate makes it after the upgrade
    return write_format1(root / "v1.zarr", GenerationConfig(size=64), 3, COUNT, done)


def test_a_format1_store_is_refused_by_readers_with_the_upgrade_command(run_cli, format1):
    line = one_error_line(run_cli("info", format1))
    assert "format version 1; rewrite it as format 2 with `python cli.py upgrade" in line


def test_upgrade_gives_the_store_generate_makes_and_leaves_the_old_one_alone(run_cli, tmp_path, format1):
    before = {p: p.read_bytes() for p in format1.rglob("*") if p.is_file()}
    result = run_cli("upgrade", format1, "--out", tmp_path / "v2.zarr")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].endswith(f"9 of {COUNT} pairs done, verified")
    assert {p: p.read_bytes() for p in format1.rglob("*") if p.is_file()} == before
    store = LibraryStore.open(tmp_path / "v2.zarr")
    assert store.done().tolist() == [i != 7 for i in range(COUNT)]
    assert store.attrs["created"] == "2026-11-20T10:00:00+00:00" and store.attrs["upgraded_from"]["format_version"] == 1
    assert run_cli("verify", tmp_path / "v2.zarr").exit_code == 0
    # generate finishes it, and the result is the library a fresh format-2 run makes.
    result = run_cli("generate", "--count", COUNT, "--size", 64, "--seed", 3, "--out", tmp_path / "v2.zarr",
                     "--workers", 0, "--no-progress")
    assert result.exit_code == 0 and f"resuming: 9 of {COUNT} pairs done" in result.output, result.output
    result = run_cli("generate", "--count", COUNT, "--size", 64, "--seed", 3, "--out", tmp_path / "fresh.zarr",
                     "--workers", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    assert_same_arrays(tmp_path / "fresh.zarr", tmp_path / "v2.zarr")


def test_a_lost_chunk_of_a_done_sample_stops_the_upgrade_naming_it(run_cli, tmp_path, format1):
    import shutil

    old = shutil.copytree(format1, tmp_path / "v1.zarr")
    (old / "label" / "c.4.0.0").unlink()
    before = tree(tmp_path)
    line = one_error_line(run_cli("upgrade", old, "--out", tmp_path / "v2.zarr"))
    assert "sample 4: label: chunk file label/c.4.0.0 is missing" in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("args, message", [
    (["missing.zarr", "--out", "v2.zarr"], "does not exist"),
    (["v2-already.zarr", "--out", "new.zarr"], "has store format version 2; upgrade reads format 1 only"),
    (["v1.zarr", "--out", "v2-already.zarr"], "already exists; upgrade never overwrites"),
])
def test_bad_input_is_one_clear_line(run_cli, tmp_path, format1, monkeypatch, args, message):
    import shutil

    shutil.copytree(format1, tmp_path / "v1.zarr")
    LibraryStore.create(tmp_path / "v2-already.zarr", GenerationConfig(size=64), 0, 2)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    assert message in one_error_line(run_cli("upgrade", *args))
    assert tree(tmp_path) == before


def test_upgrade_onto_a_full_disk_is_one_line_and_leaves_no_store(run_cli, tmp_path, format1, monkeypatch):
    from test_full_disk import FullDisk
    import builtins
    import io

    disk = tmp_path / "disk"
    disk.mkdir()
    full = FullDisk(io.open, disk, 3000)
    monkeypatch.setattr(builtins, "open", full)
    monkeypatch.setattr(io, "open", full)
    line = one_error_line(run_cli("upgrade", format1, "--out", disk / "v2.zarr"))
    assert f"cannot write {disk / 'v2.zarr'}: no space left on device; nothing written" in line
    assert list(disk.iterdir()) == []


def test_upgrade_says_in_a_unit_that_shows_it_how_much_room_it_needs(run_cli, tmp_path, format1, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    line = one_error_line(run_cli("upgrade", format1, "--out", tmp_path / "v2.zarr"))
    assert "needs about" in line and "0.00 GB" not in line and "has 1.00 kB free" in line, line
    assert not (tmp_path / "v2.zarr").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda old: (old / "done" / "c.0").unlink(), "the chunk of 'done' for samples 0-9 is missing, and samples of it "
                                                  "were made"),
    (lambda old: (old / "num_grains" / "c.0").unlink(), "the chunk of 'num_grains' for samples 0-9 is missing"),
    (lambda old: _drop_attribute(old, "config"), "its root zarr.json attributes have no 'config'"),
    # Upgraded as "5 of 5 pairs done, verified": samples 5-9 left out without a word.
    (lambda old: _set_attribute(old, "count", 5), "its root zarr.json gives count 5, but array 'micro' holds 10 "
                                                  "samples"),
    (lambda old: _set_attribute(old, "count", 12), "its root zarr.json gives count 12, but array 'micro' holds 10 "
                                                   "samples"),
])
def test_a_damaged_format1_store_is_refused_in_one_line_not_upgraded_as_empty(run_cli, tmp_path, format1, damage,
                                                                                message):
    import shutil

    old = shutil.copytree(format1, tmp_path / "v1.zarr")
    damage(old)
    before = tree(tmp_path)
    line = one_error_line(run_cli("upgrade", old, "--out", tmp_path / "v2.zarr"))
    assert message in line and "cannot be upgraded" in line, line
    assert tree(tmp_path) == before


def _set_attribute(store, name, value):
    import json

    document = json.loads((store / "zarr.json").read_text())
    document["attributes"][name] = value
    (store / "zarr.json").write_text(json.dumps(document))


def _drop_attribute(store, name):
    import json

    document = json.loads((store / "zarr.json").read_text())
    document["attributes"].pop(name)
    (store / "zarr.json").write_text(json.dumps(document))
