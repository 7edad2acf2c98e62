"""`predict`: restore the boundaries of users' own micrographs with a trained model, any image size.

`predict_files` is what the CLI calls: it checks everything (settings, inputs, output names, the
model and its tile size) before touching the output directory, raising PredictError with a
one-line message; then it predicts each image by overlapping tiles (model/inference/tiling.py), writes
DIR/<name>.png (0 boundary, 255 background) and, if asked, DIR/<name>_probability.tif (float32
background probability), and returns a PredictReport. An image that cannot be read or predicted
is recorded in the report and the others go on. TensorFlow is imported only when a model is loaded.
"""

from __future__ import annotations

import os
import re
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model import quiet_tensorflow
from .images import ImageError, InputError, collect_inputs, otsu_binarize, read_image
from model.scoring.predictions import to_mask
from .tiling import Progress, TilingError, check_tiling, count_tiles, predict_tiled

DEFAULT_TILE = 256  # tile side for models that accept any input size (fixed-size models use their own)
DEFAULT_BATCH = 4
DEFAULT_THRESHOLD = 0.5
BINARIZE = ("none", "otsu")
PROBABILITY_SUFFIX = "_probability.tif"


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


@dataclass(frozen=True)
class PredictReport:
    """What one `predict_files` call did."""

    out_dir: Path
    inputs: int  # images attempted
    outputs: tuple[tuple[Path, Path], ...]  # (input, its PNG), for every image predicted
    written: tuple[Path, ...]  # every file written: PNGs and probability TIFFs
    renamed: tuple[tuple[Path, Path], ...]  # (input, its PNG) where the name got a _2, _3, ... suffix
    failures: tuple[tuple[Path, str], ...]  # (input, reason), for every image not predicted
    tile: tuple[int, int]
    overlap: int
    tiles: int  # tiles predicted, all images together
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every input was predicted (the CLI exits 1 otherwise)."""
        return not self.failures

    def messages(self) -> list[str]:
        """Lines to print before the summary: renamed outputs, then every failed input by name."""
        lines = [f"note: {source} -> {png.name} (another input has the same name)" for source, png in self.renamed]
        lines += [f"failed: {source}: {reason}" for source, reason in self.failures]
        return lines

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        text = (f"predicted {len(self.outputs)} of {self.inputs} images ({self.tiles} tiles of "
                f"{self.tile[0]}x{self.tile[1]}, overlap {self.overlap}) in {self.seconds:.1f} s -> {self.out_dir}")
        if self.failures:
            text += f"; {len(self.failures)} failed"
        return text


class Predictor:
    """A loaded Keras model and the tile size it is run on."""

    def __init__(self, model: Any, tile: int | None = None):
        """Check the model's input/output signature and settle the tile size; PredictError if unusable.

        A model with a fixed input size (H, W) is run on H x W tiles, and `tile` may only repeat it.
        A model accepting any size runs on `tile` x `tile` (default DEFAULT_TILE); one forward pass
        on a zero tile checks that the model accepts that size (a U-Net needs multiples of 2^depth).
        """
        self.model = model
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
        rows, cols = shape[1:3]
        if tile is not None and tile <= 0:
            raise PredictError(f"--tile must be > 0, got {tile}")
        self.fixed = rows is not None and cols is not None  # the model's input size is fixed
        if self.fixed and tile is not None and (tile, tile) != (rows, cols):
            need = f"must be {rows} (or left out)" if rows == cols else "cannot be used"
            raise PredictError(f"the model takes {rows}x{cols} inputs only: --tile {need}, got {tile}")
        side = DEFAULT_TILE if tile is None else tile
        self.tile: tuple[int, int] = (rows or side, cols or side)
        self._forward = self._compile()
        self._probe()

    def _compile(self) -> Any:
        """The model's forward pass as one graph for every batch size (no retracing per batch size)."""
        import keras

        if keras.backend.backend() != "tensorflow":
            return self.model.predict_on_batch
        import tensorflow as tf

        rows, cols = self.tile
        model = self.model
        graph = tf.function(lambda x: model(x, training=False),
                            input_signature=[tf.TensorSpec((None, rows, cols, 1), tf.float32)])
        return lambda tiles: graph(tf.convert_to_tensor(tiles, dtype=tf.float32)).numpy()

    def _probe(self) -> None:
        """One forward pass on a zero tile: the model accepts the tile and answers (1, H, W, 1)."""
        rows, cols = self.tile
        try:
            answer = self.predict_batch(np.zeros((1, rows, cols, 1), dtype=np.float32))
        except Exception as exc:
            pools = sum(type(layer).__name__ in ("MaxPooling2D", "AveragePooling2D") for layer in self.model.layers)
            why = (f"it has {pools} 2x poolings: the tile must be a multiple of {2**pools}" if pools
                   else _one_line(exc))
            raise PredictError(f"the model does not accept {rows}x{cols} tiles ({why})") from None
        if answer.shape not in ((1, rows, cols, 1), (1, rows, cols)):
            raise PredictError(f"the model answers {rows}x{cols} tiles with shape {answer.shape}, "
                               f"expected {(1, rows, cols, 1)}")

    def predict_batch(self, tiles: np.ndarray) -> np.ndarray:
        """(n, H, W, 1) float32 tiles in [0, 1] -> (n, H, W, 1) background probabilities."""
        return np.asarray(self._forward(tiles), dtype=np.float32)

    def predict(self, image: np.ndarray, overlap: int, batch: int = DEFAULT_BATCH,
                progress: Progress | None = None) -> np.ndarray:
        """Background probability (H, W) float32 of a model-ready image (float32 in [0, 1], boundary 0)."""
        return predict_tiled(image, self.predict_batch, self.tile, overlap, batch=batch, progress=progress)


