"""The streaming reader: which samples it yields, in which order, and augmentation of both images."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from model.data import TRANSFORMS, DataError, LibraryReader, dihedral
from pipeline.sample import TEST, TRAIN, VAL, split_of
from pipeline.store import LibraryStore

SPLIT_CODES = {"train": TRAIN, "val": VAL, "test": TEST}


@pytest.fixture(scope="module")
def extended(tmp_path_factory, tiny_library):
    """The tiny library planned to 40 pairs, with only its first 32 done."""
    path = shutil.copytree(tiny_library, tmp_path_factory.mktemp("ext") / "ext.zarr")
    LibraryStore.open(path, "r+").resize(40)
    return path


def stored(path, index):
    store = LibraryStore.open(path)
    return store.read("micro", index), store.read("label", index)


def read_all(dataset):
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_a_split_is_exactly_its_done_samples(extended, split):
    expected = [i for i in range(32) if split_of(0, i) == SPLIT_CODES[split]]
    reader = LibraryReader(extended)
    assert reader.indices(split).tolist() == expected
    x, y = read_all(reader.dataset(split, batch=5))
    assert x.shape == (len(expected), 64, 64, 1) and x.dtype == np.float32
    for k, index in enumerate(expected):
        micro, label = stored(extended, index)
        assert np.array_equal(x[k, ..., 0], micro.astype(np.float32) / 255)
        assert np.array_equal(y[k, ..., 0], (label > 127).astype(np.float32))


def test_training_epochs_never_read_a_test_or_val_sample_and_reshuffle_by_seed(extended):
    reader = LibraryReader(extended)
    train = set(reader.indices("train").tolist())
    orders = {}
    for seed in (0, 1):
        for epoch in range(3):
            plan = reader.epoch_plan("train", epoch, seed, shuffle=True, augment=True)
            assert sorted(plan.indices.tolist()) == sorted(train)
            orders[seed, epoch] = plan.indices.tolist()
    assert orders[0, 0] != orders[0, 1] != orders[0, 2]  # a new order every epoch
    assert orders[0, 0] != orders[1, 0]  # another seed, another order
    again = LibraryReader(extended).epoch_plan("train", 1, 0, shuffle=True, augment=True)
    assert again.indices.tolist() == orders[0, 1]  # same seed and epoch: same order, in a new process too
    x, _ = read_all(reader.dataset("train", 4, epoch=1, seed=0, shuffle=True))
    for k, index in enumerate(orders[0, 1]):
        assert np.array_equal(x[k, ..., 0] * 255, stored(extended, index)[0])


def test_augmentation_moves_input_and_target_together(extended):
    reader = LibraryReader(extended)
    plan = reader.epoch_plan("train", 0, seed=1, shuffle=True, augment=True)
    assert set(plan.transforms.tolist()) == set(range(TRANSFORMS))  # seed 1: all 8 among the 23 draws
    x, y = read_all(reader.dataset("train", 8, epoch=0, seed=1, shuffle=True, augment=True))
    for k, (index, transform) in enumerate(zip(plan.indices, plan.transforms)):
        micro, label = stored(extended, index)
        assert np.array_equal(x[k, ..., 0], dihedral(micro, transform) / np.float32(255))
        assert np.array_equal(y[k, ..., 0], dihedral(label, transform) > 127)
    # Without --augment every sample is read as stored.
    plan = reader.epoch_plan("train", 0, seed=1, shuffle=True, augment=False)
    assert not plan.transforms.any()


def test_the_eight_transforms_are_the_distinct_symmetries_of_the_square():
    image = np.arange(9).reshape(3, 3)
    seen = {dihedral(image, k).tobytes() for k in range(TRANSFORMS)}
    assert len(seen) == 8
    assert np.array_equal(dihedral(image, 1), [[2, 5, 8], [1, 4, 7], [0, 3, 6]])  # a quarter turn
    assert np.array_equal(dihedral(image, 4), image[:, ::-1])


def test_limit_keeps_the_first_done_samples_of_every_split(extended):
    reader = LibraryReader(extended, limit=10)
    everything = np.sort(np.concatenate([reader.indices(s) for s in SPLIT_CODES]))
    assert everything.tolist() == list(range(10))
    assert reader.counts() == {"train": 7, "val": 1, "test": 2}  # the exact 70/10/20 of a group of 10


def test_a_split_without_done_samples_is_named(tmp_path, extended):
    with pytest.raises(DataError, match="no done samples in the val split among the first 2"):
        LibraryReader(extended, limit=2).require("train", "val")


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "is not a Reconstruction-GB store"),
])
def test_missing_or_foreign_store(tmp_path, setup, message):
    setup(tmp_path / "x")
    with pytest.raises(DataError, match=message):
        LibraryReader(tmp_path / "x")


def test_crops_are_deterministic_aligned_and_inside_the_image(extended):
    reader = LibraryReader(extended)
    plan = reader.epoch_plan("train", 2, 7, shuffle=True, augment=True, crop=32)
    plain = reader.epoch_plan("train", 2, 7, shuffle=True, augment=True)
    # Crops are drawn after order and transforms: the plan is otherwise the same.
    assert plan.indices.tolist() == plain.indices.tolist() and plan.transforms.tolist() == plain.transforms.tolist()
    assert plan.corners.min() >= 0 and plan.corners.max() <= 64 - 32
    again = LibraryReader(extended).epoch_plan("train", 2, 7, shuffle=True, augment=True, crop=32)
    assert again.corners.tolist() == plan.corners.tolist()
    assert reader.epoch_plan("train", 3, 7, shuffle=True, augment=True, crop=32).corners.tolist() != plan.corners.tolist()
    x, y = read_all(reader.dataset("train", 4, epoch=2, seed=7, shuffle=True, augment=True, crop=32))
    assert x.shape == (len(plan.indices), 32, 32, 1)
    for k, (index, transform, (top, left)) in enumerate(zip(plan.indices, plan.transforms, plan.corners)):
        micro, label = stored(extended, index)
        window = np.s_[top:top + 32, left:left + 32]
        assert np.array_equal(x[k, ..., 0], dihedral(micro[window], transform).astype(np.float32) / 255)
        assert np.array_equal(y[k, ..., 0], (dihedral(label[window], transform) > 127).astype(np.float32))


def test_a_crop_larger_than_the_images_is_refused(extended):
    with pytest.raises(DataError, match="--crop must be in 1..64"):
        LibraryReader(extended).epoch_plan("train", 0, 0, shuffle=True, augment=False, crop=65)


def test_corruption_changes_inputs_only_and_is_deterministic(extended):
    reader = LibraryReader(extended)
    plan = reader.epoch_plan("train", 1, 3, shuffle=True, augment=False, corrupt=True)
    x, y = read_all(reader.dataset("train", 4, epoch=1, seed=3, shuffle=True, corrupt=True))
    x2, _ = read_all(reader.dataset("train", 4, epoch=1, seed=3, shuffle=True, corrupt=True))
    assert np.array_equal(x, x2)
    changed = 0
    for k, index in enumerate(plan.indices):
        micro, label = stored(extended, index)
        assert np.array_equal(y[k, ..., 0], (label > 127).astype(np.float32))  # targets untouched
        assert set(np.unique(x[k])) <= {0.0, 1.0}
        changed += int(not np.array_equal(x[k, ..., 0], micro.astype(np.float32) / 255))
    assert changed > 0


def test_corrupt_scale_enlarges_holes_and_specks_and_scale_one_changes_nothing():
    import cv2

    from model.data.reader import corrupt_input

    def sides(image, value):
        """Bounding-box sides of the `value` patch when the image has exactly one (else none)."""
        count, _, stats, _ = cv2.connectedComponentsWithStats((image == value).astype(np.uint8), connectivity=8)
        return [max(stats[1, cv2.CC_STAT_WIDTH], stats[1, cv2.CC_STAT_HEIGHT])] if count == 2 else []

    boundary, background = np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)
    for micro in (boundary, background):
        for seed in range(50):
            assert np.array_equal(corrupt_input(micro, np.random.default_rng(seed)),
                                  corrupt_input(micro, np.random.default_rng(seed), 1.0))  # the very same draws
    found = {}
    for scale in (1.0, 2.0):
        # An all-boundary image gets holes only, an all-background one specks only: lone ones measured.
        holes = [side for seed in range(400) for side in sides(corrupt_input(boundary, np.random.default_rng(seed),
                                                                             scale), 255)]
        specks = [side for seed in range(400) for side in sides(corrupt_input(background, np.random.default_rng(seed),
                                                                              scale), 0)]
        found[scale] = max(holes), max(specks)
    assert found[1.0] == (9, 3) and found[2.0] == (18, 6)


def test_corrupt_scale_needs_corrupt(run_cli, tmp_path, extended):
    from conftest import one_error_line

    line = one_error_line(run_cli("train", "--data", extended, "--out", tmp_path / "run", "--corrupt-scale", "2"))
    assert line == "Error: --corrupt-scale needs --corrupt"
    assert not (tmp_path / "run").exists()


def test_a_shard_shuffle_reads_every_sample_once_a_few_shards_at_a_time():
    from model.data.reader import shard_shuffle

    indices = np.array([i for i in range(1000) if i % 7 != 3])  # a split: some samples of every shard
    orders = [shard_shuffle(indices, 32, 3, np.random.default_rng([seed, 0])) for seed in (5, 5, 6)]
    order = orders[0]
    assert sorted(order.tolist()) == indices.tolist()  # every sample once
    assert order.tolist() == orders[1].tolist() and order.tolist() != orders[2].tolist()  # a pure function of the seed
    shards = order // 32
    windows, starts = [], [0]
    seen: set[int] = set()
    for k, shard in enumerate(shards.tolist()):  # cut where a 4th distinct shard would begin
        if shard not in seen and len(seen) == 3:
            starts.append(k)
            seen = set()
        seen.add(shard)
    windows = np.split(shards, starts[1:])
    assert len(windows) == 11  # 32 shards (the last one short) in windows of 3
    assert all(len(set(w.tolist())) <= 3 for w in windows)
    assert len({tuple(sorted(set(w.tolist()))) for w in windows}) == 11  # no shard in two windows
    assert shards[:100].tolist() != sorted(shards[:100].tolist())  # shuffled inside a window
    assert [w[0] for w in windows] != sorted(w[0] for w in windows)  # windows in random order


def test_whole_shard_reads_are_chosen_for_orders_grouped_by_shards_only(tiny_library):
    from model.data.reader import shard_shuffle

    images = LibraryReader(tiny_library)._images
    assert images.samples_per_shard == 2  # 32 samples: 16 shards of 2
    many = np.arange(3200)  # as if the library were 100 times larger
    name, metadata, layout = images.targets[0]
    images.targets[0] = (name, metadata, dataclasses.replace(layout, samples=32))  # as if shards held 32
    assert images.samples_per_shard == 32
    assert images.whole_shards(many)  # in order: one GET serves 32 samples
    assert images.whole_shards(shard_shuffle(many, 32, 8, np.random.default_rng(0)))
    assert not images.whole_shards(np.random.default_rng(0).permutation(many))  # one shard a sample, nearly


def test_the_whole_split_shuffle_is_unchanged_by_the_window_option(extended):
    reader = LibraryReader(extended)
    plain = reader.epoch_plan("train", 2, 4, shuffle=True, augment=True)
    assert reader.epoch_plan("train", 2, 4, shuffle=True, augment=True, window=0).indices.tolist() == plain.indices.tolist()
    expected = np.random.default_rng([4, 2]).permutation(reader.indices("train"))
    assert plain.indices.tolist() == expected.tolist()  # the order every earlier run was trained on
    windowed = reader.epoch_plan("train", 2, 4, shuffle=True, augment=True, window=2)
    assert sorted(windowed.indices.tolist()) == sorted(plain.indices.tolist())
    with pytest.raises(DataError, match="--shuffle-window must be >= 0"):
        reader.epoch_plan("train", 0, 0, shuffle=True, augment=False, window=-1)
