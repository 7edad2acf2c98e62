"""Score a restoration method on one split of a library: a model, a folder of predictions, a baseline.

The split is streamed one sample at a time (one batch for a model): memory does not grow with it.
The report's first row, the headline, is the method as a user runs it by default: for a model,
what `predict` runs without `--method` (`model+bridge` when its settings say bridge, with the
network alone beside it as `model`). Beside it, the same samples are scored for the `identity`
and `bridge` baselines, so that every report shows what doing nothing and a classical gap closer
reach on the same images. On a store of gray micrographs (the micrograph preset) the baselines are
the classical route a user gets without a model instead: `prep+bridge` (`predict --method bridge`:
automatic preparation, then the bridge) and `prep` (`--method none`: the preparation alone); no
pixel of a gray input counts as erased, so gap recall is n/a there, and without `--model` the
headline is what `predict` with no option does to a gray micrograph (`default_route`). Outputs in OUT: metrics.json (the headline's figures at its top level,
every row under `rows`), report.md, evaluation.png (the headline's outputs). TensorFlow is
imported only for a model.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import secrets
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from pipeline.store import StoreError, atomic_write, check_writable_folder, write_error_line

from model import figures
from model.inference.postprocess import ModelOutputError
from model.methods import BASELINES, bridged
from model.data import SPLITS, DataError, LibraryReader
from model.scoring.metrics import ImageStatistics, MetricAccumulator, image_statistics

SPLIT_CHOICES = (*[s for s in SPLITS if s != "train"], "all")
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
FIGURE_FILE = "evaluation.png"
FIGURE_SAMPLES = 4
# Worker processes for scoring: one per core (at most 4), and one per 50 samples at least, so
# that small evaluations do not pay for starting processes.
SCORING_PROCESSES = min(4, os.cpu_count() or 1)
SAMPLES_PER_PROCESS = 50
PARENT_CHECK_SECONDS = 1.0  # how often a scoring process looks whether its parent is still there
# Rows and columns of the report: (key in the metric dict, column title, format).
COLUMNS = (("miou", "mIoU", ".4f"), ("boundary_iou", "boundary IoU", ".4f"), ("gap_recall", "gap recall", ".3f"),
           ("spurious_rate", "spurious", ".4f"), ("boundary_f1", "boundary F1", ".4f"),
           ("grain_count_error", "grain count err", ".3f"), ("grain_match", "grains matched", ".3f"),
           ("grain_ari", "grain ARI", ".4f"),
           ("astm_g_error", "ASTM G err", ".3f"))
# Overlay colours (RGB): erased boundary restored, erased boundary still missing, spurious boundary.
RESTORED, MISSED, SPURIOUS = (0, 170, 0), (220, 0, 0), (30, 90, 255)
# The baselines of a gray micrograph store: row name -> `predict --method` of the classical route.
GRAY_BASELINES = {"prep+bridge": "bridge", "prep": "none"}

Predictions = Iterator[tuple[int, np.ndarray]]


class EvaluationError(ValueError):
    """A store, split, method or prediction folder that cannot be scored; one line."""


@dataclass(frozen=True)
class Method:
    """A restoration method: its name in reports, and either its predictions for given sample
    indices or the name of a baseline (made where each sample is scored, from its input)."""

    name: str  # what is scored, e.g. `model best.keras`, `predictions label`, `bridge`
    predict: Callable[[LibraryReader, np.ndarray], Predictions] | None = None
    baseline: str | None = None
    check: Callable[[np.ndarray], None] | None = None  # raises EvaluationError before any work
    plus_bridge: bool = False  # also report the method's output followed by the bridge, as its own row
    bridge_default: bool = False  # that row is the headline: the method's default (settings that say bridge)
    settings: dict[str, Any] | None = None  # how a model's probabilities became masks (for the report)
    row: str | None = None  # the row of its own output [default: name]; a model's is `model`

    @property
    def own_row(self) -> str:
        """The row of the method's own output."""
        return self.row or self.name

    @property
    def bridged_row(self) -> str | None:
        """The row of its output followed by the bridge (`model+bridge`), or None when not scored."""
        return f"{self.own_row}+bridge" if self.plus_bridge or self.bridge_default else None

    def rows(self, gray: bool = False) -> list[str]:
        """The report's rows, headline first: the default method, its other variant, then the baselines
        (of a gray micrograph store when `gray`)."""
        variants = [self.own_row] if self.bridged_row is None else (
            [self.bridged_row, self.own_row] if self.bridge_default else [self.own_row, self.bridged_row])
        return [*variants, *(name for name in baselines_for(gray) if name != self.own_row)]


