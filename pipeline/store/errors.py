"""The store's errors and the advice its messages end with (every room raises these)."""

from __future__ import annotations

import os

# Damage to what describes the store (root attributes, an array's zarr.json) is beyond `verify
# --repair`, which needs that description to remake samples.
UNREPAIRABLE = "restore that file from a copy of the store, or make the library again in a new --out"


class StoreError(RuntimeError):
    """A path that is not a usable store of this project."""


class StoreBusy(StoreError):
    """Another live run is writing the store."""


class StoreDamaged(StoreError):
    """A store of this project with missing or unreadable parts; `verify` names them."""


def verify_hint(path: str | os.PathLike[str]) -> str:
    """The advice that ends a message about damage `verify` can name (and `--repair` may mend)."""
    return f"run `python cli.py verify {path}`"
