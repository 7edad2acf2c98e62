"""Object storage as a store's backend (S3, GCS, Azure, MinIO...): `ObjectFiles`, through fsspec.

Object stores have no rename, no append and no lock (../shared/notes/zarr-dask.md, "Object
storage"), so this backend keeps the store's guarantees another way (docs/store.md):
- `write` is one PUT of the whole object: a reader or a kill sees the old object or the new one;
  no `*.partial` object is ever made, so `find(".partial")` finds none.
- `lock` is a lease object beside the store (`<url>.lease`) created with a conditional PUT
  (`If-None-Match: *`): of two runs, exactly one creates it. The holder rewrites it every
  LEASE_S / 4 seconds (`If-Match` its own version); a lease not renewed for LEASE_S, or one whose
  holder ran on this machine and is gone (killed), is taken over by a PUT conditional on the stale
  version (`If-Match`), so of two runs taking it over only one succeeds.
- Every failure to reach the store (wrong endpoint, missing bucket, bad credentials, no
  permission) is a StoreError of one line, after at most a few quick retries.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import StoreBusy, StoreError
from .files import StoreURL

T = TypeVar("T")

# Seconds a writer's lease lasts without renewal (RECONSTRUCTION_GB_LEASE_S overrides, e.g. for
# tests or a slow link). A run killed on another machine blocks the store this long at most.
LEASE_S = float(os.environ.get("RECONSTRUCTION_GB_LEASE_S", "120"))

# What s3fs is given unless the user's --storage-options say otherwise: fail within seconds (the
# defaults retry an unreachable endpoint for minutes), and no request checksums, which recent
# botocore adds and non-AWS servers (MinIO, Ceph, moto) reject; every chunk has its own CRC32C.
S3_DEFAULTS: dict[str, Any] = {
    "use_listings_cache": False,
    "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"},
                      "request_checksum_calculation": "when_required",
                      "response_checksum_validation": "when_required"},
}

_FILESYSTEMS: dict[tuple[str, str, int], tuple[Any, str]] = {}  # per process: fsspec instances keep an event loop


def storage_options(location: StoreURL) -> dict[str, Any]:
    """The fsspec options for `location`: this project's defaults for its protocol, then the user's."""
    options = location.options
    if location.url.split("://", 1)[0] in ("s3", "s3a"):
        config = {**S3_DEFAULTS["config_kwargs"], **options.get("config_kwargs", {})}
        return {**S3_DEFAULTS, **options, "config_kwargs": config}
    return options


def _filesystem(location: StoreURL) -> tuple[Any, str]:
    """The (sync) fsspec filesystem of `location` and the store's path in it, made once per process."""
    key = (location.url, location.options_json, os.getpid())
    if key not in _FILESYSTEMS:
        import fsspec

        try:
            _FILESYSTEMS[key] = fsspec.core.url_to_fs(location.url, **storage_options(location))
        except (ImportError, ValueError, TypeError) as exc:
            raise StoreError(f"cannot open {location.url}: {exc}") from None
    return _FILESYSTEMS[key]


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _failure(location: StoreURL, exc: BaseException) -> StoreError:
    """One line for an error of the object store: what went wrong and what to check."""
    if isinstance(exc, PermissionError):
        return StoreError(f"{location.url}: access denied ({_reason(exc)}); check the credentials "
                          "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, --storage-options) and the "
                          "bucket's permissions")
    if isinstance(exc, FileNotFoundError):
        return StoreError(f"{location.url}: {_reason(exc)} (does the bucket exist?)")
    return StoreError(f"cannot reach {location.url} ({type(exc).__name__}: {_reason(exc)}); check the endpoint "
                      "(AWS_ENDPOINT_URL, --storage-options '{\"endpoint_url\": ...}') and the network")


async def _s3_suffix(fs: Any, bucket: str, key: str, nbytes: int) -> tuple[int, bytes]:
    """One GET of the last `nbytes` bytes of an S3 object (all of it if shorter), and the object's size."""
    reply = await fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes=-{nbytes}")
    async with reply["Body"] as body:
        data = await body.read()
    whole = reply.get("ContentRange", "").rpartition("/")[2]
    return (int(whole) if whole.isdigit() else len(data)), data


