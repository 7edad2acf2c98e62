"""Streaming tf.data reader over a library store: one split, done samples only, never all in RAM.

Each epoch's order and augmentation are drawn up front from a numpy Generator seeded with
(seed, epoch): the same seed gives the same batches on every machine and after a resume, and
only the indices of the split (8 bytes a sample) are held, never the images. TensorFlow is
imported only to build datasets: indices and pairs can be read without it (model/scoring/evaluate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from pipeline.sample import TEST, TRAIN, VAL
from pipeline.store import LibraryStore, StoreError, StoreURL

SPLITS = {"train": TRAIN, "val": VAL, "test": TEST}
# Reads in flight from a store in object storage: each is a round trip (milliseconds, not the
# microseconds of a local pread), so many overlap; tf.data's AUTOTUNE sizes by cores, not latency.
REMOTE_READS = 16
# Dihedral transforms of the square: k = 0..7 -> rotate by (k % 4) quarter turns, then flip
# left-right when k >= 4. They keep a boundary network a valid boundary network.
TRANSFORMS = 8


if TYPE_CHECKING:
    import tensorflow as tf


class DataError(ValueError):
    """A store or split that cannot feed a training run."""


@dataclass(frozen=True)
class EpochPlan:
    """Which samples an epoch reads, in which order, with which dihedral transform each.

    With crops, `corners` holds each sample's crop corner (y, x); with corruption, `noise`
    holds each sample's corruption seed. Both are None otherwise.
    """

    indices: np.ndarray
    transforms: np.ndarray
    corners: np.ndarray | None = None
    noise: np.ndarray | None = None


class LibraryReader:
    """Reads pairs of one library store as float32 (input, target) tensors.

    Input = micro / 255 (boundary 0, background 1); target = label > 127 (1 = background).
    `limit` keeps only the first `limit` done samples of the library, whatever their split,
    so the 70/10/20 shares hold in a limited run as in a full one.
    """

    def __init__(self, path: str | Path, limit: int | None = None):
        try:
            self.store = LibraryStore.open(path)
        except StoreError as error:
            raise DataError(str(error)) from None
        if limit is not None and limit <= 0:
            raise DataError(f"--limit must be > 0, got {limit}")
        self.path = self.store.path
        self.remote = isinstance(self.path, StoreURL)
        self.size = self.store.config.size
        self.gray = self.store.gray  # inputs are gray micrographs, not binary boundary maps
        self.limit = limit
        try:
            done = np.flatnonzero(self.store.done())
            self._done = done[:limit] if limit is not None else done
            self._split = self.store.metadata("split")[self._done]
            self._images = self.store.image_reader(("micro", "label"))
        except StoreError as error:  # damaged done markers or per-sample arrays
            raise DataError(str(error)) from None

    def indices(self, split: str) -> np.ndarray:
        """Sample indices of `split` ('train', 'val' or 'test') that are done, ascending."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return self._done[self._split == SPLITS[split]]

    def counts(self) -> dict[str, int]:
        """Number of done samples per split (within the limit)."""
        return {split: len(self.indices(split)) for split in SPLITS}

    def require(self, *splits: str) -> None:
        """Raise DataError naming the first of `splits` without any done sample."""
        for split in splits:
            if not len(self.indices(split)):
                limit = f" among the first {self.limit} done samples" if self.limit is not None else ""
                raise DataError(f"{self.path} has no done samples in the {split} split{limit}")

    def check_crop(self, crop: int | None) -> None:
        """Raise DataError unless `crop` is None or fits inside the library's images."""
        if crop is not None and not 0 < crop <= self.size:
            raise DataError(f"--crop must be in 1..{self.size} (the library's image side), got {crop}")

    def epoch_plan(self, split: str, epoch: int, seed: int, shuffle: bool, augment: bool,
                   crop: int | None = None, corrupt: bool = False, window: int = 0) -> EpochPlan:
        """The order, transforms, crop corners and corruption seeds of one epoch: a pure function
        of (split, epoch, seed) and the options. Draws are made in a fixed order, so adding crops
        or corruption leaves the order and transforms of a plan unchanged.

        `window` > 0 shuffles by shards (`shard_shuffle`): windows of that many shards, in random
        order, each window's samples shuffled among themselves; 0 shuffles the whole split."""
        self.check_crop(crop)
        if window < 0:
            raise DataError(f"--shuffle-window must be >= 0, got {window}")
        indices = self.indices(split)
        rng = np.random.default_rng([seed, epoch])
        if shuffle and window:
            order = shard_shuffle(indices, self._images.samples_per_shard, window, rng)
        else:
            order = rng.permutation(indices) if shuffle else indices
        transforms = rng.integers(0, TRANSFORMS, len(order)) if augment else np.zeros(len(order), np.int64)
        corners = rng.integers(0, self.size - crop + 1, (len(order), 2)) if crop is not None else None
        noise = rng.integers(0, 2**63 - 1, len(order)) if corrupt else None
        return EpochPlan(np.asarray(order, np.int64), np.asarray(transforms, np.int64), corners, noise)

    def read_pair(self, index: int, whole: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(micro, label) of sample `index` as stored: uint8 (S, S); DataError naming it if absent or corrupt.
        `whole`: read from whole shard objects, kept a while (ImageReader.whole_shards)."""
        try:
            micro, label = self._images.read(int(index), whole)
        except StoreError as error:
            raise DataError(str(error)) from None
        return micro, label

    def read_transformed(self, index: int, transform: int, corner: tuple[int, int] | None = None,
                         crop: int | None = None, noise: int | None = None, corrupt_scale: float = 1.0,
                         whole: bool = False) -> np.ndarray:
        """(S, S, 2) uint8: micro and label of sample `index` stacked, cropped to `crop` x `crop` at
        `corner` when given, under one dihedral transform, the input corrupted with seed `noise`
        (specks and holes up to `corrupt_scale` times their usual size).

        Input and target are cropped and transformed as one array, so they stay aligned by
        construction; corruption touches the input (channel 0) only.
        """
        pair = np.stack(self.read_pair(index, whole), axis=-1)
        if crop is not None:
            y, x = (int(c) for c in corner)
            pair = pair[y:y + crop, x:x + crop]
        pair = np.ascontiguousarray(dihedral(pair, transform))
        if noise is not None:
            pair[..., 0] = corrupt_input(pair[..., 0], np.random.default_rng(int(noise)), corrupt_scale)
        return pair

    def dataset(self, split: str, batch: int, *, epoch: int = 0, seed: int = 0, shuffle: bool = False,
                augment: bool = False, crop: int | None = None, corrupt: bool = False,
                corrupt_scale: float = 1.0, window: int = 0) -> tf.data.Dataset:
        """One epoch of `split` as batches of (input (B,C,C,1) float32, target (B,C,C,1) float32),
        C the crop side (the image side without crops); `window`: see `epoch_plan`."""
        plan = self.epoch_plan(split, epoch, seed, shuffle, augment, crop, corrupt, window)
        return self.batches(plan.indices, batch, plan.transforms, plan.corners, crop, plan.noise, corrupt_scale)

    def batches(self, indices: np.ndarray, batch: int, transforms: np.ndarray | None = None,
                corners: np.ndarray | None = None, crop: int | None = None,
                noise: np.ndarray | None = None, corrupt_scale: float = 1.0) -> tf.data.Dataset:
        """The given samples, in this order, each under its dihedral transform (none by default),
        cropped at its corner and corrupted with its seed (and `corrupt_scale`) when those are given."""
        import tensorflow as tf  # here, so that reading indices and pairs needs no TensorFlow

        if batch <= 0:
            raise DataError(f"batch must be > 0, got {batch}")
        indices = np.asarray(indices, np.int64)
        count = len(indices)
        # From object storage, an order grouped by shards is read by whole shards (one GET serves a
        # shard's samples); any other order by one ranged GET an image, the shard indices first.
        whole = self.remote and self._images.whole_shards(indices)
        if self.remote and not whole:  # the shard indices these samples need, in parallel (kept for later epochs)
            try:
                self._images.prefetch_indices(indices, REMOTE_READS)
            except StoreError as error:
                raise DataError(str(error)) from None
        transforms = np.zeros(count, np.int64) if transforms is None else np.asarray(transforms, np.int64)
        # -1 marks "none" in the tensors that tf.data slices (it cannot slice None).
        corners = np.full((count, 2), -1, np.int64) if corners is None else np.asarray(corners, np.int64)
        noise = np.full(count, -1, np.int64) if noise is None else np.asarray(noise, np.int64)
        side = self.size if crop is None else crop

        def read(index: np.int64, transform: np.int64, corner: np.ndarray, seed: np.int64) -> np.ndarray:
            return self.read_transformed(index, transform, None if crop is None else corner, crop,
                                         None if seed < 0 else seed, corrupt_scale, whole)

        def load(index: tf.Tensor, transform: tf.Tensor, corner: tf.Tensor,
                 seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            pair = tf.numpy_function(read, [index, transform, corner, seed], tf.uint8, stateful=False)
            pair = tf.ensure_shape(pair, (side, side, 2))
            x = tf.cast(pair[..., :1], tf.float32) / 255.0
            y = tf.cast(pair[..., 1:] > 127, tf.float32)
            return x, y

        pairs = tf.data.Dataset.from_tensor_slices((indices, transforms, corners, noise))
        parallel = REMOTE_READS if self.remote else tf.data.AUTOTUNE
        return (pairs.map(load, num_parallel_calls=parallel, deterministic=True)
                .batch(batch)
                .prefetch(tf.data.AUTOTUNE))


def shard_shuffle(indices: np.ndarray, per_shard: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """`indices` shuffled by shards: the shards they lie in, in random order, cut into windows of
    `window` shards; each window's samples in random order. Every sample once; a window's samples
    come from `window` shards only, so a reader from object storage fetches each shard once (a
    sample is a pure function of (seed, index): neighbours in a shard are as independent as any two)."""
    indices = np.asarray(indices, np.int64)
    shards, shard_of = np.unique(indices // per_shard, return_inverse=True)
    rank = np.empty(shards.size, np.int64)
    rank[rng.permutation(shards.size)] = np.arange(shards.size)
    keys = rng.random(indices.size)
    return indices[np.lexsort((keys, rank[shard_of] // window))]


# Input-only corruption, as binarised real micrographs have: isolated dark specks on the
# background and short holes in boundaries (sharp-edged, unlike the library's blurred gaps).
SPECKS_PER_MEGAPIXEL = (0, 400)  # range of the speck density drawn per sample
SPECK_SIDE = (1, 3)
HOLES_PER_MEGAPIXEL = (0, 120)
HOLE_SIDE = (2, 9)


def corrupt_input(micro: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A copy of `micro` (0 boundary, 255 background) with random dark specks and boundary holes.

    A speck is a small dark square placed on background; a hole whitens a small square
    centred on a boundary pixel. The target is never changed, so the network learns to
    ignore specks and to close holes. `scale` multiplies the largest speck and hole sides
    (rounded; 1: SPECK_SIDE and HOLE_SIDE as they are, with the very same draws). Deterministic
    for a given generator state and scale.
    """
    speck_max = max(SPECK_SIDE[0], round(SPECK_SIDE[1] * scale))
    hole_max = max(HOLE_SIDE[0], round(HOLE_SIDE[1] * scale))
    out = micro.copy()
    height, width = micro.shape
    megapixels = height * width / 1e6
    for _ in range(rng.poisson(rng.uniform(*SPECKS_PER_MEGAPIXEL) * megapixels)):
        side = int(rng.integers(SPECK_SIDE[0], speck_max + 1))
        y, x = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        out[y:y + side, x:x + side] = 0
    boundary = np.flatnonzero(micro.ravel() == 0)
    holes = rng.poisson(rng.uniform(*HOLES_PER_MEGAPIXEL) * megapixels) if len(boundary) else 0
    for centre in rng.choice(boundary, size=holes) if holes else ():
        side = int(rng.integers(HOLE_SIDE[0], hole_max + 1))
        y, x = divmod(int(centre), width)
        y0, x0 = max(0, y - side // 2), max(0, x - side // 2)
        out[y0:y0 + side, x0:x0 + side] = 255
    return out


def dihedral(image: np.ndarray, transform: int) -> np.ndarray:
    """Dihedral transform `transform` (0..7, see TRANSFORMS) of an image whose first two axes are (y, x)."""
    image = np.rot90(image, k=int(transform) % 4)
    return image[:, ::-1] if transform >= 4 else image
