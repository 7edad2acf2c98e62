"""One restoration recipe for `predict` and `measure --restore`: prepare, restore (model, bridge or both), clean.

`RestoreOptions` is what the user chose (None = "from the model's settings"); `Restorer` settles
the values actually used (printed by the CLI), loads the model once and restores one gray image
at a time. Order per image: read -> invert -> denoise -> resample by `scale` -> binarize ->
model (tiled, optional TTA) and/or `bridge` -> back to the input's size -> speck filter.
With --denoise/--binarize `auto` (the default) the preparation follows the image's kind
(model/inference/images.py `input_kind`): a binary boundary map goes on as it is, a gray, 16-bit
or colour micrograph is denoised and binarised first (prepare.py `settle`); `inputs_line` says
what happened to which images, `survey` finds the kinds before any image is restored.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from model.methods import PREDICT_METHODS, bridged, remove_specks, to_mask, uses_model
from model.pretrained import MICROGRAPH_MODEL, NoModelError, resolve_model
from pipeline.pixels import RAISE_LIMIT, above_limit

from .images import ImageError, decode, header_size, input_kind, is_binary, max_pixels
from .postprocess import probability_to_mask
from .predictor import PredictError, default_overlap, load_predictor
from .prepare import AUTO, PrepareError, Strength, check_prepare, prepare, restore_size, settle, strength_for
from .settings import SettingsError, load_settings, settings_path
from .tiling import Progress, TilingError, check_tiling

METHODS = PREDICT_METHODS  # none: preparation and speck filter only (identity)
# Speck filter used when neither --min-speck nor the model's settings file gives one: chosen on
# the validation split of a rendered gray library (benchmarks/measure.py --sweep-min-speck,
# docs/measure.md), bridge after Otsu, the value with the lowest grain-count error.
DEFAULT_MIN_SPECK = 30
# Smallest side --scale may shrink an image to: a smaller working image holds no grain to restore
# (the bundled model was trained on 64 px crops and larger).
MIN_WORKING_SIDE = 16


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore: the method, the model and the preparation of gray micrographs."""

    method: str | None = None  # None: the model's own choice (its settings' `bridge`: model+bridge, else model)
    model: str | os.PathLike[str] | None = None  # None: the bundled model (model methods only)
    threshold: float | None = None  # None: the model's settings
    link_threshold: float | None = None  # None: the model's settings (off without them)
    min_speck: int | None = None  # None: the model's settings, else DEFAULT_MIN_SPECK
    tta: bool | None = None  # None: the model's settings
    binarize: str = AUTO  # auto: per image, by its kind (prepare.settle)
    denoise: str = AUTO
    invert: bool = False
    strength: Strength | None = None  # None: the method's (prepare.strength_for)
    scale: float = 1.0
    tile: int | None = None
    overlap: int | None = None
    batch: int = 4

    @property
    def uses_model(self) -> bool:
        """Whether the method runs the network."""
        return uses_model(self.method)


def check_options(options: RestoreOptions) -> None:
    """PredictError for any option value that cannot be used (before a model is loaded)."""
    if options.method is not None and options.method not in METHODS:
        raise PredictError(f"--method must be one of {', '.join(METHODS)}, got {options.method!r}")
    try:
        check_prepare(options.binarize, options.denoise, options.scale)
    except PrepareError as exc:
        raise PredictError(str(exc)) from None
    if options.tile is not None and options.tile <= 0:
        raise PredictError(f"--tile must be > 0, got {options.tile}")
    if options.overlap is not None and options.overlap < 0:
        raise PredictError(f"--overlap must be >= 0, got {options.overlap}")
    if options.tile is not None and options.overlap is not None and options.tile <= options.overlap:
        raise PredictError(f"--tile ({options.tile}) must be larger than --overlap ({options.overlap})")
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise PredictError(f"--threshold must be in [0, 1], got {options.threshold}")
    if options.link_threshold is not None and not 0.0 <= options.link_threshold <= 1.0:
        raise PredictError(f"--link-threshold must be in [0, 1], got {options.link_threshold}")
    if options.min_speck is not None and options.min_speck < 0:
        raise PredictError(f"--min-speck must be >= 0, got {options.min_speck}")
    if options.batch <= 0:
        raise PredictError(f"--batch must be > 0, got {options.batch}")


def scaled_problem(shape: tuple[int, int], scale: float, limit: int) -> str | None:
    """Why an image of `shape` (height, width) cannot be restored at `scale` (the working image
    above `limit` pixels, or shrunk below MIN_WORKING_SIDE), or None if it can. Its own size is
    checked where it is decoded (images.check_pixels)."""
    if scale == 1:
        return None
    height, width = (float(side) * scale for side in shape)  # floats: --scale 1e300 must not overflow
    image = f"at --scale {scale:g} the {shape[1]} x {shape[0]} px image becomes"
    refused = above_limit(width, height, limit)
    if refused:
        return f"{image} {refused}: choose a smaller --scale (or {RAISE_LIMIT})"
    rows, cols = max(1, round(height)), max(1, round(width))
    if scale < 1 and min(rows, cols) < min(MIN_WORKING_SIDE, *shape):
        return (f"{image} {cols} x {rows} px: shrunk below {MIN_WORKING_SIDE} px a side, it holds no grain to "
                "restore; choose a larger --scale")
    return None