@dataclass(frozen=True)
class ObjectFiles:
    """A store under a URL of object storage; picklable (a task gets only the URL and the options)."""

    location: StoreURL

    # --- plumbing -------------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem (one per process)."""
        return _filesystem(self.location)[0]

    @property
    def root(self) -> str:
        """The store's path inside its filesystem (`bucket/prefix/lib.zarr`)."""
        return _filesystem(self.location)[1].rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def _call(self, action: Callable[[], T]) -> T:
        """Run one filesystem call; its failures become StoreError (FileNotFoundError passes: an absent object)."""
        try:
            return action()
        except (FileNotFoundError, StoreError, _Conflict):
            raise
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and fsspec raise many kinds
            raise _failure(self.location, exc) from None

    # --- Files ------------------------------------------------------------------------------
    def zarr_store(self) -> Any:
        """zarr's FsspecStore on the same URL and options (its own async filesystem)."""
        from zarr.storage import FsspecStore

        return self._call(lambda: FsspecStore.from_url(self.location.url, storage_options=storage_options(self.location)))

    def where(self, key: str = "") -> str:
        """The URL of `key` (of the store itself by default)."""
        return f"{self.location.url}/{key}" if key else self.location.url

    def exists(self) -> bool:
        """True if any object is under the store's prefix; StoreError naming a bucket that does not exist.

        The root `zarr.json` is asked for first: reading a store needs no right to list the bucket.
        """
        self._check_prefix()
        if self.has("zarr.json"):
            return True
        try:
            listed = self._call(lambda: self.fs.ls(self.root, detail=False))
        except FileNotFoundError:
            listed = []
        if not listed:
            self.check_bucket()
        return bool(listed)

    def has(self, key: str) -> bool:
        """True if the object `key` exists (one HEAD request)."""
        try:
            self._call(lambda: self.fs.info(self._path(key)))
            return True
        except FileNotFoundError:
            return False

    def read(self, key: str) -> bytes:
        """The whole object `key` (one GET)."""
        return self._call(lambda: self.fs.cat_file(self._path(key)))

    def read_range(self, key: str, offset: int, nbytes: int) -> bytes:
        """`nbytes` bytes of object `key` from `offset` (one ranged GET)."""
        return self._call(lambda: self.fs.cat_file(self._path(key), start=offset, end=offset + nbytes))

    def read_suffix(self, key: str, nbytes: int) -> tuple[int, bytes]:
        """The size of object `key` and its last `nbytes` bytes: one suffix-range GET on S3 (its
        Content-Range gives the size), a size query and a ranged read elsewhere."""
        if hasattr(self.fs, "_call_s3"):
            from fsspec.asyn import sync

            bucket, _, name = self._path(key).partition("/")
            return self._call(lambda: sync(self.fs.loop, _s3_suffix, self.fs, bucket, name, nbytes))
        size = int(self._call(lambda: self.fs.size(self._path(key))))
        return size, self._call(lambda: self.fs.cat_file(self._path(key), start=max(size - nbytes, 0), end=size))

    def write(self, key: str, data: bytes) -> None:
        """One PUT of the whole object (no rename on object storage: a PUT is atomic)."""
        self._call(lambda: self.fs.pipe_file(self._path(key), bytes(data)))

    def find(self, suffix: str) -> list[str]:
        """Keys of the objects under the store whose names end with `suffix` (one listing)."""
        try:
            found = self._call(lambda: self.fs.find(self.root))
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return [path[start:] for path in found if path.endswith(suffix)]

    def remove(self, key: str) -> None:
        """Delete the object `key`."""
        self._call(lambda: self.fs.rm_file(self._path(key)))

    def remove_all(self) -> None:
        """Delete every object under the store's prefix."""
        try:
            self._call(lambda: self.fs.rm(self.root, recursive=True))
        except FileNotFoundError:
            pass

    def size(self, prefix: str = "") -> int:
        """Stored bytes of the objects under `prefix` (one listing)."""
        try:
            return int(self._call(lambda: self.fs.du(self._path(prefix))))
        except FileNotFoundError:
            return 0

    def lock(self) -> Any:
        """The store's lease (`Lease`): held while the context runs, StoreBusy if a live run holds it."""
        return Lease(self).held()

    # --- object-storage only ------------------------------------------------------------------
    def _check_prefix(self) -> None:
        if not self.root.strip("/") or "/" not in self.root.strip("/"):
            raise StoreError(f"{self.location.url}: give the store a name inside the bucket "
                             f"(e.g. {self.location.url.rstrip('/')}/library.zarr)")

    def check_bucket(self) -> None:
        """StoreError unless the bucket can be reached with these credentials (one request, a few seconds at most)."""
        self._check_prefix()
        bucket = self.root.split("/", 1)[0]
        if not hasattr(self.fs, "call_s3"):
            return  # other filesystems: the first read or write says what is wrong
        try:
            self._call(lambda: self.fs.call_s3("head_bucket", Bucket=bucket))
        except FileNotFoundError:
            raise StoreError(f"{self.location.url}: the bucket {bucket!r} does not exist (or this endpoint "
                             "does not serve it); create it first") from None

    def check_creatable(self) -> None:
        """StoreError unless a new store can be written here (the bucket exists and is reachable)."""
        self.check_bucket()

    def lease_path(self) -> str:
        """Where the single-writer lease lives: beside the store (zarr would warn of a foreign object inside it)."""
        return f"{self.root}.lease"


