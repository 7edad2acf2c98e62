"""Where a store lives: the one seam between the store and a storage backend.

Every other room reaches the bytes of a store through a `Files` (and zarr through its
`zarr_store()`); only this module knows paths, `os.replace`, `flock` and `*.partial` files.
`store_location` tells a URL (`StoreURL`: object storage, any fsspec protocol) from a folder
(an absolute Path), and `files_at` gives its backend: `LocalFiles` here, or `ObjectFiles`
(objects.py, loaded only for a URL): no rename there, so `write` is one PUT; no lock file, so
`lock` is a lease object created with `If-None-Match: *`; no partial objects, so
`find(".partial")` finds none (../shared/notes/zarr-dask.md, "Object storage").
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import warnings
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

from .errors import StoreBusy, StoreError

# A full disk, or a full quota: the same advice (free some space) and the same one line.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_PARTIAL_NAME = re.compile(r"\.[0-9a-f]{16,32}\.partial$")


class Files(Protocol):
    """The operations the store needs of its backend; keys are `/`-separated, relative to the store."""

    def zarr_store(self) -> Any:
        """What `zarr.open_group` is given to open the store's group (a path, or a zarr Store)."""

    def where(self, key: str = "") -> str:
        """How the object `key` (the store itself by default) is named in messages."""

    def exists(self) -> bool:
        """True if anything at all is at the store's location."""

    def has(self, key: str) -> bool:
        """True if the object `key` exists."""

    def read(self, key: str) -> bytes:
        """The whole object `key`; FileNotFoundError if absent."""

    def read_range(self, key: str, offset: int, nbytes: int) -> bytes:
        """`nbytes` bytes of object `key` from `offset` (fewer past its end); FileNotFoundError if absent."""

    def read_suffix(self, key: str, nbytes: int) -> tuple[int, bytes]:
        """The size of object `key` and its last `nbytes` bytes (all of it if shorter); FileNotFoundError if absent."""

    def write(self, key: str, data: bytes) -> None:
        """Replace object `key` by `data` whole: a reader or a kill sees the old object or the new one."""

    def find(self, suffix: str) -> list[str]:
        """Keys of the objects whose names end with `suffix`."""

    def remove(self, key: str) -> None:
        """Delete the object `key`."""

    def remove_all(self) -> None:
        """Delete the store and everything in it."""

    def size(self, prefix: str = "") -> int:
        """Stored bytes of the objects under `prefix` (the whole store by default)."""

    def lock(self) -> AbstractContextManager[None]:
        """Hold the store's single-writer lock, or raise StoreBusy at once if a live run holds it."""


