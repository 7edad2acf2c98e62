"""A loaded Keras model run tile by tile: the tile size it accepts, optional test-time augmentation.

`load_predictor` checks a saved model's signature and the tile size with one forward pass; every
problem is a PredictError with one line. TensorFlow is imported only when a model is loaded.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from model import quiet_tensorflow
from .images import ImageError
from .postprocess import ModelOutputError, check_finite, dihedral_mean
from .tiling import Progress, count_tiles, predict_tiled

DEFAULT_TILE = 256  # tile side for models that accept any input size (fixed-size models use their own)
DEFAULT_BATCH = 4


def default_overlap(tile: int) -> int:
    """Overlap used when none is given: a quarter of the (smaller) tile side."""
    return tile // 4


class PredictError(ValueError):
    """Settings, inputs or a model that cannot be used; raised before any output is written. One line."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NOISE = re.compile(r"^(in user code:|raise |Traceback|Arguments received|•)|Exception encountered when calling")


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The first informative line of an exception's message (traceback lines skipped), shortened."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    useful, after_file = [], False
    for line in lines:
        if line.startswith('File "'):
            after_file = True  # the next line is the source line it shows
        elif after_file:
            after_file = False
        elif not _NOISE.search(line):
            useful.append(line)
    text = (useful or lines or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."




def check_signature(model: Any) -> tuple[int | None, int | None]:
    """The (rows, cols) of a restoration model's input (None where any size goes); PredictError
    unless it has one (batch, H, W, 1) input and one (batch, H, W, 1) output."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except Exception as exc:  # e.g. a Sequential model that was never built
        raise PredictError(f"the model has no defined inputs/outputs: {_one_line(exc)}") from None
    if len(inputs) != 1 or len(outputs) != 1:
        raise PredictError(f"expected a model with one input and one output, got {len(inputs)} and {len(outputs)}")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[3] not in (1, None):
        raise PredictError(f"expected a model input of shape (batch, height, width, 1), got {shape}")
    out_shape = tuple(outputs[0].shape)
    if len(out_shape) != 4 or out_shape[3] not in (1, None):
        raise PredictError(f"expected a model output of shape (batch, height, width, 1), got {out_shape}")
    return shape[1], shape[2]


def check_finite_weights(model: Any, path: Path) -> None:
    """PredictError if any weight of `model` is NaN or infinite (a training run that diverged):
    every probability it gives would be NaN, read silently as boundary everywhere."""
    for variable in model.weights:  # one at a time: the paper model's weights are 0.6 GB
        if not np.isfinite(np.asarray(variable)).all():
            raise PredictError(f"cannot use the model in {path}: its weights hold NaN or infinite values "
                               f"({getattr(variable, 'path', variable.name)}), as after a training run that diverged")


class Predictor:
    """A loaded Keras model and the tile size it is run on."""

    def __init__(self, model: Any, tile: int | None = None, tta: bool = False):
        """Check the model's input/output signature and settle the tile size; PredictError if unusable.

        With `tta`, every batch is predicted as the mean over its 8 dihedral transforms
        (model.inference.postprocess.dihedral_mean), which needs square tiles for a fixed-size model.

        A model with a fixed input size (H, W) is run on H x W tiles, and `tile` may only repeat it.
        A model accepting any size runs on tiles of at most `tile` x `tile` (default DEFAULT_TILE;
        `tile_for`); one forward pass on a zero tile checks that the model accepts that size (a
        U-Net needs multiples of 2^depth, `multiple`).
        """
        self.model = model
        rows, cols = check_signature(model)
        if tile is not None and tile <= 0:
            raise PredictError(f"--tile must be > 0, got {tile}")
        self.fixed = rows is not None and cols is not None  # the model's input size is fixed
        if self.fixed and tile is not None and (tile, tile) != (rows, cols):
            need = f"must be {rows} (or left out)" if rows == cols else "cannot be used"
            raise PredictError(f"the model takes {rows}x{cols} inputs only: --tile {need}, got {tile}")
        side = DEFAULT_TILE if tile is None else tile
        self.tile: tuple[int, int] = (rows or side, cols or side)
        if tta and self.tile[0] != self.tile[1]:
            raise PredictError(f"--tta needs square tiles; the model takes {rows}x{cols} inputs")
        self.tta = tta
        pools = sum(type(layer).__name__ in ("MaxPooling2D", "AveragePooling2D") for layer in model.layers)
        self.multiple = 2**pools  # a free model's tile sides are multiples of this (0: full tiles only)
        self._forward = self._compile()
        self._probe()

    def tile_for(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The tile an image of `shape` (H, W) is run on: `self.tile`, except that a model accepting
        any size gets a side shorter than the tile rounded up to `multiple` instead.

        An image side shorter than the tile would otherwise be mirrored out to the tile: the
        network then sees mirrored grains where its training crops ended, and draws boundaries
        along the image's edge (on 192 px crops of validation images, 256 px tiles tripled the
        grain-count error of the whole-image prediction; docs/predict.md).
        """
        if self.fixed or not self.multiple:
            return self.tile
        rows, cols = (min(t, -(-side // self.multiple) * self.multiple) for t, side in zip(self.tile, shape))
        return rows, cols  # with TTA, the quarter turns of a non-square tile go through the same free graph

    def _compile(self) -> Any:
        """The model's forward pass as one graph for every batch size (no retracing per batch size)."""
        import keras

        if keras.backend.backend() != "tensorflow":
            return self.model.predict_on_batch
        import tensorflow as tf

        rows, cols = self.tile if self.fixed else (None, None)  # one graph for every tile size
        model = self.model
        graph = tf.function(lambda x: model(x, training=False),
                            input_signature=[tf.TensorSpec((None, rows, cols, 1), tf.float32)])
        return lambda tiles: graph(tf.convert_to_tensor(tiles, dtype=tf.float32)).numpy()

    def _probe(self) -> None:
        """One forward pass on a zero tile: the model accepts the tile and answers (1, H, W, 1)."""
        rows, cols = self.tile
        try:
            answer = self._plain(np.zeros((1, rows, cols, 1), dtype=np.float32))
        except Exception as exc:
            why = (f"it has {self.multiple.bit_length() - 1} 2x poolings: the tile must be a multiple of "
                   f"{self.multiple}" if self.multiple > 1 else _one_line(exc))
            raise PredictError(f"the model does not accept {rows}x{cols} tiles ({why})") from None
        if answer.shape not in ((1, rows, cols, 1), (1, rows, cols)):
            raise PredictError(f"the model answers {rows}x{cols} tiles with shape {answer.shape}, "
                               f"expected {(1, rows, cols, 1)}")
        if not np.isfinite(answer).all():
            raise PredictError(f"the model answers a blank {rows}x{cols} tile with NaN or infinite probabilities "
                               "(its arithmetic overflows): it cannot be used")
        if not self.fixed and not self._accepts(self.multiple, 3 * self.multiple):
            self.multiple = 0  # its size rule is not 2^poolings: every tile stays full size (tile_for)

    def _accepts(self, rows: int, cols: int) -> bool:
        """Whether the model answers a zero rows x cols tile with the same size."""
        try:
            return self._plain(np.zeros((1, rows, cols, 1), dtype=np.float32)).shape[1:3] == (rows, cols)
        except Exception:
            return False

    def predict_batch(self, tiles: np.ndarray) -> np.ndarray:
        """(n, H, W, 1) float32 tiles in [0, 1] -> (n, H, W, 1) background probabilities; ImageError
        (this image fails) if any is NaN or infinite."""
        if self.tta:
            answer = dihedral_mean(lambda batch: self._plain(batch).reshape(batch.shape[:3] + (1,)), tiles)
        else:
            answer = self._plain(tiles)
        try:
            return check_finite(answer)
        except ModelOutputError as exc:
            raise ImageError(str(exc)) from None

    def _plain(self, tiles: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(tiles), dtype=np.float32)

    def _tiling(self, shape: tuple[int, int], overlap: int) -> tuple[tuple[int, int], int]:
        """(tile, overlap) for an image of `shape`: `tile_for`, and the overlap kept below a shrunk tile."""
        tile = self.tile_for(shape)
        return tile, min(overlap, min(tile) - 1)

    def predict(self, image: np.ndarray, overlap: int, batch: int = DEFAULT_BATCH,
                progress: Progress | None = None) -> np.ndarray:
        """Background probability (H, W) float32 of a model-ready image (float32 in [0, 1], boundary 0)."""
        tile, overlap = self._tiling(image.shape, overlap)
        return predict_tiled(image, self.predict_batch, tile, overlap, batch=batch, progress=progress)

    def count_tiles(self, shape: tuple[int, int], overlap: int) -> int:
        """How many tiles `predict` runs for an image of `shape` (H, W)."""
        return count_tiles(shape, *self._tiling(shape, overlap))


def load_model(path: str | os.PathLike[str]) -> Any:
    """keras.models.load_model(path, compile=False) in safe mode; PredictError for a missing or unloadable
    file, or a model whose weights hold NaN or infinite values.

    compile=False: inference needs no optimizer, loss or metrics, so a model trained with any
    loss loads without custom objects.
    """
    path = Path(path)
    if not path.exists():
        raise PredictError(f"model file not found: {path}")
    if not path.is_file():
        raise PredictError(f"model path is not a file: {path}")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise PredictError(f"cannot load a Keras model from {path}: not a .keras file (not a zip archive)")
    quiet_tensorflow()
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise PredictError(f"cannot load a Keras model from {path}: {_one_line(exc)}") from None
    check_finite_weights(model, path)
    return model


def load_predictor(path: str | os.PathLike[str], tile: int | None = None, tta: bool = False) -> Predictor:
    """Load a saved model and settle its tile size (see Predictor); PredictError if unusable."""
    return Predictor(load_model(path), tile, tta)