class _Conflict(Exception):
    """A conditional PUT whose condition did not hold (HTTP 412)."""


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` on this machine (tells a live process from a reused pid), else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Lease:
    """The single-writer lease of a store in object storage (module docstring)."""

    def __init__(self, files: ObjectFiles, seconds: float = LEASE_S):
        self.files, self.seconds = files, seconds
        self.path = files.lease_path()
        self.owner = secrets.token_hex(8)
        self.etag: str | None = None
        self.lost = threading.Event()

    def _body(self) -> bytes:
        pid = os.getpid()
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": pid,
                           "pid_started": _process_start(pid), "expires": time.time() + self.seconds}).encode()

    def _put(self, **condition: str) -> str | None:
        """One conditional PUT of the lease; its new ETag (None where the backend gives none)."""
        fs = self.files.fs
        try:
            if hasattr(fs, "call_s3"):
                reply = fs.call_s3("put_object", Bucket=self.path.split("/", 1)[0], Key=self.path.split("/", 1)[1],
                                   Body=self._body(), **condition)
                return reply.get("ETag")
            if condition.get("IfNoneMatch") == "*":
                fs.pipe_file(self.path, self._body(), mode="create")  # fsspec's exclusive create
            else:
                fs.pipe_file(self.path, self._body())
            return None
        except FileExistsError:  # s3fs: 412 on If-None-Match
            raise _Conflict() from None
        except OSError as exc:
            if exc.errno == errno.EINVAL and "condition" in str(exc):  # s3fs: 412 on If-Match
                raise _Conflict() from None
            raise

    def _stale(self, held: dict[str, Any]) -> bool:
        if time.time() > float(held.get("expires", 0)):
            return True  # not renewed in time: its holder is gone (or cut off)
        if held.get("host") == socket.gethostname():
            started = _process_start(int(held.get("pid", -1)))
            return started is None or started != held.get("pid_started")  # killed on this machine
        return False

    def acquire(self) -> None:
        """Create the lease, or take over a stale one; StoreBusy if a live run holds it."""
        url = self.files.location.url
        try:
            self.etag = self.files._call(lambda: self._put(IfNoneMatch="*"))
            return
        except _Conflict:
            pass
        try:
            info = self.files._call(lambda: self.files.fs.info(self.path))
            held = json.loads(self.files._call(lambda: self.files.fs.cat_file(self.path)))
        except (FileNotFoundError, ValueError):
            held, info = {"expires": 0}, {}  # released meanwhile, or unreadable: try to take it over
        if not self._stale(held):
            until = time.strftime("%H:%M:%S UTC", time.gmtime(float(held.get("expires", 0))))
            raise StoreBusy(f"{url} is being written by another generate run (host {held.get('host')}, "
                            f"pid {held.get('pid')}, lease renewed until {until}); wait for it to finish or stop it")
        etag = info.get("ETag")
        try:
            if etag:
                self.etag = self.files._call(lambda: self._put(IfMatch=etag))
            else:  # a backend without ETags: delete and create, not safe against a simultaneous taker
                try:
                    self.files._call(lambda: self.files.fs.rm_file(self.path))
                except FileNotFoundError:
                    pass
                self.etag = self.files._call(lambda: self._put(IfNoneMatch="*"))
        except (_Conflict, FileNotFoundError):
            raise StoreBusy(f"{url} is being taken over by another generate run; wait for it to finish or stop it") \
                from None

    def renew(self) -> None:
        """Rewrite the lease with a new expiry, if it is still ours (else mark it lost)."""
        try:
            self.etag = self._put(**({"IfMatch": self.etag} if self.etag else {}))
        except Exception:  # noqa: BLE001 - taken over or unreachable: the holder learns it at release
            self.lost.set()

    def release(self) -> None:
        """Delete the lease (if still ours)."""
        try:
            held = json.loads(self.files.fs.cat_file(self.path))
            if held.get("owner") == self.owner:
                self.files.fs.rm_file(self.path)
        except Exception:  # noqa: BLE001 - gone already, or unreachable: it expires by itself
            pass

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lease while the context runs, renewing it from a thread."""
        self.acquire()
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self.seconds / 4):
                self.renew()

        renewer = threading.Thread(target=keep, name="store-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            self.release()
        if self.lost.is_set():
            raise StoreBusy(f"{self.files.location.url}: this run lost its writer lease (not renewed in time, "
                            "or taken over); run the same command again to check and continue")
