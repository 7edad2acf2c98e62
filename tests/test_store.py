"""The store module: chunk bytes, commit order, refusal of foreign directories; the planner."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from pipeline.config import GenerationConfig
from pipeline.plan import default_block_size, make_plan
from pipeline.sample import make_sample
from pipeline.store import SAMPLE_IMAGES, LibraryStore, StoreError, is_store


@pytest.fixture(scope="module")
def samples():
    config = GenerationConfig(size=64)
    return config, [make_sample(config, 4, i) for i in range(5)]


def test_image_chunks_are_byte_for_byte_what_zarr_itself_writes(tmp_path, samples):
    config, made = samples
    ours = LibraryStore.create(tmp_path / "ours.zarr", config, 4, 5)
    ours.image_writer().write(made)
    theirs = LibraryStore.create(tmp_path / "zarr.zarr", config, 4, 5)
    for name in SAMPLE_IMAGES:
        theirs.group[name].with_config({"write_empty_chunks": True})[:] = np.stack([getattr(s, name) for s in made])
    for name in SAMPLE_IMAGES:
        for s in made:
            key = f"{name}/c.{s.index}.0.0"
            assert (tmp_path / "ours.zarr" / key).read_bytes() == (tmp_path / "zarr.zarr" / key).read_bytes()
            assert np.array_equal(ours.read(name, s.index), getattr(s, name))
    assert not list((tmp_path / "ours.zarr").rglob("*.partial"))


def test_image_reader_returns_what_zarr_reads_including_unwritten_chunks(tmp_path, samples):
    config, made = samples
    store = LibraryStore.create(tmp_path / "s.zarr", config, 4, 7)  # samples 5 and 6 never written
    store.image_writer().write(made)
    reader = store.image_reader(SAMPLE_IMAGES)
    for index in range(7):
        images = reader.read(index)
        for name, image in zip(SAMPLE_IMAGES, images):
            expected = store.read(name, index)
            assert image.dtype == expected.dtype and np.array_equal(image, expected), (name, index)
    assert np.all(reader.read(6)[0] == 255) and np.all(reader.read(6)[2] == 0)  # the fill values


def test_commit_writes_metadata_then_done_for_any_set_of_indices(tmp_path, samples):
    config, made = samples
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


def test_default_block_size_gives_many_more_tasks_than_workers():
    for count, workers in [(14999, 2), (14999, 64), (500, 2), (20, 2), (1, 16)]:
        block = default_block_size(count, workers)
        tasks = -(-count // block)
        assert 1 <= block <= 32
        assert tasks >= min(count, 10 * workers + 1) or block == 1
