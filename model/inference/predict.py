"""`predict`: restore the boundaries of users' own micrographs (model, `bridge` or both), any image size.

`predict_files` is what the CLI calls: it checks everything (options, inputs, output names, the
model and its tile size) before touching the output directory, raising PredictError with a
one-line message; then it says (through `echo`, before any progress bar) the settings used and
the kind of every input (binary boundary map, or gray / 16-bit / colour micrograph, which is
denoised and binarised first by default), restores each image (model/inference/restore.py:
preparation, tiled prediction, bridge, speck filter), writes DIR/<name>.png (always PNG, 8-bit,
0 boundary, 255 background, whatever the input's format) and, if asked,
DIR/<name>_probability.tif (float32 background probability), and returns a PredictReport. An
image that cannot be read or restored is recorded in the report and the others go on.
TensorFlow is imported only when a model is loaded (`--method model` or `model+bridge`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from pipeline.store import atomic_write, is_no_space, no_space_line

from .images import ImageError, InputError, collect_inputs, max_pixels, read_kind
from .predictor import DEFAULT_BATCH, DEFAULT_TILE, PredictError, Predictor, _one_line, default_overlap, load_model, \
    load_predictor
from .restore import RestoreOptions, Restorer, check_options, model_path_of, scaled_input_problem, survey

__all__ = ["DEFAULT_BATCH", "DEFAULT_TILE", "PROBABILITY_SUFFIX", "PredictError", "PredictReport", "Predictor",
           "default_overlap", "load_model", "load_predictor", "output_names", "predict_files"]

PROBABILITY_SUFFIX = "_probability.tif"


@dataclass(frozen=True)
class PredictReport:
    """What one `predict_files` call did."""

    out_dir: Path
    inputs: int  # images attempted
    outputs: tuple[tuple[Path, Path], ...]  # (input, its PNG), for every image predicted
    written: tuple[Path, ...]  # every file written: PNGs and probability TIFFs
    renamed: tuple[tuple[Path, Path], ...]  # (input, its PNG) where the name got a _2, _3, ... suffix
    failures: tuple[tuple[Path, str], ...]  # (input, reason), for every image not predicted
    tile: tuple[int, int] | None  # None: no model (bridge)
    overlap: int
    tiles: int  # tiles predicted, all images together
    seconds: float
    used: str = ""  # the method and the settings used (Restorer.describe)
    inputs_line: str = ""  # the kind of each input and its preparation (Restorer.inputs_line)

    @property
    def ok(self) -> bool:
        """True when every input was predicted (the CLI exits 1 otherwise)."""
        return not self.failures

    def messages(self) -> list[str]:
        """Lines to print before the summary: renamed outputs, then every failed input by name."""
        lines = [f"note: {source} -> {png.name} (another input has the same name)" for source, png in self.renamed]
        converted = [(source, png) for source, png in self.outputs if source.suffix.lower() != ".png"]
        if converted:
            source, png = converted[0]
            more = f" and {len(converted) - 1} more" if len(converted) > 1 else ""
            lines.append(f"note: outputs are PNG whatever the input's format: {source.name} -> {png.name}{more}")
        lines += [f"failed: {source}: {reason}" for source, reason in self.failures]
        return lines

    def summary(self) -> str:
        """The one-line summary the CLI prints last."""
        how = (f"{self.tiles} tiles of up to {self.tile[0]}x{self.tile[1]}, overlap {self.overlap}" if self.tile
               else "no model")
        text = (f"predicted {len(self.outputs)} of {self.inputs} images ({how}) in {self.seconds:.1f} s "
                f"-> {self.out_dir} (PNG: 0 boundary, 255 background)")
        if self.failures:
            text += f"; {len(self.failures)} failed"
        return text



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


def raise_if_stopped(exc: BaseException) -> None:
    """Raise the Ctrl-C (or SIGTERM) behind `exc`, if any: a signal that lands while a module initialises
    comes back as an ImportError ("initialization failed") caused by it, which is no bad image."""
    seen = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            raise seen
        seen = seen.__cause__ or seen.__context__


def failure_reason(exc: BaseException) -> str:
    """One line for an image that failed: an ImageError's own message, else the exception's type and first line."""
    return str(exc) if isinstance(exc, ImageError) else f"{type(exc).__name__}: {_one_line(exc)}"


def check_out_dir(out_dir: Path, sources: Sequence[Path], outputs: Sequence[Sequence[str]]) -> None:
    """PredictError if --out is a file or an output name (per source) would overwrite an input."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PredictError(f"--out {out_dir} exists and is not a directory")
    resolved_inputs = {path.resolve(): path for path in sources}
    for names in outputs:
        for target in (out_dir / name for name in names):
            if target.resolve() in resolved_inputs:
                raise PredictError(f"output {target} would overwrite the input {resolved_inputs[target.resolve()]}; "
                                   "choose another --out")


