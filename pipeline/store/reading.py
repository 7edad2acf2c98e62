"""Reading a store: whole-sample images by byte range, and the per-sample arrays whole."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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
ShardEntry = tuple[bytes, list[tuple[int, int]]]  # a whole shard object and its index: (offset, nbytes) a slot
# Whole shard objects a reader keeps (object storage): a shard serves every sample of it for one
# GET. The cache is bounded in bytes, so a reader's memory stays flat whatever the library's size.
SHARD_CACHE_BYTES = 256 * 2**20
# Shards (per array) an order may hold open at once and still be read by whole shards (`whole_shards`).
WHOLE_SHARD_WINDOW = 32
# Samples of an order each whole-shard GET must serve, at least, on average; fewer: ranged reads.
WHOLE_SHARD_READS = 4


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
        self._shards = ShardCache(SHARD_CACHE_BYTES)

    @property
    def samples_per_shard(self) -> int:
        """Samples in one shard of the reader's arrays (the same in every image array of a store)."""
        return self.targets[0][2].samples

    def whole_shards(self, indices: Sequence[int]) -> bool:
        """Whether reading samples in this order is cheaper by whole shards (one GET a shard, kept while
        it is among the last WHOLE_SHARD_WINDOW shards used) than by one ranged GET an image: true when
        each GET would serve WHOLE_SHARD_READS samples or more (an order grouped by shards, as a windowed
        shuffle or a split read in order gives); false for an order shuffled across the whole library."""
        recent: OrderedDict[int, None] = OrderedDict()
        fetches = 0
        for shard in (np.asarray(indices, np.int64) // self.samples_per_shard).tolist():
            if shard in recent:
                recent.move_to_end(shard)
                continue
            fetches += 1
            recent[shard] = None
            if len(recent) > WHOLE_SHARD_WINDOW:
                recent.popitem(last=False)
        return fetches * WHOLE_SHARD_READS <= len(indices)

    def read(self, index: int, whole: bool = False) -> tuple[np.ndarray, ...]:
        """The images of sample `index`, one per array, in the order the reader was made with; `whole`:
        from its whole shard objects, read once and kept a while (see `whole_shards`)."""
        images = []
        for position in range(len(self.targets)):
            try:
                images.append(self.read_one(position, index, whole))
            except ChunkError as exc:
                raise StoreDamaged(f"sample {index}: {self.targets[position][0]}: {exc}; "
                                   f"{verify_hint(self.files.where())}") from None
        return tuple(images)

    def read_one(self, position: int, index: int, whole: bool = False) -> np.ndarray:
        """Image of sample `index` in the reader's array `position`; ChunkError says why it cannot be read."""
        name, metadata, layout = self.targets[position]
        shard, slot = divmod(int(index), layout.samples)
        expected = self._recorded.of(int(index), self._columns[position])
        key = chunk_key(name, metadata, (shard, 0, 0))
        if whole:
            data, rows = self._shards.get(key, lambda: _whole_shard(self.files, key, layout))
            offset, nbytes = layout.chunk_range(key, rows, slot)
            return layout.decode_image(key, data[offset:offset + nbytes], nbytes, expected)
        kept = self._indices.get((position, shard))
        if kept is None:
            kept = self._indices[(position, shard)] = (key, layout.parse_index(
                key, *_shard_bytes(self.files.read_suffix, key, layout.index_bytes)))
        rows = kept[1]
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
        """Drop the kept shard indices, whole shards and recorded checksums (after shards were rewritten)."""
        self._indices.clear()
        self._shards.clear()
        self._recorded.forget()


class ShardCache:
    """Whole shard objects (with their parsed index) most recently used, up to `limit` bytes.

    Thread-safe: tf.data reads many samples at once. A shard being fetched is fetched once; the
    others that need it wait for that fetch. A failed fetch is not kept (the next read tries again).
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Future] = OrderedDict()
        self._sizes: dict[str, int] = {}

    def get(self, key: str, fetch: Callable[[], ShardEntry]) -> ShardEntry:
        with self._lock:
            future = self._entries.get(key)
            fetching = future is None
            if fetching:
                future = self._entries[key] = Future()
            else:
                self._entries.move_to_end(key)
        if not fetching:
            return future.result()
        try:
            entry = fetch()
        except BaseException as exc:
            with self._lock:
                self._entries.pop(key, None)
            future.set_exception(exc)
            raise
        future.set_result(entry)
        with self._lock:
            if key in self._entries:
                self._sizes[key] = len(entry[0])
                self._evict(keep=key)
        return entry

    def _evict(self, keep: str) -> None:
        """Drop the least recently used fetched shards until the kept bytes fit the limit."""
        total = sum(self._sizes.values())
        for key in list(self._entries):
            if total <= self.limit:
                break
            if key != keep and key in self._sizes:
                total -= self._sizes.pop(key)
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()


def _whole_shard(files: Files, key: str, layout: ShardLayout) -> ShardEntry:
    """Shard object `key` read whole (one GET) and its parsed index; ChunkError if missing or damaged."""
    data = _shard_bytes(files.read, key)
    return data, layout.parse_index(key, len(data), data[-layout.index_bytes:])


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
