"""Shared helpers: run the CLI as a user would and compare stores byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cli import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_cli():
    """Invoke `python cli.py ARGS...` in-process; returns click's Result."""
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


def store_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of a store, read whole."""
    group = zarr.open_group(str(path), mode="r")
    return {name: array[:] for name, array in group.arrays()}


def assert_same_arrays(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
    """Both stores hold the same arrays with the same dtypes and bytes."""
    left, right = store_arrays(a), store_arrays(b)
    assert sorted(left) == sorted(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert left[name].tobytes() == right[name].tobytes(), f"array {name!r} differs"


def tree(path: Path) -> list[str]:
    """Every path under `path`, relative and sorted (to check what a run left behind)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def one_error_line(result) -> str:
    """The single `Error: ...` line of a failed command (no traceback, no usage block)."""
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def declared_png(width: int, height: int) -> bytes:
    """A small PNG file whose header declares width x height 8-bit gray pixels (its data is one
    row short of that: whoever decodes before checking the header pays for the whole image)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


def nan_models(folder: Path) -> dict[str, Path]:
    """Saved models for any input size that answer NaN: `nan-weights` (a NaN kernel, as after a
    training run that diverged) and `overflow` (finite weights whose arithmetic overflows to inf - inf)."""
    import warnings

    import keras

    inputs = keras.Input((None, None, 1))
    nan = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(float("nan")))(inputs)
    huge = keras.initializers.Constant(1e30)
    big = keras.layers.Conv2D(1, 1, kernel_initializer=huge, bias_initializer=huge)(inputs)  # up to 2e30
    infinite = keras.layers.Conv2D(1, 1, kernel_initializer=huge)(big)  # 1e30 x 1e30: inf in float32
    paths = {}
    for name, output in (("nan-weights", nan), ("overflow", keras.layers.Subtract()([infinite, infinite]))):
        paths[name] = folder / f"{name}.keras"
        with warnings.catch_warnings():  # Keras 3.15's saver trips numpy 2's __array__(copy=) deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            keras.Model(inputs, output).save(paths[name])
    return paths


@pytest.fixture(scope="session")
def tiny_library(tmp_path_factory) -> Path:
    """32 pairs at 64 px (train 23, val 3, test 6 by the split rule), for model tests."""
    from pipeline.config import GenerationConfig
    from pipeline.executors import SerialExecutor
    from pipeline.generate import generate

    path = tmp_path_factory.mktemp("tiny") / "tiny.zarr"
    generate(path, 32, GenerationConfig(size=64), seed=0, executor=SerialExecutor())
    return path


# The small preset on the first 20 pairs of the tiny library: train 14, val 2, test 4.
SMALL_RUN = ("--preset", "small", "--batch", "4", "--limit", "20")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_library) -> tuple[Path, str]:
    """A run directory of three epochs of `train` in one go, and what the command printed."""
    run_dir = tmp_path_factory.mktemp("runs") / "straight"
    result = CliRunner().invoke(cli, ["train", "--data", str(tiny_library), "--out", str(run_dir),
                                      "--epochs", "3", *SMALL_RUN], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir, result.output