def baselines_for(gray: bool) -> tuple[str, ...]:
    """The baselines scored beside any method: of a binary boundary-map store, or of a gray one."""
    return tuple(GRAY_BASELINES) if gray else tuple(BASELINES)


def baseline(name: str) -> Method:
    """A baseline, applied to each sample's input: BASELINES on a boundary-map store, GRAY_BASELINES
    on a gray micrograph store (evaluate checks which the store holds)."""
    names = (*BASELINES, *GRAY_BASELINES)
    if name not in names:
        raise EvaluationError(f"unknown baseline {name!r}; choose from {', '.join(names)}")
    return Method(name, baseline=name)


def baseline_output(name: str, micro: np.ndarray) -> np.ndarray:
    """Baseline `name`'s restored boundary image (0 boundary, 255 background) of one stored input."""
    if name in GRAY_BASELINES:
        mask, _ = _classical_route(GRAY_BASELINES[name]).restore(micro.astype(np.float32) / np.float32(255),
                                                                 binary=False)
        return mask
    return BASELINES[name](micro)


@lru_cache(maxsize=2)
def _classical_route(method: str) -> Any:
    """The Restorer of `predict --method METHOD` with automatic preparation (no model is loaded)."""
    from model.inference.restore import RestoreOptions, Restorer

    return Restorer(RestoreOptions(method=method))


def open_reader(data: str | os.PathLike[str]) -> LibraryReader:
    """The reader of the store at `data` (EvaluationError, one line, when it cannot be read)."""
    try:
        return LibraryReader(data)
    except DataError as error:
        raise EvaluationError(str(error)) from None


def prediction_folder(folder: str | os.PathLike[str]) -> Method:
    """`<i>.png` files of any method (8-bit gray, same size as the store, thresholded at 128)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"--predictions {folder} is not a directory")

    def predict(reader: LibraryReader, indices: np.ndarray) -> Predictions:
        from model.scoring.predictions import PredictionFileError, read_prediction

        for index in indices:
            try:
                image = read_prediction(folder / f"{index}.png", reader.size)
            except PredictionFileError as exc:
                raise EvaluationError(str(exc)) from None
            yield int(index), image

    def check(indices: np.ndarray) -> None:
        missing = [int(i) for i in indices if not (folder / f"{i}.png").is_file()]
        if missing:
            shown = ", ".join(f"{i}.png" for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise EvaluationError(f"{folder} lacks {len(missing)} of the {len(indices)} predictions "
                                  f"of the split: {shown}")

    return Method(f"predictions {folder.name}", predict, check=check)


def default_route(batch: int, overrides: dict[str, Any] | None = None) -> Method:
    """What `predict` with no option does to a gray micrograph, image by image (model.inference.restore):
    the bundled micrograph model and its settings when one is installed, else the automatic
    preparation, then the bundled model (and the bridge when its settings say so); `overrides`
    (threshold, link_threshold, min_speck, tta) as predict's options."""
    from model.inference.predictor import PredictError
    from model.inference.restore import RestoreOptions, Restorer

    try:
        restorer = Restorer(RestoreOptions(batch=batch, **{k: v for k, v in (overrides or {}).items() if v is not None}))
    except PredictError as error:
        raise EvaluationError(str(error)) from None
    route = restorer.micrograph or restorer
    row = f"micrograph {route.method}" if restorer.micrograph is not None else f"prep+{route.method}"

    def predict(reader: LibraryReader, indices: np.ndarray) -> Predictions:
        for index in indices:
            micro, _ = reader.read_pair(int(index))
            yield int(index), restorer.restore(micro.astype(np.float32) / np.float32(255), binary=False)[0]

    return Method(f"predict's default on gray micrographs ({route.model_path.name})", predict, row=row)