@dataclass(frozen=True)
class StoreURL:
    """A store in object storage (or any fsspec filesystem): its URL and the options of that filesystem.

    Picklable and small: it is all a worker needs to reach the store (credentials come from the
    worker's own environment, or from `options` where the user gave `--storage-options`).
    """

    url: str
    options_json: str = "{}"

    def __str__(self) -> str:
        return self.url

    @property
    def options(self) -> dict[str, Any]:
        """The filesystem's options (`--storage-options`), as a new dict."""
        return json.loads(self.options_json)

    @property
    def name(self) -> str:
        """The last part of the URL (`lib.zarr`), as `Path.name` gives for a folder."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


# Where a store lives: a folder (absolute Path) or an object-storage URL.
Location = Path | StoreURL


def is_url(location: object) -> bool:
    """True for `s3://...`, `gs://...`, `memory://...` (any fsspec URL but `file://`), or a StoreURL."""
    if isinstance(location, StoreURL):
        return True
    if not isinstance(location, str):
        return False
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum() and scheme != "file"


def store_location(location: str | os.PathLike[str] | StoreURL,
                   storage_options: dict[str, Any] | None = None) -> Location:
    """`location` as the store names it: a URL (with `storage_options`) or an absolute Path.

    A `file://` URL is the local folder. `storage_options` are refused for a local folder (they would
    be silently ignored).
    """
    if isinstance(location, StoreURL):
        if storage_options:
            return StoreURL(location.url, json.dumps({**location.options, **storage_options}, sort_keys=True))
        return location
    text = os.fspath(location)
    if is_url(text):
        return StoreURL(text.rstrip("/"), json.dumps(storage_options or {}, sort_keys=True))
    if storage_options:
        raise StoreError(f"--storage-options applies to a URL (s3://...), not to the local folder {text}")
    return Path(text.removeprefix("file://")).absolute()


def files_at(location: str | os.PathLike[str] | StoreURL) -> Files:
    """The backend of the store at `location`: object storage for a URL, else local files."""
    place = store_location(location)
    if isinstance(place, StoreURL):
        from .objects import ObjectFiles  # fsspec and s3fs load only for a store that needs them

        return ObjectFiles(place)
    return LocalFiles(place)


@dataclass(frozen=True)
class LocalFiles:
    """A store in a folder of the local (or a mounted network) filesystem; picklable, for tasks."""

    root: Path

    def zarr_store(self) -> str:
        """The folder, as zarr's LocalStore opens it."""
        return str(self.root)

    def where(self, key: str = "") -> str:
        """The path of `key` (of the folder itself by default)."""
        return str(self.root / key) if key else str(self.root)

    def exists(self) -> bool:
        """True if anything (a folder, a file) is at the path."""
        return self.root.exists()

    def has(self, key: str) -> bool:
        """True if `key` is a file."""
        return (self.root / key).is_file()

    def read(self, key: str) -> bytes:
        """The bytes of the file `key`."""
        return (self.root / key).read_bytes()

    def read_range(self, key: str, offset: int, nbytes: int) -> bytes:
        """One pread of the file `key`."""
        fd = os.open(self.root / key, os.O_RDONLY)
        try:
            return os.pread(fd, nbytes, offset)
        finally:
            os.close(fd)

    def read_suffix(self, key: str, nbytes: int) -> tuple[int, bytes]:
        """The size of the file `key` and its tail, through one open file."""
        fd = os.open(self.root / key, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            return size, os.pread(fd, min(nbytes, size), max(size - nbytes, 0))
        finally:
            os.close(fd)

    def write(self, key: str, data: bytes) -> None:
        """Write the file `key` through a partial file and a rename (`atomic_write`)."""
        atomic_write(self.root / key, data)

    def find(self, suffix: str) -> list[str]:
        """Keys of the files below the folder whose names end with `suffix`."""
        return [path.relative_to(self.root).as_posix() for path in self.root.rglob(f"*{suffix}") if path.is_file()]

    def remove(self, key: str) -> None:
        """Delete the file `key`."""
        (self.root / key).unlink()

    def remove_all(self) -> None:
        """Delete the folder and everything in it."""
        shutil.rmtree(self.root)

    def size(self, prefix: str = "") -> int:
        """Bytes of the files below `prefix` (a folder of the store, or the whole store)."""
        return _tree_size(self.root / prefix)

    def lock(self) -> AbstractContextManager[None]:
        """A flock on the folder (`writer_lock`)."""
        return writer_lock(self.root)


def atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `<target>.<random>.partial`, then rename it to `target`.

    A kill leaves either the old file or the new one, never a truncated one; a failed write
    removes its partial file and raises.
    """
    partial = target.with_name(f"{target.name}.{secrets.token_hex(8)}.partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, target)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if is_no_space(exc):  # a failed write or close names no file: name the target for the message
            raise OSError(exc.errno, exc.strerror, str(target)) from None  # type: ignore[union-attr]
        raise


def is_no_space(exc: BaseException) -> bool:
    """True for the OSError of a full disk (or quota)."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def no_space_line(exc: OSError, target: str | os.PathLike[str] | None = None, outcome: str = "") -> str:
    """One line for a full disk: `target` (else the file the error names, less its partial suffix) and `outcome`
    (what was kept or removed), ending with what to do."""
    where = target if target is not None else _PARTIAL_NAME.sub("", str(exc.filename or "")) or "the output"
    then = f"{outcome}; " if outcome else ""
    return f"cannot write {where}: no space left on device; {then}free some space and run it again"


def write_error_line(exc: OSError, target: str | os.PathLike[str], outcome: str = "") -> str:
    """One line for an OSError writing `target`: `no_space_line` for a full disk, else the system's reason."""
    if is_no_space(exc):
        return no_space_line(exc, target, outcome)
    return f"cannot write {target}: {exc.strerror or exc}{'; ' + outcome if outcome else ''}"


def os_error_line(exc: OSError) -> str:
    """One line for an OSError no command expected: the file it names (shortened) and the system's reason."""
    if is_no_space(exc):
        return no_space_line(exc)
    name = _PARTIAL_NAME.sub("", str(exc.filename or ""))
    if len(name) > 120:
        name = f"{name[:60]}...{name[-40:]} ({len(name)} characters)"
    return f"{name}: {exc.strerror or exc}" if name else str(exc.strerror or exc)


@contextmanager
def writer_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the writer lock of the store at `path`, or raise StoreBusy at once if a live run holds it.

    The lock is a flock on the store directory itself (no file inside the store, which zarr
    would warn about): the kernel drops it when the holding process dies, however it dies.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusy(f"{path} is being written by another generate run; "
                            "wait for it to finish or stop it") from None
        except OSError as exc:  # some network filesystems cannot lock a directory
            warnings.warn(f"cannot lock {path} ({exc.strerror}): make sure no other generate writes it",
                          stacklevel=3)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_creatable(path: Path) -> None:
    """Raise StoreError unless `path` can be made: its nearest existing ancestor is a writable folder."""
    ancestor = next(p for p in path.parents if p.exists())
    if not ancestor.is_dir():
        raise StoreError(f"cannot create {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create {path}: {ancestor} is not writable")


def check_writable_folder(path: Path) -> None:
    """Raise StoreError unless files can be written in the folder `path` (existing, or creatable)."""
    if path.exists():
        if not path.is_dir():
            raise StoreError(f"{path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StoreError(f"cannot write in {path}: it is not writable")
        return
    check_creatable(path)


def _tree_size(root: Path) -> int:
    total = 0
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            total += _tree_size(Path(entry.path))
        else:
            total += entry.stat(follow_symlinks=False).st_size
    return total