def scaled_input_problem(sources: Sequence[Path], scale: float, limit: int) -> str | None:
    """The first input (by its header's size, nothing decoded) that `scale` makes too large or too
    small, as `path: why`; None if there is none. An input that is itself above the limit is left
    to fail on its own when it is read."""
    if scale == 1:
        return None
    for source in sources:
        size = header_size(source)
        if size is None or above_limit(*size, limit):
            continue
        problem = scaled_problem((size[1], size[0]), scale, limit)
        if problem:
            return f"{source}: {problem}"
    return None


def routes_micrographs(options: RestoreOptions) -> bool:
    """Whether gray, 16-bit and colour inputs go as they are to the bundled micrograph model: with
    no --model, a method that runs a model (or the default), automatic preparation, and that model
    installed. Binary boundary maps always go to the boundary-map model."""
    return (options.model is None and (options.method is None or uses_model(options.method))
            and options.denoise == AUTO and options.binarize == AUTO and MICROGRAPH_MODEL.is_file())


def model_path_of(options: RestoreOptions) -> Path | None:
    """The model file a model method will load (the bundled one without --model); None for bridge."""
    if not options.uses_model:
        return None
    try:
        path = resolve_model(options.model)
    except NoModelError as exc:
        raise PredictError(str(exc)) from None
    if not path.exists():
        raise PredictError(f"model file not found: {path}")
    return path


