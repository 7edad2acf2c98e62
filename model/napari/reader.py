"""npe2 reader: a Reconstruction-GB store opens as three layers (micro, label, grains), one slider step a sample;
a boundary map `measure --restore` kept (`NAME_boundaries.png`) opens as an editable boundary Labels layer.

Images are read lazily, one sample at a time, through the store module (`pipeline/store/`, via
the adapter); any other path is left to napari's own readers (`get_reader` returns None).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import dask.array as da
import numpy as np
from dask import delayed

from . import adapter

LayerData = tuple[Any, dict[str, Any], str]
DTYPES = {"micro": np.uint8, "label": np.uint8, "grains": np.uint16}


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The store reader when `path` is one store of this project, else None (napari tries its others)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if adapter.is_library(path):
        return read_library
    return read_boundary_map if adapter.is_kept_boundary_map(path) else None


def read_boundary_map(path: str | list[str]) -> list[LayerData]:
    """`NAME_boundaries.png` as the Restore widget's result would be: Labels `NAME boundaries`
    (1 = boundary), named NAME for Save, with the pixel size of NAME's micrograph beside it if it has one."""
    path = Path(path[0] if isinstance(path, list) else path)
    labels, metadata = adapter.read_boundary_map(path)
    return [(labels, {"name": f"{metadata['name']} boundaries", "metadata": metadata, "opacity": 1.0}, "labels")]


def _stack(library: adapter.Library, name: str) -> da.Array:
    """(samples, S, S) of one image array, each sample read only when napari shows it."""
    side = library.size
    dtype = DTYPES.get(name, np.uint8)
    planes = [da.from_delayed(delayed(library.read)(name, position), (side, side), dtype=dtype)
              for position in range(len(library.samples))]
    return da.stack(planes)


def read_library(path: str | list[str]) -> list[LayerData]:
    """The layers of one store: micro and label as gray images, grains as labels (hidden until asked for)."""
    path = path[0] if isinstance(path, list) else path
    library = adapter.open_library(path)
    stem = Path(str(library.path)).name.removesuffix(".zarr")  # a folder or a URL (s3://bucket/lib.zarr)
    metadata = {"store": str(library.path), "samples": library.samples}
    return [
        (_stack(library, "micro"), {"name": f"{stem} micro", "metadata": metadata, "contrast_limits": (0, 255),
                                    "colormap": "gray"}, "image"),
        (_stack(library, "label"), {"name": f"{stem} label", "metadata": metadata, "contrast_limits": (0, 255),
                                    "colormap": "gray", "visible": False}, "image"),
        (_stack(library, "grains"), {"name": f"{stem} grains", "metadata": metadata, "visible": False}, "labels"),
    ]
