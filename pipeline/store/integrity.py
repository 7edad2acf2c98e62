"""The recorded image checksums (`image_crc`): what a commit records and what readers compare with.

Each chunk's own CRC32C (zarr's `crc32c` codec) is checked where the chunk is decoded (pipeline/shards.py,
zarr for the per-sample arrays); this room keeps the per-sample record that tells a valid chunk
of another sample (a shard file moved or swapped) from this sample's own. `pipeline/verify.py`
is this room's command: it re-reads every done sample against the whole contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import zarr

from ..shards import ChunkError
from .errors import StoreDamaged, verify_hint
from .layout import IMAGE_CRC, NO_CRC, SAMPLE_IMAGES


def unrecorded(count: int, images: int = len(SAMPLE_IMAGES)) -> np.ndarray:
    """The (count, images) rows of samples whose checksums are not recorded (not done, or unchecked)."""
    return np.full((count, images), NO_CRC, dtype="uint32")


def crc_rows(crcs: Sequence[Sequence[int]] | None, order: Sequence[int], images: int = len(SAMPLE_IMAGES)) -> np.ndarray:
    """The rows a commit records: per sample in `order`, its chunks' CRC32C as `ImageWriter.write` gave them."""
    if crcs is None:
        return unrecorded(len(order), images)
    return np.array([crcs[k] for k in order], dtype="uint32").reshape(len(order), images)


def read_recorded(where: str, array: zarr.Array, count: int) -> np.ndarray:
    """The (count, 3) recorded checksums of the store at `where`; StoreDamaged if unreadable."""
    try:
        return np.asarray(array[:count])
    except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk
        raise StoreDamaged(f"{where} is damaged: cannot read the array {IMAGE_CRC!r} ({type(exc).__name__}); "
                           f"{verify_hint(where)}") from None


class RecordedCrcs:
    """A reader's view of `image_crc`: read whole on first use (4 bytes an image), then kept."""

    def __init__(self, array: zarr.Array | None, count: int):
        self._array, self._count = array, count
        self._rows: np.ndarray | None = None

    def of(self, index: int, column: int) -> int:
        """The CRC32C recorded for image `column` of sample `index`, or NO_CRC; ChunkError if unreadable."""
        if self._array is None:
            return NO_CRC
        if self._rows is None:
            try:
                self._rows = np.asarray(self._array[: self._count])
            except Exception as exc:  # noqa: BLE001 - a checksum mismatch or garbage chunk, whatever the codec raises
                raise ChunkError(f"cannot read the recorded checksums ({IMAGE_CRC}: {type(exc).__name__})") from None
        return int(self._rows[index, column]) if index < len(self._rows) else NO_CRC

    def forget(self) -> None:
        """Read the record again on next use (after a commit changed it)."""
        self._rows = None
