"""Writing a store: whole shards (tasks), then per-sample arrays and done markers (the driver alone).

Order is the contract: a task's shards are whole before the driver commits their samples, and
`done` is written last, so a kill at any point leaves each sample done-and-whole or not done.
Only the driver, holding the backend's single-writer lock, resizes, commits and tidies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import zarr
from zarr.core.metadata import ArrayV3Metadata

from ..sample import Sample, SampleMeta
from ..shards import ShardLayout, chunk_crc, encode_shard
from .files import Files
from .integrity import crc_rows, unrecorded
from .layout import DONE, IMAGE_CRC, META_ARRAYS, PER_SAMPLE_ARRAYS, chunk_key, image_layout

PARTIAL = ".partial"  # what a killed writer of a local store leaves beside a chunk file


class ImageWriter:
    """Writes whole shards of the image arrays, one file per shard and array.

    Each image is encoded here with the array's own Blosc settings and CRC32C, the shard is
    assembled in zarr's sharding layout and written whole through the backend (locally as zarr's
    LocalStore does: write `<key>.<random>.partial`, then rename: atomic against a kill), without
    zarr's event-loop and thread-pool hops, which cost more than the encoding itself (see
    docs/benchmarks.md). Tests check that the bytes equal what zarr writes. Picklable: tasks get
    it from the driver.
    """

    def __init__(self, files: Files, arrays: Sequence[zarr.Array]):
        self.files = files
        self.targets: list[tuple[str, ArrayV3Metadata, ShardLayout]] = [
            (array.basename, array.metadata, image_layout(array)) for array in arrays]

    def write(self, samples: Sequence[Sample]) -> list[tuple[int, ...]]:
        """Write the shards holding the given samples; a shard holds exactly the given samples that fall in it.

        Callers give whole shards (every sample of each shard touched), since a shard is replaced whole.
        Returns, per sample in the order given, the CRC32C of each of its chunks (for `commit`).
        """
        crcs: dict[int, list[int]] = {sample.index: [] for sample in samples}
        by_shard: dict[int, list[Sample]] = {}
        for _, _, layout in self.targets[:1]:
            for sample in samples:
                by_shard.setdefault(sample.index // layout.samples, []).append(sample)
        for shard, members in sorted(by_shard.items()):
            for name, metadata, layout in self.targets:
                chunks: list[bytes | None] = [None] * layout.samples
                for sample in members:
                    try:
                        chunk = chunks[sample.index % layout.samples] = layout.encode_image(sample.image(name))
                    except ValueError as exc:
                        raise ValueError(f"{name} of sample {sample.index} does not fit the store: {exc}") from None
                    crcs[sample.index].append(chunk_crc(chunk))
                self.files.write(chunk_key(name, metadata, (shard, 0, 0)), encode_shard(chunks))
        return [tuple(crcs[sample.index]) for sample in samples]


def commit(arrays: dict[str, zarr.Array], indices: Sequence[int], metas: Sequence[SampleMeta],
           crcs: Sequence[Sequence[int]] | None) -> None:
    """Record metadata (and image checksums) of samples whose images are written, then mark them done."""
    if not len(indices):
        return
    order = np.argsort(indices)
    index = np.asarray(indices)[order]
    rows = [asdict(metas[k]) for k in order]
    # Contiguous runs become slice writes (one request per touched chunk).
    runs = np.split(np.arange(len(index)), np.flatnonzero(np.diff(index) != 1) + 1)
    for name, (dtype, _) in META_ARRAYS.items():
        values = np.array([row[name] for row in rows], dtype=dtype)
        for run in runs:
            arrays[name][index[run[0]] : index[run[-1]] + 1] = values[run]
    if IMAGE_CRC in arrays:
        table = crc_rows(crcs, order, arrays[IMAGE_CRC].shape[1])
        for run in runs:
            arrays[IMAGE_CRC][index[run[0]] : index[run[-1]] + 1] = table[run]
    for run in runs:
        arrays[DONE][index[run[0]] : index[run[-1]] + 1] = True


def grow(group: zarr.Group, arrays: dict[str, zarr.Array], old: int, count: int) -> None:
    """Grow every array from `old` to `count` samples, the new ones not done; the plan's count last."""
    for array in arrays.values():
        array.resize((count, *array.shape[1:]))
    for name, (dtype, fill) in PER_SAMPLE_ARRAYS.items():
        arrays[name][old:count] = np.full(count - old, fill, dtype=dtype)  # new chunk files exist
    if IMAGE_CRC in arrays:
        arrays[IMAGE_CRC][old:count] = unrecorded(count - old, arrays[IMAGE_CRC].shape[1])
    group.attrs["count"] = count  # last: a kill before this leaves the old plan valid


def remove_partials(files: Files) -> int:
    """Delete orphan partial files left by a killed writer; returns how many."""
    orphans = files.find(PARTIAL)
    for orphan in orphans:
        files.remove(orphan)
    return len(orphans)
