"""The store module: shard bytes against zarr's own, checksums, file count, xarray, commit order, refusals; the planner."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from conftest import one_error_line
from pipeline.config import GenerationConfig
from pipeline.plan import default_block_size, make_plan
from pipeline.presets import make_sample
from pipeline.store import (SAMPLE_IMAGES, LibraryStore, StoreDamaged, StoreError, file_count, is_store,
                            shard_samples)


@pytest.fixture(scope="module")
def samples():
    config = GenerationConfig(size=64)
    return config, [make_sample(config, 4, i) for i in range(10)]


def zarr_store(path, config, count, shard, made):
    """The same store written by zarr's own ShardingCodec (every chunk written, even a blank one)."""
    store = LibraryStore.create(path, config, 4, count, shard=shard)
    for name in SAMPLE_IMAGES:
        store.group[name].with_config({"write_empty_chunks": True})[: len(made)] = np.stack(
            [getattr(s, name) for s in made])
    return store


@pytest.mark.parametrize("count, shard", [(10, 4), (10, 1), (9, 3)])
def test_shards_are_byte_for_byte_what_zarr_itself_writes(tmp_path, samples, count, shard):
    config, made = samples
    made = made[:count]
    ours = LibraryStore.create(tmp_path / "ours.zarr", config, 4, count, shard=shard)
    ours.image_writer().write(made)
    zarr_store(tmp_path / "zarr.zarr", config, count, shard, made)
    files = sorted(p.relative_to(tmp_path / "zarr.zarr") for p in (tmp_path / "zarr.zarr").rglob("c.*.0.0"))
    assert len(files) == 3 * -(-count // shard)
    for key in files:
        assert (tmp_path / "ours.zarr" / key).read_bytes() == (tmp_path / "zarr.zarr" / key).read_bytes(), key
    assert not list((tmp_path / "ours.zarr").rglob("*.partial"))


def test_our_reader_and_zarr_read_each_others_shards_identically(tmp_path, samples):
    config, made = samples
    ours = LibraryStore.create(tmp_path / "ours.zarr", config, 4, 10, shard=4)
    ours.image_writer().write(made)
    theirs = zarr_store(tmp_path / "zarr.zarr", config, 10, 4, made)
    for store in (ours, theirs):
        reader = LibraryStore.open(store.path).image_reader(SAMPLE_IMAGES)
        group = zarr.open_group(str(store.path), mode="r")
        for s in made:
            for name, image in zip(SAMPLE_IMAGES, reader.read(s.index)):
                assert image.dtype == getattr(s, name).dtype and np.array_equal(image, getattr(s, name))
                assert np.array_equal(group[name][s.index], image)  # zarr's generic path


def test_a_sample_absent_from_its_shard_is_an_error_naming_it_never_the_fill_value(tmp_path, samples):
    config, made = samples
    store = LibraryStore.create(tmp_path / "s.zarr", config, 4, 12, shard=4)
    store.image_writer().write(made[:6])  # shard 1 holds samples 4 and 5 only; shard 2 was never written
    assert np.array_equal(store.read("micro", 5), made[5].micro)
    with pytest.raises(StoreDamaged, match=r"sample 6: micro: absent from shard file micro/c\.1\.0\.0"):
        store.read("micro", 6)
    with pytest.raises(StoreDamaged, match=r"sample 9: micro: shard file micro/c\.2\.0\.0 is missing"):
        store.image_reader().read(9)


def test_every_single_bit_flip_of_a_shard_is_caught(tmp_path, samples):
    config, made = samples
    store = LibraryStore.create(tmp_path / "s.zarr", config, 4, 2, shard=2)
    store.image_writer().write(made[:2])
    shard = store.shard_file("micro", 0)
    original = shard.read_bytes()
    caught = 0
    for bit in range(len(original) * 8):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        shard.write_bytes(bytes(flipped))
        reader = store.image_reader(("micro",))  # a fresh reader: no shard index kept
        try:
            images = [reader.read(i)[0] for i in range(2)]
        except StoreDamaged:
            caught += 1
            continue
        assert all(np.array_equal(image, s.micro) for image, s in zip(images, made)), f"bit {bit} read wrong"
    # Bits of a chunk or of the index are all caught; none of the file's bytes is unchecked.
    assert caught == len(original) * 8


def test_a_small_store_has_the_files_of_the_formula(tmp_path):
    from pipeline.executors import SerialExecutor
    from pipeline.generate import generate

    generate(tmp_path / "s.zarr", 32, GenerationConfig(size=64), executor=SerialExecutor())
    files = [p for p in (tmp_path / "s.zarr").rglob("*") if p.is_file()]
    assert shard_samples(32) == 2
    # 16 shards of 3 image arrays, one chunk of each of 10 per-sample arrays, 14 zarr.json (one per sample: 96).
    assert len(files) == file_count(32, 2) == 3 * 16 + 11 * 1 + 15
    assert file_count(14999, shard_samples(14999)) == 3 * 469 + 11 * 4 + 15 == 1466  # the study's library


def test_xarray_opens_the_library_as_a_dataset(tmp_path, samples):
    import xarray

    config, made = samples
    store = LibraryStore.create(tmp_path / "s.zarr", config, 4, 10, shard=4)
    store.image_writer().write(made)
    store.commit(list(range(10)), [s.meta for s in made])
    with pytest.warns(RuntimeWarning, match="consolidated"):  # no consolidated metadata: the store grows
        dataset = xarray.open_zarr(store.path)
    assert dataset["micro"].dims == ("sample", "y", "x") and dataset["done"].dims == ("sample",)
    assert dataset["micro"].dtype == np.uint8 and dataset["grains"].dtype == np.uint16
    assert np.array_equal(dataset["micro"][7].values, made[7].micro)
    assert np.array_equal(dataset["num_grains"].values, [s.meta.num_grains for s in made])
    assert dataset["label"].attrs["convention"] == "0 = boundary, 255 = background"
    assert {"meaning", "units"} <= set(dataset["erased_fraction"].attrs)
    assert dataset.attrs["format_version"] == 2


def test_commit_writes_metadata_then_done_for_any_set_of_indices(tmp_path, samples):
    config, made = samples
    made = made[:5]
    store = LibraryStore.create(tmp_path / "s.zarr", config, 4, 5)
    store.image_writer().write(made)
    chosen = [4, 0, 1]  # out of order and not contiguous
    store.commit(chosen, [made[i].meta for i in chosen])
    assert store.done().tolist() == [True, True, False, False, True]
    assert store.metadata("num_grains").tolist() == [made[0].meta.num_grains, made[1].meta.num_grains, 0, 0,
                                                      made[4].meta.num_grains]
    assert np.isnan(store.metadata("erased_fraction")[2])
    assert store.metadata("seed")[4] == made[4].meta.seed


def test_foreign_and_newer_stores_are_refused(tmp_path):
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.attrs["something"] = 1
    assert not is_store(tmp_path / "plain.zarr") and not is_store(tmp_path / "missing")
    with pytest.raises(StoreError, match="not a Reconstruction-GB store"):
        LibraryStore.open(tmp_path / "plain.zarr")
    with pytest.raises(StoreError, match="refusing to delete"):
        LibraryStore.remove(tmp_path / "plain.zarr")
    assert (tmp_path / "plain.zarr").exists()
    store = LibraryStore.create(tmp_path / "new.zarr", GenerationConfig(size=64), 0, 2)
    store.group.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format version 99"):
        LibraryStore.open(tmp_path / "new.zarr")
    store.group.attrs["format_version"] = 1
    with pytest.raises(StoreError, match=r"format version 1; rewrite it as format 2 with `python cli.py upgrade"):
        LibraryStore.open(tmp_path / "new.zarr")


@pytest.mark.parametrize("done, size, expected", [
    ([False] * 7, 3, [(0, 3), (3, 6), (6, 7)]),
    ([True, False, False, True, False, False, False, False], 2, [(1, 3), (4, 6), (6, 8)]),
    ([True] * 4, 5, []),
    ([False, True, False], 10, [(0, 1), (2, 3)]),
])
def test_plan_covers_exactly_the_samples_not_done(done, size, expected):
    plan = make_plan(GenerationConfig(size=64), 0, np.array(done), size)
    assert [(b.start, b.stop) for b in plan.blocks] == expected
    assert plan.pending == done.count(False) and plan.count == len(done)


@pytest.mark.parametrize("done, block, shard, expected", [
    ([False] * 10, 1, 4, [(0, 4), (4, 8), (8, 10)]),  # a block is at least one shard; the last is partial
    ([False] * 10, 5, 2, [(0, 6), (6, 10)]),  # 5 samples -> 3 whole shards
    ([True] * 4 + [False] + [True] * 3 + [True] * 2, 1, 4, [(4, 8)]),  # one sample not done: its shard again
    ([True] * 8 + [False] * 2, 8, 4, [(8, 10)]),  # a grown store: the partial last shard is made whole
])
def test_plan_blocks_are_whole_shards(done, block, shard, expected):
    plan = make_plan(GenerationConfig(size=64), 0, np.array(done), block, shard)
    assert [(b.start, b.stop) for b in plan.blocks] == expected


def test_default_block_size_gives_many_more_tasks_than_workers():
    for count, workers in [(14999, 2), (14999, 64), (500, 2), (20, 2), (1, 16)]:
        block = default_block_size(count, workers)
        tasks = -(-count // block)
        assert 1 <= block <= 32
        assert tasks >= min(count, 10 * workers + 1) or block == 1


def test_a_store_without_image_crc_is_damaged_until_verify_repair_rebuilds_it(run_cli, tmp_path):
    import shutil

    from conftest import store_arrays

    old = tmp_path / "old.zarr"
    assert run_cli("generate", "--count", 4, "--size", 64, "--out", old, "--workers", 0, "--no-progress").exit_code == 0
    shutil.rmtree(old / "image_crc")  # as a store written before it existed, or one that lost it
    for args in (["info", old], ["export", old, "--out", tmp_path / "png"],
                 ["generate", "--count", 6, "--size", 64, "--out", old, "--workers", 0, "--no-progress"]):
        line = one_error_line(run_cli(*args))
        assert "its recorded image checksums (image_crc) are missing" in line and "--repair" in line, line
    assert not (tmp_path / "png").exists() and not (old / "image_crc").exists()
    result = run_cli("verify", old, "--repair")
    assert result.exit_code == 0 and "rebuilt image_crc from 4 done samples" in result.output, result.output
    result = run_cli("generate", "--count", 6, "--size", 64, "--out", old, "--workers", 0, "--no-progress")
    assert result.exit_code == 0 and "resuming: 4 of 4 pairs done" in result.output, result.output
    fresh = tmp_path / "fresh.zarr"
    assert run_cli("generate", "--count", 6, "--size", 64, "--out", fresh, "--workers", 0, "--no-progress").exit_code == 0
    a, b = store_arrays(old), store_arrays(fresh)
    assert sorted(a) == sorted(b)
    assert all(a[name].tobytes() == b[name].tobytes() for name in a)
