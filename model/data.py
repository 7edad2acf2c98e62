"""Streaming tf.data reader over a library store: one split, done samples only, never all in RAM.

Each epoch's order and augmentation are drawn up front from a numpy Generator seeded with
(seed, epoch): the same seed gives the same batches on every machine and after a resume, and
only the indices of the split (8 bytes a sample) are held, never the images. TensorFlow is
imported only to build datasets: indices and pairs can be read without it (model/evaluate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from pipeline.sample import TEST, TRAIN, VAL
from pipeline.store import LibraryStore, StoreError

SPLITS = {"train": TRAIN, "val": VAL, "test": TEST}
# Dihedral transforms of the square: k = 0..7 -> rotate by (k % 4) quarter turns, then flip
# left-right when k >= 4. They keep a boundary network a valid boundary network.
TRANSFORMS = 8


if TYPE_CHECKING:
    import tensorflow as tf


class DataError(ValueError):
    """A store or split that cannot feed a training run."""


@dataclass(frozen=True)
class EpochPlan:
    """Which samples an epoch reads, in which order, with which dihedral transform each."""

    indices: np.ndarray
    transforms: np.ndarray


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
        self.size = self.store.config.size
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

    def epoch_plan(self, split: str, epoch: int, seed: int, shuffle: bool, augment: bool) -> EpochPlan:
        """The order and transforms of one epoch: a pure function of (split, epoch, seed)."""
        indices = self.indices(split)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(indices) if shuffle else indices
        transforms = rng.integers(0, TRANSFORMS, len(order)) if augment else np.zeros(len(order), np.int64)
        return EpochPlan(np.asarray(order, np.int64), np.asarray(transforms, np.int64))

    def read_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(micro, label) of sample `index` as stored: uint8 (S, S); DataError naming it if absent or corrupt."""
        try:
            micro, label = self._images.read(int(index))
        except StoreError as error:
            raise DataError(str(error)) from None
        return micro, label

    def read_transformed(self, index: int, transform: int) -> np.ndarray:
        """(S, S, 2) uint8: micro and label of sample `index` stacked, under one dihedral transform.

        Input and target go through the transform as one array, so they stay aligned by construction.
        """
        return np.ascontiguousarray(dihedral(np.stack(self.read_pair(index), axis=-1), transform))

    def dataset(self, split: str, batch: int, *, epoch: int = 0, seed: int = 0,
                shuffle: bool = False, augment: bool = False) -> tf.data.Dataset:
        """One epoch of `split` as batches of (input (B,S,S,1) float32, target (B,S,S,1) float32)."""
        plan = self.epoch_plan(split, epoch, seed, shuffle, augment)
        return self.batches(plan.indices, batch, plan.transforms)

    def batches(self, indices: np.ndarray, batch: int, transforms: np.ndarray | None = None) -> tf.data.Dataset:
        """The given samples, in this order, each under its dihedral transform (none by default)."""
        import tensorflow as tf  # here, so that reading indices and pairs needs no TensorFlow

        if batch <= 0:
            raise DataError(f"batch must be > 0, got {batch}")
        indices = np.asarray(indices, np.int64)
        transforms = np.zeros(len(indices), np.int64) if transforms is None else np.asarray(transforms, np.int64)
        size = self.size

        def load(index: tf.Tensor, transform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            pair = tf.numpy_function(self.read_transformed, [index, transform], tf.uint8, stateful=False)
            pair = tf.ensure_shape(pair, (size, size, 2))
            x = tf.cast(pair[..., :1], tf.float32) / 255.0
            y = tf.cast(pair[..., 1:] > 127, tf.float32)
            return x, y

        pairs = tf.data.Dataset.from_tensor_slices((indices, transforms))
        return (pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(batch)
                .prefetch(tf.data.AUTOTUNE))


def dihedral(image: np.ndarray, transform: int) -> np.ndarray:
    """Dihedral transform `transform` (0..7, see TRANSFORMS) of an image whose first two axes are (y, x)."""
    image = np.rot90(image, k=int(transform) % 4)
    return image[:, ::-1] if transform >= 4 else image
