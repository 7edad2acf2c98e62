"""Reading a store: whole-sample images by byte range, and the per-sample arrays whole."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import zarr
from zarr.core.metadata import ArrayV3Metadata

from ..shards import ChunkError, ShardLayout
from .errors import StoreDamaged, verify_hint
from .files import Files
from .integrity import RecordedCrcs
from .layout import ALL_IMAGES, DONE, META_CHUNK, chunk_key, image_layout

T = TypeVar("T")


class ImageReader:
    """Reads whole-sample images of the store: one byte-range read and one Blosc decode per image.

    The mirror of ImageWriter, without zarr's per-call overhead (about 1 ms), which would
    dominate at the rates a training run reads. Each shard's index (16 bytes a sample) is read
    once and kept. An image that is absent, or whose CRC32C does not match, raises StoreDamaged
    naming the sample: a done sample never reads as the fill value.
    """

    def __init__(self, files: Files, arrays: Sequence[zarr.Array], crc_array: zarr.Array | None = None,
                 count: int = 0):
        self.files = files
        self.targets: list[tuple[str, ArrayV3Metadata, ShardLayout]] = [
            (array.basename, array.metadata, image_layout(array)) for array in arrays]
        self._indices: dict[tuple[int, int], tuple[str, list[tuple[int, int]]]] = {}
        self._recorded = RecordedCrcs(crc_array, count)
        self._columns = [ALL_IMAGES.index(array.basename) for array in arrays]

    def read(self, index: int) -> tuple[np.ndarray, ...]:
        """The images of sample `index`, one per array, in the order the reader was made with."""
        images = []
        for position in range(len(self.targets)):
            try:
                images.append(self.read_one(position, index))
            except ChunkError as exc:
                raise StoreDamaged(f"sample {index}: {self.targets[position][0]}: {exc}; "
                                   f"{verify_hint(self.files.where())}") from None
        return tuple(images)

    def read_one(self, position: int, index: int) -> np.ndarray:
        """Image of sample `index` in the reader's array `position`; ChunkError says why it cannot be read."""
        name, metadata, layout = self.targets[position]
        shard, slot = divmod(int(index), layout.samples)
        kept = self._indices.get((position, shard))
        if kept is None:
            key = chunk_key(name, metadata, (shard, 0, 0))
            kept = self._indices[(position, shard)] = (key, layout.parse_index(
                key, *_shard_bytes(self.files.read_suffix, key, layout.index_bytes)))
        key, rows = kept
        expected = self._recorded.of(int(index), self._columns[position])
        offset, nbytes = layout.chunk_range(key, rows, slot)
        return layout.decode_image(key, _shard_bytes(self.files.read_range, key, offset, nbytes), nbytes, expected)

    def prefetch_indices(self, indices: Sequence[int], requests: int = 16) -> None:
        """Read the shard indices the given samples need, `requests` at a time (object storage: each read
        is a round trip, and a training run would otherwise pay them one by one at its start)."""
        wanted = sorted({(position, int(index) // layout.samples) for index in indices
                         for position, (_, _, layout) in enumerate(self.targets)} - set(self._indices))
        if not wanted:
            return
        from concurrent.futures import ThreadPoolExecutor

        def load(entry: tuple[int, int]) -> None:
            position, shard = entry
            name, metadata, layout = self.targets[position]
            key = chunk_key(name, metadata, (shard, 0, 0))
            try:
                self._indices[entry] = (key, layout.parse_index(
                    key, *_shard_bytes(self.files.read_suffix, key, layout.index_bytes)))
            except ChunkError:
                pass  # named by `read` for the sample that needs it

        with ThreadPoolExecutor(max(1, requests)) as pool:
            list(pool.map(load, wanted))

    def forget(self) -> None:
        """Drop the kept shard indices and recorded checksums (after shards were rewritten)."""
        self._indices.clear()
        self._recorded.forget()


def _shard_bytes(read: Callable[..., T], key: str, *where: int) -> T:
    """What `read` (a `Files` read) returns for shard `key`; ChunkError if the shard is missing."""
    try:
        return read(key, *where)
    except FileNotFoundError:
        raise ChunkError(f"shard file {key} is missing") from None


def read_per_sample(files: Files, array: zarr.Array, count: int) -> np.ndarray:
    """One per-sample array (or `done`), whole; StoreDamaged if a chunk is missing or fails its checksum."""
    name = array.basename
    where = files.where()
    what = "done markers" if name == DONE else f"per-sample array {name!r}"
    for chunk in range(math.ceil(count / META_CHUNK)):
        if not files.has(chunk_key(name, array.metadata, (chunk,))):
            first = chunk * META_CHUNK
            raise StoreDamaged(f"{where} is damaged: the {what} of samples {first}-"
                               f"{min(first + META_CHUNK, count) - 1} are missing; {verify_hint(where)}")
    try:
        return array[:count]
    except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk, whatever the codec raises
        raise StoreDamaged(f"{where} is damaged: cannot read the {what} ({type(exc).__name__}: {exc}); "
                           f"{verify_hint(where)}") from None