def saved_model(path: str | os.PathLike[str] | None, batch: int, overrides: dict[str, Any] | None = None,
                plus_bridge: bool = False) -> Method:
    """A saved Keras model (loaded in safe mode; the bundled model when `path` is None), run on the
    split in batches under the inference settings stored beside it, with `overrides` (threshold,
    link_threshold, min_speck, tta) replacing any of them."""
    from model.inference.predict import PredictError, load_model
    from model.inference.settings import SettingsError, load_settings
    from model.pretrained import NoModelError, resolve_model

    try:
        path = resolve_model(path)
        settings = load_settings(path)
        settings = dataclasses.replace(settings, **{k: v for k, v in (overrides or {}).items() if v is not None})
        model = load_model(path)
    except (NoModelError, SettingsError, PredictError) as error:
        raise EvaluationError(str(error)) from None
    return model_method(model, batch, f"model {path.name}", settings, plus_bridge)


def model_method(model: Any, batch: int, name: str, settings: Any = None, plus_bridge: bool = False) -> Method:
    """A Keras model in memory, its probabilities made masks under `settings` (defaults: threshold 0.5),
    scored as row `model`; with `plus_bridge`, or settings that say `bridge`, also as `model+bridge`
    (its masks followed by the bridge), the headline row when the settings say `bridge`."""
    from model.inference.settings import InferenceSettings
    from model.scoring.predictions import predict_samples

    settings = settings or InferenceSettings()
    _check_single_channel(model)

    def predict(reader: LibraryReader, indices: np.ndarray) -> Predictions:
        rows, cols = tuple(model.inputs[0].shape)[1:3]
        if (rows, cols) != (reader.size, reader.size) and not (rows is None and cols is None):
            raise EvaluationError(f"the model takes {rows}x{cols} inputs; the library's images are "
                                  f"{reader.size}x{reader.size}")
        yield from predict_samples(model, reader, indices, batch, settings)

    chosen = {"threshold": settings.threshold, "link_threshold": settings.link_threshold,
              "min_speck": settings.min_speck, "tta": settings.tta, "bridge": settings.bridge,
              "chosen_on": settings.chosen_on,
              "description": settings.describe()}
    # Settings that say the bridge follows the model make model+bridge its default method, as in
    # `predict` without --method: the headline row, with the network alone beside it.
    return Method(name, predict, plus_bridge=plus_bridge, bridge_default=settings.bridge, settings=chosen,
                  row="model")


def _check_single_channel(model: Any) -> None:
    """A restoration model maps (S, S, 1) images to (S, S, 1) probabilities; anything else is refused."""
    inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    if len(inputs) != 4 or inputs[-1] != 1 or len(outputs) != 4 or outputs[-1] != 1:
        raise EvaluationError(f"the model maps {inputs[1:]} to {outputs[1:]}; a restoration model takes "
                              "(S, S, 1) boundary images and returns (S, S, 1) probabilities")


def split_indices(reader: LibraryReader, split: str, limit: int | None) -> np.ndarray:
    """Done samples of `split` ('test', 'val' or 'all'), ascending, at most the first `limit`."""
    if split not in SPLIT_CHOICES:
        raise EvaluationError(f"unknown split {split!r}; choose from {', '.join(SPLIT_CHOICES)}")
    if limit is not None and limit <= 0:
        raise EvaluationError(f"--limit must be > 0, got {limit}")
    indices = np.sort(np.concatenate([reader.indices(s) for s in SPLITS])) if split == "all" else reader.indices(split)
    if not len(indices):
        raise EvaluationError(f"{reader.path} has no done samples in the {split} split")
    return indices[:limit]


