"""Whole shards of the image arrays in zarr's `sharding_indexed` layout, written and read without zarr.

A shard file holds the inner chunks of up to B samples back to back, then the index: B rows of
(offset, nbytes) as little-endian uint64 (both 2**64 - 1 for an absent chunk) and the CRC32C of
those index bytes. Each inner chunk is the Blosc frame of one (S, S) image followed by the
CRC32C of that frame (zarr's `crc32c` codec: 4 bytes, little-endian). Tests check byte for byte
that this is what zarr's ShardingCodec writes and reads. Bytes only: the store's reading room
(pipeline/store/reading.py) fetches them through its backend. Only pipeline/store/ uses this module.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import google_crc32c
import numcodecs
import numpy as np

EMPTY = 2**64 - 1  # offset and nbytes of an absent inner chunk
CRC = 4  # bytes of a CRC32C


class ChunkError(ValueError):
    """An inner chunk or shard index that is absent or damaged; the message says which and how."""


def with_crc(data: bytes) -> bytes:
    """`data` followed by its CRC32C, as zarr's crc32c codec encodes it."""
    return data + struct.pack("<I", google_crc32c.value(data))


def without_crc(data: bytes, what: str) -> bytes:
    """`data` less its trailing CRC32C, or ChunkError if the checksum does not match."""
    if len(data) < CRC:
        raise ChunkError(f"{what} is truncated ({len(data)} bytes)")
    body = data[:-CRC]
    if google_crc32c.value(body) != int.from_bytes(data[-CRC:], "little"):
        raise ChunkError(f"{what} fails its CRC32C checksum")
    return body


def chunk_crc(chunk: bytes) -> int:
    """The CRC32C an encoded inner chunk ends with."""
    return int.from_bytes(chunk[-CRC:], "little")


def encode_shard(chunks: list[bytes | None]) -> bytes:
    """A shard file from its encoded inner chunks (None: absent), index at the end."""
    index = np.full((len(chunks), 2), EMPTY, dtype="<u8")
    offset = 0
    for slot, chunk in enumerate(chunks):
        if chunk is not None:
            index[slot] = (offset, len(chunk))
            offset += len(chunk)
    return b"".join(c for c in chunks if c is not None) + with_crc(index.tobytes())


@dataclass(frozen=True)
class ShardLayout:
    """How one image array is sharded and encoded: B samples a shard, (S, S) images, one Blosc codec."""

    samples: int  # B
    image_shape: tuple[int, int]
    dtype: np.dtype
    codec: numcodecs.Blosc

    @property
    def index_bytes(self) -> int:
        return self.samples * 16 + CRC

    @property
    def image_bytes(self) -> int:
        return self.image_shape[0] * self.image_shape[1] * self.dtype.itemsize

    def encode_image(self, image: np.ndarray) -> bytes:
        """One inner chunk: the Blosc frame of `image` and its CRC32C."""
        if image.dtype != self.dtype or image.shape != self.image_shape:
            raise ValueError(f"image {image.shape} {image.dtype} does not fit {self.image_shape} {self.dtype}")
        return with_crc(bytes(self.codec.encode(np.ascontiguousarray(image))))

    def parse_index(self, name: str, size: int, tail: bytes) -> list[tuple[int, int]]:
        """(offset, nbytes) of the B inner chunks of shard `name`, from its size and last `index_bytes` bytes."""
        if size < self.index_bytes:
            raise ChunkError(f"shard file {name} is truncated ({size} bytes)")
        index = np.frombuffer(without_crc(tail, f"index of shard file {name}"), "<u8").reshape(self.samples, 2)
        present = index[:, 0] != EMPTY
        if np.any(index[present].sum(axis=1) > size - self.index_bytes):
            raise ChunkError(f"index of shard file {name} points past its end")
        return [(int(offset), int(nbytes)) for offset, nbytes in index.tolist()]

    @staticmethod
    def chunk_range(name: str, index: list[tuple[int, int]], slot: int) -> tuple[int, int]:
        """(offset, nbytes) of inner chunk `slot` of shard `name`; ChunkError if the shard lacks it."""
        offset, nbytes = index[slot]
        if offset == EMPTY:
            raise ChunkError(f"absent from shard file {name}")
        return offset, nbytes

    def decode_image(self, name: str, data: bytes, nbytes: int, expected_crc: int = 0) -> np.ndarray:
        """The image in inner chunk `data` of shard `name` (`nbytes` long by its index); ChunkError if unusable.

        `expected_crc` (0: unknown) is the CRC32C recorded for this sample's image: a different
        one is an image of another sample, in a shard file moved or swapped.
        """
        if len(data) != nbytes:
            raise ChunkError(f"shard file {name} is truncated")
        frame = without_crc(data, "chunk")
        if expected_crc and chunk_crc(data) != expected_crc:
            raise ChunkError(f"shard file {name} holds another image than the one committed for this sample "
                             "(a valid chunk, but not this sample's checksum): shard files moved, swapped or "
                             "rewritten by something else")
        try:
            raw = self.codec.decode(frame)
        except Exception as exc:  # whatever Blosc raises on a frame that passed its checksum
            raise ChunkError(f"cannot decode ({type(exc).__name__}: {exc})") from None
        if len(raw) != self.image_bytes:
            raise ChunkError(f"decodes to {len(raw)} bytes, expected {self.image_bytes}")
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.image_shape)
