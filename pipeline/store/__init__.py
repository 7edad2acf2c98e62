"""The library's Zarr store: the only package that knows its layout (see docs/store.md).

Writers: each generation task writes whole shards of the image arrays (B consecutive samples a
shard, B fixed in the store at creation), so exactly one writer per file; only the driver
creates, resizes and writes the per-sample arrays and the `done` marker, after the images of
those samples are in place. Every image chunk and every per-sample chunk carries a CRC32C.

Rooms (one job each; a room imports only the rooms listed before it, never one after):
- errors.py: StoreError, StoreBusy, StoreDamaged and the advice messages end with. Imports nothing.
- files.py: the backend seam. `Files` is every operation the store needs of where it lives (read
  an object or a byte range of it, write one whole and atomically, exists, find, remove, size,
  the single-writer lock, what zarr opens); `LocalFiles` implements it on a folder, with
  `atomic_write` and `writer_lock`; `files_at` picks the backend for a location. The only room
  that does file I/O itself (os, fcntl, shutil). Imports errors.
- layout.py: what format 2 is: FORMAT, FORMAT_VERSION, array names, dtypes, codecs, attributes,
  shard sizing, file count, software versions, the description checks. No I/O. Imports errors,
  and pipeline/shards.py (the shard byte codec, which imports nothing of the store).
- integrity.py: the recorded image checksums (`image_crc`): the rows a commit records, a
  reader's lazy view of them. Imports errors, layout, and ChunkError of pipeline/shards.py.
  Its command, `verify` (and `--repair`), stays in pipeline/verify.py: it remakes samples
  (pipeline/sample.py, pipeline/interchange.py), so it sits above the store with the other
  commands and reaches the store only through this package's names (and ChunkError).
- opening.py: recognise, create and open a store through its `Files`. Imports errors, files,
  integrity, layout.
- reading.py: ImageReader (one byte-range read a sample image) and the per-sample arrays.
  Imports errors, files, integrity, layout.
- writing.py: ImageWriter (whole shards), commit (done last), grow, partial-file cleanup.
  Imports files, integrity, layout, and pipeline/sample.py for the Sample types.
- library.py: LibraryStore, the face over all of them. Imports every room.
- objects.py: the second backend, `ObjectFiles` (object storage through fsspec/s3fs: one PUT a
  shard, a lease object by conditional PUT for the single writer), chosen by `files_at` for a URL
  (`StoreURL`: the URL and its `--storage-options`). Imports errors, files; loaded only for a URL.
The other rooms reach storage only through `Files` and zarr through `Files.zarr_store()`.
`LibraryStore.path` is a `Location`: an absolute Path, or a StoreURL (which messages name);
`shard_file` is for local stores only (tests and tools).
"""

from .errors import UNREPAIRABLE, StoreBusy, StoreDamaged, StoreError, verify_hint
from .files import (NO_SPACE, Files, LocalFiles, Location, StoreURL, atomic_write, check_creatable,
                    check_writable_folder, files_at, is_no_space, is_url, no_space_line, os_error_line,
                    store_location, write_error_line, writer_lock)
from .layout import (ALL_ARRAYS, ARRAY_ATTRIBUTES, CHUNK_KEYS, DONE, FORMAT, FORMAT_VERSION, GRAINS_CODEC,
                     IMAGE_ARRAYS, IMAGE_CODEC, IMAGE_CRC, IMAGE_DTYPES, MAX_SHARD, META_ARRAYS, META_CHUNK,
                     MIN_SHARDS, NO_CRC, OPTIONAL_ARRAYS, PER_SAMPLE_ARRAYS, SAMPLE_IMAGES, file_count,
                     shard_samples, software_versions)
from .library import LibraryStore
from .opening import creation_cut_short, is_store, project_group
from .reading import ImageReader
from .writing import ImageWriter

__all__ = [
    "ALL_ARRAYS", "ARRAY_ATTRIBUTES", "CHUNK_KEYS", "DONE", "FORMAT", "FORMAT_VERSION", "GRAINS_CODEC",
    "IMAGE_ARRAYS", "IMAGE_CODEC", "IMAGE_CRC", "IMAGE_DTYPES", "MAX_SHARD", "META_ARRAYS", "META_CHUNK",
    "MIN_SHARDS", "NO_CRC", "NO_SPACE", "OPTIONAL_ARRAYS", "PER_SAMPLE_ARRAYS", "SAMPLE_IMAGES", "UNREPAIRABLE",
    "Files", "ImageReader", "ImageWriter", "LibraryStore", "LocalFiles", "Location", "StoreBusy", "StoreDamaged",
    "StoreError", "StoreURL", "atomic_write", "check_creatable", "check_writable_folder", "creation_cut_short",
    "file_count", "files_at", "is_no_space", "is_store", "is_url", "no_space_line", "os_error_line",
    "project_group", "shard_samples", "software_versions", "store_location", "verify_hint", "write_error_line",
    "writer_lock",
]