class Restorer:
    """Restores gray images with settled options; `used` says which values and where they came from."""

    def __init__(self, options: RestoreOptions):
        """Check the options, read the model's settings and load the model; PredictError if unusable."""
        check_options(options)
        self.options = options
        self.model_path = model_path_of(options)
        try:
            stored = load_settings(self.model_path) if self.model_path else None
        except SettingsError as exc:
            raise PredictError(str(exc)) from None
        has_file = self.model_path is not None and settings_path(self.model_path).is_file()
        origin = f"from {settings_path(self.model_path).name}" if has_file else "default"
        self.used: dict[str, tuple[object, str]] = {}
        self.threshold = self._settle("threshold", options.threshold, stored.threshold if stored else 0.5, origin)
        self.link_threshold = self._settle("link_threshold", options.link_threshold,
                                           stored.link_threshold if stored else None, origin)
        fallback = stored.min_speck if has_file and stored else DEFAULT_MIN_SPECK
        self.min_speck = int(self._settle("min_speck", options.min_speck, fallback, origin))
        self.tta = bool(self._settle("tta", options.tta, stored.tta if stored else False, origin))
        self.method, self.method_origin = options.method, "option"
        if self.method is None:
            self.method = "model+bridge" if stored is not None and stored.bridge else "model"
            self.method_origin = origin
        self.strength = options.strength or strength_for(self.method)
        self.predictor = None
        self.overlap = 0
        if self.model_path is not None:
            self.predictor = load_predictor(self.model_path, options.tile, self.tta)
            tile = self.predictor.tile
            self.overlap = default_overlap(min(tile)) if options.overlap is None else options.overlap
            try:
                check_tiling(tile, self.overlap, options.batch)
            except TilingError as exc:
                origin = ("the model's input size" if self.predictor.fixed
                          else "--tile" if options.tile is not None else "the default")
                raise PredictError(f"the tile ({min(tile)}, {origin}) must be larger than --overlap ({self.overlap})"
                                   if self.overlap >= min(tile) else str(exc)) from None
        # Gray, 16-bit and colour inputs: the micrograph model reads them as they are, under its own settings.
        self.micrograph = (Restorer(replace(options, model=MICROGRAPH_MODEL, denoise="none", binarize="none"))
                           if routes_micrographs(options) else None)

    def _check_scale(self, shape: tuple[int, int]) -> None:
        """ImageError if --scale makes an image of `shape` too large or too small to restore."""
        problem = scaled_problem(shape, self.options.scale, max_pixels())
        if problem:
            raise ImageError(problem)

    def _settle(self, name: str, given: object, fallback: object, origin: str) -> object:
        if name != "min_speck" and not self.options.uses_model:
            return fallback
        value, source = (given, "option") if given is not None else (fallback, origin)
        self.used[name] = (value, source)
        return value

    def describe(self) -> str:
        """One line: the method and the values used, e.g. `method model: threshold 0.6 (from M.settings.json), ...`."""
        parts = [f"{name.replace('_', '-')} {'off' if value is None else value} ({source})"
                 for name, (value, source) in self.used.items()]
        notes = ([self.method_origin] if self.options.method is None else []) + (
            [str(self.model_path)] if self.model_path else [])
        where = f" ({', '.join(notes)})" if notes else ""
        line = f"method {self.method}{where}: " + ", ".join(parts)
        if self.micrograph is not None:
            return f"binary maps: {line}; micrographs: {self.micrograph.describe()}"
        return line

    def preparation(self, binary: bool) -> tuple[str, str]:
        """(denoise, binarize) used on an image that is (or is not) a binary boundary map."""
        return settle(binary, self.options.denoise, self.options.binarize)

    def inputs_line(self, kinds: Iterable[str]) -> str:
        """One line: how many inputs of each kind (images.KINDS) and the preparation each kind gets."""
        counts = Counter(kinds)
        parts = []
        for kind in ("binary", "gray", "16-bit", "colour"):
            if not counts[kind]:
                continue
            noun = "binary boundary map" if kind == "binary" else f"{kind} micrograph"
            if kind != "binary" and self.micrograph is not None:
                parts.append(f"{counts[kind]} {noun}{'s' * (counts[kind] > 1)} -> the micrograph model, as it is")
                continue
            denoise, binarize = self.preparation(kind == "binary")
            strength = self.strength
            detail = {"nlmeans": f" (h {strength.nlmeans_h:g})", "adaptive": f" (offset {strength.adaptive_offset:g})"}
            how = ", ".join(f"{step} {value}{detail.get(value, '')}"
                            for step, value in (("denoise", denoise), ("binarize", binarize)) if value != "none") \
                or "as it is"
            parts.append(f"{counts[kind]} {noun}{'s' * (counts[kind] > 1)} -> {how}")
        if not parts:
            return "inputs: none readable"
        auto = AUTO in (self.options.denoise, self.options.binarize) and self.micrograph is None
        hint = (" (--denoise/--binarize override; the model expects a binary map: dark boundary on a bright "
                "background)") if auto else ""
        return "inputs: " + "; ".join(parts) + hint

    def tiles(self, shape: tuple[int, int]) -> int:
        """Model tiles an image of `shape` costs (0 for bridge)."""
        if self.predictor is None:
            return 0
        self._check_scale(shape)
        height, width = (max(1, round(side * self.options.scale)) for side in shape)
        return self.predictor.count_tiles((height, width), self.overlap)

    def restore(self, image: np.ndarray, progress: Progress | None = None,
                binary: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(uint8 mask, 0 boundary / 255 background, at the input's size; background probability or None).

        `binary`: whether `image` is a binary boundary map (found with images.is_binary when None);
        it decides what `auto` preparation does.
        """
        options = self.options
        shape = image.shape
        self._check_scale(shape)
        binary = is_binary(image) if binary is None else binary
        if not binary and self.micrograph is not None:
            return self.micrograph.restore(image, progress, binary=False)
        denoise, binarize = self.preparation(binary)
        ready = prepare(image, invert=options.invert, denoise=denoise, binarize=binarize, scale=options.scale,
                        strength=self.strength)
        # The same area at the working scale; past the image's area it removes every speck all the same
        # (and a 400-digit --min-speck is no float).
        speck_here = round(min(self.min_speck, image.size + 1) * options.scale**2)
        working = None
        if self.predictor is not None:
            working = self.predictor.predict(ready, self.overlap, options.batch, progress=progress)
        probability = None if working is None else restore_size(working, shape)
        if self.method == "model":
            mask = probability_to_mask(probability, self.threshold, 0, self.link_threshold)
        elif self.method == "none":
            mask = to_mask(restore_size(ready, shape), 0.5)
        else:
            start = (to_mask(ready, 0.5) if working is None
                     else probability_to_mask(working, self.threshold, 0, self.link_threshold))
            linked = bridged(start, speck_here)
            mask = linked if linked.shape == shape else to_mask(restore_size(linked, shape) / np.float32(255), 0.5)
        return remove_specks(mask, self.min_speck), probability


def survey(paths: Sequence[Path], limit: int | None = None) -> dict[Path, str]:
    """The kind (images.KINDS) of every readable image of `paths`, decoded one at a time; unreadable
    ones are left out (restoring them reports why)."""
    kinds = {}
    for path in paths:
        try:
            kinds[path] = input_kind(decode(path, limit))
        except (ImageError, MemoryError):
            continue
    return kinds


def restorer_or_error(options: RestoreOptions, on_error: Callable[[str], Exception]) -> Restorer:
    """A Restorer, or `on_error(message)` raised for unusable options (for callers with their own error type)."""
    try:
        return Restorer(options)
    except PredictError as exc:
        raise on_error(str(exc)) from None