def load_model(path: str | os.PathLike[str]) -> Any:
    """keras.models.load_model(path, compile=False) in safe mode; PredictError for a missing or unloadable file.

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
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise PredictError(f"cannot load a Keras model from {path}: {_one_line(exc)}") from None


def load_predictor(path: str | os.PathLike[str], tile: int | None = None) -> Predictor:
    """Load a saved model and settle its tile size (see Predictor); PredictError if unusable."""
    return Predictor(load_model(path), tile)


def output_names(inputs: Sequence[Path]) -> list[str]:
    """Output stem per input: its own stem, or stem_2, stem_3, ... when an earlier input took it.

    Names are compared case-insensitively (two outputs may not differ by case only, for macOS
    and Windows file systems), and a suffixed name never takes another input's own stem.
    """
    own = {path.stem.casefold() for path in inputs}
    used: set[str] = set()
    names = []
    for path in inputs:
        name = path.stem
        if name.casefold() in used:
            k = 2
            while f"{path.stem}_{k}".casefold() in used or f"{path.stem}_{k}".casefold() in own:
                k += 1
            name = f"{path.stem}_{k}"
        used.add(name.casefold())
        names.append(name)
    return names


def _write(path: Path, image: np.ndarray) -> None:
    """Write through a hidden temporary file and rename it: no half-written output under the real name."""
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        if not cv2.imwrite(str(temporary), image):
            raise OSError(f"OpenCV could not write {path}")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _progress_bar(enabled: bool) -> Any:
    """A tqdm bar over tiles on stderr (its total grows as each image is read)."""
    from tqdm import tqdm

    # delay: nothing is drawn until the first image's tiles are counted (no empty `0tile` bar first).
    return tqdm(total=0, unit="tile", dynamic_ncols=True, file=sys.stderr, disable=not enabled, delay=1e-9)


def _check_settings(tile: int | None, overlap: int | None, threshold: float, binarize: str, batch: int) -> None:
    if tile is not None and tile <= 0:
        raise PredictError(f"--tile must be > 0, got {tile}")
    if overlap is not None and overlap < 0:
        raise PredictError(f"--overlap must be >= 0, got {overlap}")
    if tile is not None and overlap is not None and tile <= overlap:
        raise PredictError(f"--tile ({tile}) must be larger than --overlap ({overlap})")
    if not 0.0 <= threshold <= 1.0:
        raise PredictError(f"--threshold must be in [0, 1], got {threshold}")
    if binarize not in BINARIZE:
        raise PredictError(f"--binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    if batch <= 0:
        raise PredictError(f"--batch must be > 0, got {batch}")


def predict_files(model_path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
                  out_dir: str | os.PathLike[str], *, tile: int | None = None, overlap: int | None = None,
                  threshold: float = DEFAULT_THRESHOLD, binarize: str = "none", invert: bool = False,
                  save_probability: bool = False, batch: int = DEFAULT_BATCH, progress: bool = True) -> PredictReport:
    """Predict every image of `inputs` (files and directories) into out_dir; see docs/predict.md.

    Each image: read as gray in [0, 1] (8-bit / 255, 16-bit / 65535) -> 1 - x if `invert`
    -> Otsu binarization if binarize == "otsu" -> tiled prediction -> out_dir/<name>.png
    (255 where probability >= threshold, else 0) and, with save_probability,
    out_dir/<name>_probability.tif (float32). overlap defaults to tile // 4.
    Raises PredictError before anything is written (out_dir is not even created) for bad
    settings, a missing/unloadable model, a tile the model does not accept, missing inputs, an
    image-less directory, or an output that would overwrite an input. Images that fail later
    are listed in the report's `failures`; the others are written regardless.
    """
    _check_settings(tile, overlap, threshold, binarize, batch)
    model_path = Path(model_path)
    if not model_path.exists():
        raise PredictError(f"model file not found: {model_path}")
    try:
        sources = collect_inputs(inputs)
    except InputError as exc:
        raise PredictError(str(exc)) from None
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PredictError(f"--out {out_dir} exists and is not a directory")
    names = output_names(sources)
    resolved_inputs = {path.resolve(): path for path in sources}
    for name in names:
        for target in (out_dir / f"{name}.png", out_dir / f"{name}{PROBABILITY_SUFFIX}"):
            if target.resolve() in resolved_inputs:
                raise PredictError(f"output {target} would overwrite the input {resolved_inputs[target.resolve()]}; "
                                   "choose another --out")
    predictor = load_predictor(model_path, tile)
    overlap = default_overlap(min(predictor.tile)) if overlap is None else overlap
    try:
        check_tiling(predictor.tile, overlap, batch)
    except TilingError as exc:
        origin = "the model's input size" if predictor.fixed else "--tile" if tile is not None else "the default"
        raise PredictError(f"the tile ({min(predictor.tile)}, {origin}) must be larger than --overlap ({overlap})"
                           if overlap >= min(predictor.tile) else str(exc)) from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PredictError(f"cannot create --out {out_dir}: {_one_line(exc)}") from None
    if not os.access(out_dir, os.W_OK):
        raise PredictError(f"--out {out_dir} is not writable")

    start = time.perf_counter()
    outputs: list[tuple[Path, Path]] = []
    written: list[Path] = []
    failures: list[tuple[Path, str]] = []
    total_tiles = 0
    bar = _progress_bar(progress)
    try:
        for number, (source, name) in enumerate(zip(sources, names), start=1):
            png = out_dir / f"{name}.png"
            try:
                image = read_image(source)
                if invert:
                    np.subtract(np.float32(1.0), image, out=image)
                if binarize == "otsu":
                    image = otsu_binarize(image)
                count = count_tiles(image.shape, predictor.tile, overlap)
                bar.total += count
                bar.set_description(f"{number}/{len(sources)} {source.name}", refresh=False)
                bar.refresh()
                probability = predictor.predict(image, overlap, batch, progress=bar.update)
                del image
                background = to_mask(probability, threshold)
                _write(png, background)
                written.append(png)
                del background
                if save_probability:
                    tif = out_dir / f"{name}{PROBABILITY_SUFFIX}"
                    _write(tif, probability)
                    written.append(tif)
                outputs.append((source, png))
                total_tiles += count
            except Exception as exc:  # one bad image (corrupt, memory, model, disk) must not stop the rest
                reason = str(exc) if isinstance(exc, ImageError) else f"{type(exc).__name__}: {_one_line(exc)}"
                failures.append((source, reason))
                bar.total = bar.n  # drop the tiles this image will never do
                bar.refresh()
    finally:
        bar.close()
    renamed = tuple((source, out_dir / f"{name}.png") for source, name in zip(sources, names) if name != source.stem)
    return PredictReport(out_dir=out_dir, inputs=len(sources), outputs=tuple(outputs), written=tuple(written),
                         renamed=renamed, failures=tuple(failures), tile=predictor.tile, overlap=overlap,
                         tiles=total_tiles, seconds=time.perf_counter() - start)