@dataclass(frozen=True)
class Evaluation:
    split: str
    method: str
    results: dict[str, dict[str, float]]  # row name (the headline first, then the rest) -> metrics
    out_dir: Path

    @property
    def headline(self) -> str:
        """The first row: the method as it runs by default."""
        return next(iter(self.results))

    def table(self) -> str:
        """The report's markdown table: one row per method."""
        head = "| method | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
        rule = "| --- " * (len(COLUMNS) + 1) + "|"
        rows = [f"| {name} | " + " | ".join("n/a" if np.isnan(metrics[key]) else format(metrics[key], spec)
                                             for key, _, spec in COLUMNS) + " |"
                for name, metrics in self.results.items()]
        return "\n".join([head, rule, *rows])


def evaluate(data: str | os.PathLike[str], method: Method, out_dir: str | os.PathLike[str], split: str = "test",
             limit: int | None = None, progress: Callable[[int], Any] | None = None,
             reader: LibraryReader | None = None) -> Evaluation:
    """Score `method` and the baselines over the split; write metrics.json, report.md, evaluation.png.

    `reader` may be given instead of `data` (a training run passes its own, limit included).
    """
    if reader is None:
        reader = open_reader(data)
    indices = split_indices(reader, split, limit)
    gray = reader.gray
    if method.baseline is not None and method.baseline not in baselines_for(gray):
        kind, other = ("gray micrographs", "boundary maps") if gray else ("binary boundary maps", "micrographs")
        raise EvaluationError(f"baseline {method.baseline} reads {other}; {reader.path} holds {kind}: "
                              f"choose from {', '.join(baselines_for(gray))}")
    if method.check is not None:
        method.check(indices)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EvaluationError(f"--out {out_dir} is a file")
    try:  # before any scoring: a read-only --out would otherwise fail only at the end
        check_writable_folder(out_dir.absolute())
    except StoreError as error:
        raise EvaluationError(f"--out: {error}; nothing was written") from None

    # Scored in this order (score_sample's), reported headline first (method.rows()).
    combined = [method.bridged_row] if method.bridged_row is not None else []
    rows = [method.own_row, *combined, *(name for name in baselines_for(gray) if name != method.own_row)]
    meters = {name: MetricAccumulator() for name in rows}
    panels = []
    bar = progress(len(indices)) if progress else None

    # Baselines and metrics run in worker processes (they hold the GIL too much for threads);
    # results are added in sample order, with at most 2 x workers samples in flight.
    workers = min(SCORING_PROCESSES, max(1, len(indices) // SAMPLES_PER_PROCESS))
    if method.baseline is not None:
        predictions: Iterable[tuple[int, np.ndarray | None]] = ((int(i), None) for i in indices)
    else:
        predictions = method.predict(reader, indices)
    # The `model+bridge` row is made as predict makes it: the speck filter around the bridge.
    bridge_speck = int((method.settings or {}).get("min_speck") or 0) if combined else None
    shown = rows.index(method.rows(gray)[0])  # the figure shows the headline's outputs
    tasks = ((reader.path, index, prediction, tuple(rows), method.baseline,  # a Path or a StoreURL
              shown if k < FIGURE_SAMPLES else None, bridge_speck, gray)
             for k, (index, prediction) in enumerate(predictions))
    try:
        if workers == 1:
            for task in tasks:
                _collect(score_sample(*task), rows, meters, panels, bar)
        else:
            with scoring_pool(workers) as pool:
                pending: deque[Future] = deque()
                for task in tasks:
                    pending.append(pool.submit(score_sample, *task))
                    while len(pending) > 2 * workers or (pending and pending[0].done()):
                        _collect(pending.popleft().result(), rows, meters, panels, bar)
                while pending:
                    _collect(pending.popleft().result(), rows, meters, panels, bar)
    except (DataError, ModelOutputError) as error:  # a sample absent or failing its checksum; NaN probabilities
        raise EvaluationError(str(error)) from None
    if bar is not None:
        bar.close()

    evaluation = Evaluation(split, method.name, {name: meters[name].result() for name in method.rows(gray)}, out_dir)
    record: dict[str, Any] = {**evaluation.results[evaluation.headline], "method": method.name,
                              "headline": evaluation.headline, "split": split,
                              "samples": len(indices), "store": str(reader.path), "store_seed": reader.store.seed,
                              "store_config": reader.store.config.to_dict(),
                              **({"settings": method.settings} if method.settings else {}),
                              "rows": evaluation.results,
                              "baselines": {name: evaluation.results[name] for name in rows[1 + len(combined):]}}
    shown_as = f", {evaluation.headline}" if evaluation.headline != method.own_row else ""
    _write_all(out_dir, {
        METRICS_FILE: lambda path: atomic_write(path, (json.dumps(_finite(record), indent=2) + "\n").encode()),
        REPORT_FILE: lambda path: atomic_write(path, _report(evaluation, reader, len(indices), method).encode()),
        FIGURE_FILE: lambda path: _figure(panels, path, f"{method.name}{shown_as}, {split} split", gray),
    })
    return evaluation


def _write_all(out_dir: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file into a hidden folder in `out_dir`, then move them all in: a full disk leaves the files
    of an earlier run as they were, never half of a new set (and no `out_dir` this run made)."""
    created = not out_dir.exists()
    staging = out_dir / f".evaluate.{secrets.token_hex(8)}.partial"
    try:
        staging.mkdir(parents=True)
        for name, write in writers.items():
            write(staging / name)
        for name in writers:
            os.replace(staging / name, out_dir / name)
    except OSError as exc:  # a full disk, or a place that takes no files (/proc)
        raise EvaluationError(write_error_line(exc, out_dir, "nothing written")) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()


def _finite(value: Any) -> Any:
    """`value` with every NaN float as None (JSON null: a metric that is undefined, e.g. gap recall
    of gray inputs; json.dumps would write NaN, which is no JSON)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and np.isnan(value) else value


def scoring_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` spawned scoring processes that end when the process that started them ends.

    A `kill PID` or `kill -9` of `evaluate` or `train` runs no clean-up, and the idle workers of
    a process pool do not notice: without `_exit_with_parent` two were still there an hour after
    a `train` was killed during its test evaluation.
    """
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """In a scoring process: end it as soon as `parent` is no longer its parent (it died)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@lru_cache(maxsize=4)
def _reader(path: Any) -> LibraryReader:
    """One reader per store and process (worker processes score many samples each)."""
    return LibraryReader(path)


def score_sample(path: Any, index: int, prediction: np.ndarray | None, rows: tuple[str, ...],
                 baseline_name: str | None, keep: int | None,
                 bridge_speck: int | None = None, gray: bool = False) -> tuple[int, list[ImageStatistics], tuple | None]:
    """Statistics of every row for sample `index` (row 0 = the method; a baseline method's
    prediction is made here; unless `bridge_speck` is None, row 1 = the method's output bridged
    with that speck filter, model.methods.bridged), and, unless `keep` is None, the input, the truth
    and row `keep`'s output (for the figure). `gray`: the input is a gray micrograph (nothing erased)."""
    micro, label = _reader(path).read_pair(index)
    if baseline_name is not None:
        prediction = baseline_output(baseline_name, micro)
    combined = [] if bridge_speck is None else [bridged(prediction, bridge_speck)]
    outputs = [prediction, *combined, *(baseline_output(name, micro) for name in rows[1 + len(combined):])]
    statistics = [image_statistics(output, label, None if gray else micro) for output in outputs]
    return index, statistics, None if keep is None else (micro, label, outputs[keep])


def _collect(scored: tuple, rows: list[str], meters: dict[str, MetricAccumulator], panels: list,
             bar: Any) -> None:
    index, statistics, images = scored
    for name, stats in zip(rows, statistics):
        meters[name].add(stats)
    if images is not None:
        panels.append((index, *images))
    if bar is not None:
        bar.update(1)


# One line per column of the report (it is read away from the source tree: docs/metrics.md is not at hand).
GLOSSARY = (
    "mIoU: mean of the boundary and background IoU, pooled over the images (as Keras MeanIoU)",
    "boundary IoU: IoU of predicted and true boundary pixels",
    "gap recall: share of the erased boundary (true boundary missing from the input) that is restored",
    "spurious: share of true background predicted as boundary",
    "boundary F1: F1 of boundary pixels within 2 px of the other image's boundary",
    "grain count err: |grains predicted - true| / true grains, mean over images",
    "grains matched: share of true grains found one-to-one (a found grain holding >= 50 % of the true grain "
    "and > 50 % of it that grain), pooled over the images",
    "grain ARI: adjusted Rand index of the two grain partitions, mean over images",
    "ASTM G err: |G predicted - G true| of the ASTM E112 grain-size number, mean over images",
)


def _report(evaluation: Evaluation, reader: LibraryReader, samples: int, method: Method) -> str:
    from pipeline import __version__

    settings = method.settings
    chosen = ("" if not settings else
              f" Settings: {settings['description']} ({settings['chosen_on']}).")
    glossary = "\n".join(f"- {line}" for line in GLOSSARY)
    inputs = (" The inputs are gray micrographs: `prep+bridge` is `predict --method bridge` (automatic "
              "preparation, then the bridge), `prep` the preparation alone; no pixel counts as erased, so "
              "gap recall is n/a." if reader.gray else "")
    return (f"# Evaluation: {evaluation.method}\n\n"
            f"Library `{reader.path}` (seed {reader.store.seed}, {reader.size} px), {evaluation.split} split, "
            f"{samples} samples.{chosen}{_headline_note(method)}{inputs}\n\n{evaluation.table()}\n\n{glossary}\n\n"
            f"Full definitions: docs/metrics.md in the Reconstruction-GB {__version__} source.\n")


def _headline_note(method: Method) -> str:
    """For a method with two rows: which is the default (the first), and what the other is."""
    if method.bridged_row is None:
        return ""
    own, bridged = f"`{method.own_row}`", f"`{method.bridged_row}`"
    if method.bridge_default:
        return (f" The first row, {bridged}, is the default method (what `predict` runs without `--method`: "
                f"the settings say bridge); {own} is the network alone.")
    return (f" The first row, {own}, is the default method (what `predict` runs without `--method`); "
            f"{bridged} is its output followed by the bridge.")


def overlay(micro: np.ndarray, label: np.ndarray, prediction: np.ndarray, gray: bool = False) -> np.ndarray:
    """RGB picture of the prediction: gray boundary, and colours for restored gaps, missed gaps, spurious boundary
    (on a gray micrograph nothing is given, so every true boundary counts as a gap)."""
    truth, predicted = label < 128, prediction < 128
    given = np.zeros_like(truth) if gray else micro < 128
    image = np.full((*label.shape, 3), 255, np.uint8)
    image[predicted] = (110, 110, 110)
    erased = truth & ~given
    image[erased & predicted] = RESTORED
    image[erased & ~predicted] = MISSED
    image[predicted & ~truth] = SPURIOUS
    return image


def _figure(panels: Iterable[tuple[int, np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str,
            gray: bool = False) -> None:
    panels = list(panels)
    rows = [(micro, label, prediction, overlay(micro, label, prediction, gray))
            for _, micro, label, prediction in panels]
    figures.panels(rows, ("input", "ground truth", "prediction",
                          "overlay\ngreen restored, red missed,\nblue spurious"), path,
                   row_labels=[f"sample {index}" for index, *_ in panels], title=title)