def make_out_dir(out_dir: Path) -> None:
    """Create --out (and its parents); PredictError if that fails or it is not writable."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PredictError(f"cannot create --out {out_dir}: {_one_line(exc)}") from None
    if not os.access(out_dir, os.W_OK):
        raise PredictError(f"--out {out_dir} is not writable")


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode in memory, then write through a temporary file and a rename: no half-written output under
    the real name. (cv2.imwrite reports success on a full disk and leaves a 0-byte file.)"""
    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name}")
    atomic_write(path, data.tobytes())


def _remove_empty(folder: Path) -> None:
    """Remove `folder` (made by this run) if nothing is in it."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _progress_bar(enabled: bool, images: int) -> Any:
    """A tqdm bar over images on stderr; the current image's tiles show as its postfix."""
    from tqdm import tqdm

    return tqdm(total=images, unit="image", dynamic_ncols=True, file=sys.stderr, disable=not enabled)


class _TileCounter:
    """Shows `done/total tiles` of the current image on the bar (a big image takes minutes)."""

    def __init__(self, bar: Any, total: int):
        self.bar, self.total, self.done = bar, total, 0

    def __call__(self, tiles: int) -> None:
        self.done += tiles
        self.bar.set_postfix_str(f"{self.done}/{self.total} tiles")


def predict_files(model_path: str | os.PathLike[str] | None, inputs: Sequence[str | os.PathLike[str]],
                  out_dir: str | os.PathLike[str], *, save_probability: bool = False, progress: bool = True,
                  echo: Callable[[str], Any] | None = None, **options: Any) -> PredictReport:
    """Restore every image of `inputs` (files and directories) into out_dir; see docs/predict.md.

    `options` are the fields of RestoreOptions (method, threshold, min_speck, tta, binarize,
    denoise, invert, scale, tile, overlap, batch); `model_path` None means the bundled model.
    Raises PredictError before anything is written (out_dir is not even created) for bad
    options, a missing/unloadable model, a tile the model does not accept, missing inputs, an
    image-less directory, or an output that would overwrite an input. Images that fail later
    are listed in the report's `failures`; the others are written regardless. `echo` gets the
    settings line and the inputs line (`PredictReport.used`, `.inputs_line`) before the first image.
    """
    try:
        settings = RestoreOptions(model=model_path, **options)
    except TypeError as exc:
        raise PredictError(_one_line(exc)) from None
    check_options(settings)
    try:
        limit = max_pixels()
    except InputError as exc:
        raise PredictError(str(exc)) from None
    model_path_of(settings)  # a missing model is reported before the inputs are looked at
    try:
        sources = collect_inputs(inputs)
    except InputError as exc:
        raise PredictError(str(exc)) from None
    problem = scaled_input_problem(sources, settings.scale, limit)
    if problem:
        raise PredictError(f"{problem}; nothing was written")
    out_dir = Path(out_dir)
    names = output_names(sources)
    check_out_dir(out_dir, sources, [[f"{name}.png", f"{name}{PROBABILITY_SUFFIX}"] for name in names])
    restorer = Restorer(settings)
    created = not out_dir.exists()
    make_out_dir(out_dir)

    start = time.perf_counter()
    used = restorer.describe()
    if echo is not None:
        echo(used)
    inputs_line = restorer.inputs_line(survey(sources, limit).values())
    if echo is not None:
        echo(inputs_line)
    outputs: list[tuple[Path, Path]] = []
    written: list[Path] = []
    failures: list[tuple[Path, str]] = []
    total_tiles = 0
    bar = _progress_bar(progress, len(sources))
    try:
        for source, name in zip(sources, names):
            png = out_dir / f"{name}.png"
            try:
                bar.set_description(source.name, refresh=False)
                image, kind = read_kind(source, limit)
                count = restorer.tiles(image.shape)
                bar.set_postfix_str(f"0/{count} tiles" if count else "", refresh=True)
                background, probability = restorer.restore(image, progress=_TileCounter(bar, count),
                                                           binary=kind == "binary")
                del image
                write_image(png, background)
                written.append(png)
                if save_probability and probability is not None:
                    tif = out_dir / f"{name}{PROBABILITY_SUFFIX}"
                    write_image(tif, probability)
                    written.append(tif)
                outputs.append((source, png))
                total_tiles += count
            except Exception as exc:  # one bad image (corrupt, memory, model) must not stop the rest
                raise_if_stopped(exc)
                if is_no_space(exc):  # a full disk stops them all: one line, what was written is whole
                    raise PredictError(no_space_line(exc, png, f"{len(outputs)} of {len(sources)} images were "
                                                               f"written to {out_dir}")) from None
                failures.append((source, failure_reason(exc)))
            bar.update(1)
    finally:
        bar.close()
        if created and not outputs:  # every input failed: leave no empty --out behind
            _remove_empty(out_dir)
    renamed = tuple((source, out_dir / f"{name}.png") for source, name in zip(sources, names) if name != source.stem)
    tile = restorer.predictor.tile if restorer.predictor is not None else None
    return PredictReport(out_dir=out_dir, inputs=len(sources), outputs=tuple(outputs), written=tuple(written),
                         renamed=renamed, failures=tuple(failures), tile=tile, overlap=restorer.overlap,
                         tiles=total_tiles, seconds=time.perf_counter() - start, used=used,
                         inputs_line=inputs_line)
