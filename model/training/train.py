"""Train the Attention U-Net from a library store: validation-based selection, resumable runs.

A run directory holds:
  config.json                     every option, the store's path and config, versions
  checkpoints/epoch-NNNN/         model.keras (weights + optimizer) and state.json of the last
                                  finished epoch; written as a `.partial` directory and renamed,
                                  so a kill leaves the previous checkpoint whole
  best_reconstruction_model.keras the weights of the lowest validation loss, saved without
                                  optimizer or loss (loads with plain keras.models.load_model)
  history.csv, learning_curves.png
  metrics.json, report.md, evaluation.png   the best model scored on the test split at the end:
                                  first its default method (model+bridge when the settings chosen
                                  on val say bridge), then the network alone (when different) and
                                  the identity and bridge baselines (model/scoring/evaluate.py)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import tensorflow as tf

from pipeline.store import (LibraryStore, StoreError, atomic_write, check_writable_folder, is_no_space,
                           software_versions,
                           store_location)

from model import figures
from model.data import DataError, LibraryReader
from model.data.reader import HOLE_SIDE
from model.inference.settings import save_settings
from model.scoring.evaluate import EvaluationError, evaluate, model_method
from model.training.batchnorm import BATCHES as BN_BATCHES, recalibrate_batchnorm
from model.training.tune import TuneError, sweep
from model.network.losses import DEFAULT_CLDICE_WEIGHT, LOSSES
from model.network.presets import ModelConfigError, model_config
from model.network.unet import build_unet
from model.step_time import slow_step_warnings

BEST_MODEL = "best_reconstruction_model.keras"
CONFIG = "config.json"
# Shards per shuffle window for a library in object storage: a window of 8 shards of 32 samples
# reads each shard whole, once an epoch (one GET per 32 samples), and mixes 256 samples at a time.
SHUFFLE_WINDOW = 8
HISTORY = "history.csv"
CURVES = "learning_curves.png"
CHECKPOINTS = "checkpoints"
# Options a resumed run may change; any other must match the run's config.json. The run
# directory is wherever it is now, and a moved store is accepted if it is the same library.
RESUMABLE_CHANGES = ("epochs", "patience", "out", "storage_options")


# A sample the reader could not read (absent, or failing its checksum), as pipeline/store/ words it.
STORE_PROBLEM = re.compile(r"sample \d+: [^\n]*?; run `python cli\.py verify [^`]*`")


class TrainError(ValueError):
    """Options, store or run directory that cannot start or resume a run."""


@dataclass(frozen=True)
class TrainOptions:
    """Every option of `cli.py train` (see its --help)."""

    data: str
    out: str
    epochs: int = 100
    batch: int = 4
    limit: int | None = None
    preset: str = "paper"
    filters: int | None = None
    depth: int | None = None
    kernel_size: int | None = None
    loss: str = "bce"
    cldice_weight: float = DEFAULT_CLDICE_WEIGHT
    crop: int | None = None
    corrupt: bool = False
    corrupt_scale: float = 1.0  # largest speck and hole sides of --corrupt, times this
    lr: float = 1e-3
    patience: int = 10
    augment: bool = True
    mixed_precision: bool = False
    seed: int = 0
    init: str | None = None  # a trained model whose weights start the run (fine-tuning)
    # Shuffle by windows of this many shards (model.data.reader.shard_shuffle); 0: the whole split.
    # None: SHUFFLE_WINDOW for a library in object storage, 0 for a folder (settled by `train` before a run).
    shuffle_window: int | None = None
    # Options of the store's filesystem when `data` is a URL (--storage-options); never recorded in
    # the run's files (they may hold credentials): a resumed run is given them again.
    storage_options: dict[str, Any] | None = None

    def store(self) -> Any:
        """Where the library is: a folder (Path) or a URL with its storage options (pipeline.store.StoreURL)."""
        return store_location(self.data, self.storage_options)

    def check(self) -> None:
        """Raise TrainError for option values no run can use."""
        for name in ("epochs", "batch", "patience"):
            if getattr(self, name) <= 0:
                raise TrainError(f"--{name} must be > 0, got {getattr(self, name)}")
        if self.limit is not None and self.limit <= 0:
            raise TrainError(f"--limit must be > 0, got {self.limit}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.seed < 0:
            raise TrainError(f"--seed must be >= 0, got {self.seed}")
        if self.shuffle_window is not None and self.shuffle_window < 0:
            raise TrainError(f"--shuffle-window must be >= 0, got {self.shuffle_window}")
        if self.loss not in LOSSES:
            raise TrainError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if not (self.cldice_weight >= 0 and math.isfinite(self.cldice_weight)):  # inf trains on NaN losses
            raise TrainError(f"--cldice-weight must be a finite number >= 0, got {self.cldice_weight}")
        if self.crop is not None and self.crop <= 0:
            raise TrainError(f"--crop must be > 0, got {self.crop}")
        if not (self.corrupt_scale > 0 and math.isfinite(self.corrupt_scale)):
            raise TrainError(f"--corrupt-scale must be a finite number > 0, got {self.corrupt_scale}")
        if self.corrupt_scale != 1.0 and not self.corrupt:
            raise TrainError("--corrupt-scale needs --corrupt")
        if self.init is not None and not Path(self.init).is_file():
            raise TrainError(f"--init {self.init}: no such model file")


@dataclass
class RunState:
    """Where a run stands after its last finished epoch (the early-stopping state included)."""

    epoch: int = 0  # epochs finished
    best_val_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0  # epochs since the best one
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def end_epoch(self, record: dict[str, float], patience: int) -> bool:
        """Record a finished epoch; True when its validation loss is the lowest so far.

        Early stopping as Keras' EarlyStopping(patience) on val_loss: stop once `patience`
        epochs in a row brought no lower value. A NaN loss never counts as an improvement.
        """
        self.epoch = int(record["epoch"])
        self.history.append(record)
        improved = record["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.wait = record["val_loss"], self.epoch, 0
        else:
            self.wait += 1
        self.stopped_early = self.wait >= patience
        return improved


@dataclass(frozen=True)
class TrainReport:
    run_dir: Path
    state: RunState
    test_metrics: dict[str, Any] | None  # the headline row: the model's default method


def describe(options: TrainOptions) -> tuple[LibraryReader, Any]:
    """Check options, store, splits and model size; returns the reader and the model config."""
    options.check()
    try:
        config = model_config(options.preset, filters=options.filters, depth=options.depth,
                              kernel_size=options.kernel_size)
        try:
            location = options.store()
        except StoreError as error:  # --storage-options with a folder
            raise TrainError(str(error)) from None
        reader = LibraryReader(location, options.limit)
        config.check_size(reader.size)
        reader.check_crop(options.crop)
        if options.crop is not None:
            config.check_size(options.crop)
        reader.require("train", "val", "test")
    except (ModelConfigError, DataError) as error:
        raise TrainError(str(error)) from None
    return reader, config


def train(options: TrainOptions, echo: Callable[[str], None] = print, dry_run: bool = False,
          resume: bool = False, progress: Callable[[int], Any] | None = None) -> TrainReport | None:
    """Run (or resume) training; with dry_run only describe what would be trained.

    `progress(total)` makes a progress bar for the final evaluation (none by default).
    """
    reader, config = describe(options)
    if options.shuffle_window is None:
        options = dataclasses.replace(options, shuffle_window=SHUFFLE_WINDOW if reader.remote else 0)
    hole = HOLE_SIDE[1] * options.corrupt_scale  # inf past 1e308 / 9: no integer to round to
    if options.corrupt and (not math.isfinite(hole) or round(hole) > reader.size):
        raise TrainError(f"--corrupt-scale {options.corrupt_scale:g} makes holes of up to "
                         f"{round(hole) if math.isfinite(hole) else hole:,} px, larger than the {reader.size} px images")
    run_dir = Path(options.out).absolute()
    state = None if dry_run else _prepare_run_dir(run_dir, resume)
    counts = reader.counts()
    echo(f"samples: train {counts['train']}, val {counts['val']}, test {counts['test']} "
         f"({reader.size} x {reader.size}, {reader.path})")
    if options.shuffle_window:
        echo(f"shuffle: by windows of {options.shuffle_window} shards (--shuffle-window; each shard read whole)")
    if state is None:
        params = build_unet(config, reader.size).count_params()
        echo(f"model: {options.preset} {config.to_dict()}, {params:,} parameters")
        return None
    echo(f"run directory: {run_dir}")
    run = _Run(run_dir, options, reader, config, state, echo)
    run.progress = progress
    run.callbacks = slow_step_warnings(options.preset, echo, options.batch, reader.size)
    try:
        run.fit()
        return TrainReport(run_dir, run.state, run.finish())
    except OSError as exc:
        if not is_no_space(exc):
            raise
        # Keras names no file; and "run it again" met "is not empty; use --resume".
        raise TrainError(f"cannot write {run_dir}: no space left on device; free some space and continue the run "
                         "with --resume (it keeps its last finished epoch)") from None


def _save_whole(model: keras.Model, target: Path) -> None:
    """Save `model` as `target` through a partial file and a rename; a failed save (a full disk)
    leaves neither the partial file nor a damaged `target`."""
    partial = target.parent / f"{target.name}.partial.keras"
    try:
        model.save(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# --- run directory ---------------------------------------------------------------------------
def resumed_options(run_dir: str | Path, given: dict[str, Any]) -> TrainOptions:
    """The options of the run in `run_dir`, with the `given` ones that a resume may change.

    Options given on the command line must either match the run's or be one of RESUMABLE_CHANGES.
    """
    saved = Path(run_dir).absolute() / CONFIG
    if not saved.is_file():
        raise TrainError(f"{Path(run_dir).absolute()} holds no run to resume (no {CONFIG})")
    record = json.loads(saved.read_text())
    before = {"shuffle_window": 0, **record["options"]}  # runs from before the option shuffled the whole split
    now = _options_record(TrainOptions(**{**before, **given}))
    changed = [k for k in given if k not in RESUMABLE_CHANGES and before.get(k) != now[k]]
    if "data" in changed and _same_library(store_location(now["data"], given.get("storage_options")), record["store"]):
        changed.remove("data")
    if changed:
        raise TrainError("--resume continues the run with its own options; these differ from "
                         f"{saved}: " + ", ".join(f"--{k.replace('_', '-')} ({before.get(k)!r} -> {now[k]!r})"
                                                  for k in changed))
    return TrainOptions(**{**before, **given})


def _same_library(path: Any, recorded: dict[str, Any]) -> bool:
    """Whether the store at `path` is the library a run recorded (same seed and config)."""
    try:
        store = LibraryStore.open(path)
    except StoreError:
        return False
    return store.seed == recorded["seed"] and store.config.to_dict() == recorded["config"]


def _prepare_run_dir(run_dir: Path, resume: bool) -> RunState:
    try:  # before the model is built: a read-only --out would otherwise fail at the first file
        check_writable_folder(run_dir)
    except StoreError as error:
        raise TrainError(f"--out: {error}; nothing was written") from None
    if not resume:
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise TrainError(f"{run_dir} is not empty; use --resume to continue the run in it, "
                             "or choose another --out")
        return RunState()
    if not (run_dir / CONFIG).is_file():
        raise TrainError(f"{run_dir} holds no run to resume (no {CONFIG})")
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        return RunState()  # killed before its first epoch ended: start it again
    return RunState(**json.loads((checkpoint / "state.json").read_text()))


def _options_record(options: TrainOptions) -> dict[str, Any]:
    record = dataclasses.asdict(options)
    record.pop("storage_options")
    record["data"] = str(store_location(options.data))
    record["out"] = str(Path(options.out).absolute())
    if options.init is not None:
        record["init"] = str(Path(options.init).absolute())
    return record


def last_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of the latest finished epoch, or None."""
    done = sorted(p for p in (run_dir / CHECKPOINTS).glob("epoch-*") if p.suffix != ".partial")
    return done[-1] if done else None


# --- the run -----------------------------------------------------------------------------------
def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over every GPU when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


class _Run:
    def __init__(self, run_dir: Path, options: TrainOptions, reader: LibraryReader, config: Any,
                 state: RunState, echo: Callable[[str], None]):
        self.run_dir, self.options, self.reader, self.config = run_dir, options, reader, config
        self.state, self.echo = state, echo
        self.size = reader.size
        # Trained on crops, the network is built fully convolutional: it then validates, and is
        # exported, for whole images of any side divisible by 2^depth.
        self.input_size = None if options.crop is not None else reader.size
        self.progress: Callable[[int], Any] | None = None
        self.callbacks: list[keras.callbacks.Callback] = []

    def fit(self) -> None:
        options, state = self.options, self.state
        keras.utils.set_random_seed(options.seed)
        policy = keras.mixed_precision.global_policy()
        if options.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            strategy = distribution_strategy()
            with strategy.scope():
                model = self._model()
            # The exported best model: float32, uncompiled, the same layers and names.
            keras.mixed_precision.set_global_policy(policy)
            self.export = build_unet(self.config, self.input_size)
            if state.epoch == 0:
                self._write_config(model, strategy)
            if state.stopped_early or state.epoch >= options.epochs:
                self.echo(f"run finished at epoch {state.epoch}; nothing left to train")
                return
            if state.epoch:
                self.echo(f"resuming after epoch {state.epoch} (best val_loss {state.best_val_loss:.4f} "
                          f"at epoch {state.best_epoch}, {state.wait} epochs without improvement)")
            validation = self.reader.dataset("val", options.batch)
            verbose = 1 if sys.stdout.isatty() else 2
            if verbose == 2:  # no terminal: Keras prints one line an epoch; add a line every few batches
                from model.training.progress import BatchLines

                self.callbacks = [*self.callbacks, BatchLines(self.echo)]
            for epoch in range(state.epoch, options.epochs):
                started = time.perf_counter()
                train = self.reader.dataset("train", options.batch, epoch=epoch, seed=options.seed,
                                            shuffle=True, augment=options.augment, crop=options.crop,
                                            corrupt=options.corrupt, corrupt_scale=options.corrupt_scale,
                                            window=options.shuffle_window)
                # One epoch per call (each with its own order), counted against the whole run; then
                # batch-norm statistics re-estimated at the epoch's final weights, then validation.
                try:
                    logs = model.fit(train, initial_epoch=epoch, epochs=options.epochs, shuffle=False,
                                     verbose=verbose, callbacks=[_OneEpoch(), *self.callbacks]).history
                    recalibrate_batchnorm(model, self._bn_batches(epoch))
                    scores = model.evaluate(validation, verbose=0, return_dict=True)
                except Exception as error:  # noqa: BLE001 - TensorFlow wraps the reader's error in its own
                    problem = STORE_PROBLEM.search(str(error))
                    if problem is None:
                        raise
                    raise TrainError(problem.group(0)) from None
                record = {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in logs.items()},
                          **{f"val_{k}": float(v) for k, v in scores.items()},
                          "seconds": round(time.perf_counter() - started, 3)}
                self.echo(f"epoch {epoch + 1}: val_loss {record['val_loss']:.4f}, val_miou {record['val_miou']:.4f} "
                          "(batch-norm statistics re-estimated)")
                if self._end_epoch(model, record):
                    break
        finally:
            keras.mixed_precision.set_global_policy(policy)

    def _bn_batches(self, epoch: int) -> Any:
        """The first training batches of `epoch` (0-based), uncorrupted: what batch-norm statistics
        are re-estimated on."""
        options = self.options
        return self.reader.dataset("train", options.batch, epoch=epoch, seed=options.seed, shuffle=True,
                                   augment=options.augment, crop=options.crop,
                                   window=options.shuffle_window).take(BN_BATCHES)

    def _model(self) -> keras.Model:
        checkpoint = last_checkpoint(self.run_dir)
        if self.state.epoch and checkpoint is not None:
            # Weights, optimizer state and step count, as they were after the last finished epoch.
            return keras.models.load_model(checkpoint / "model.keras")
        model = build_unet(self.config, self.input_size)
        if self.options.init is not None:
            _load_init_weights(model, self.options.init)
        loss = LOSSES[self.options.loss](self.options.cldice_weight)
        model.compile(optimizer=keras.optimizers.Adam(self.options.lr), loss=loss,
                      metrics=[keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.5, name="miou")])
        return model

    def _end_epoch(self, model: keras.Model, record: dict[str, float]) -> bool:
        """Early stopping, best model, checkpoint, history; True when training should stop."""
        state = self.state
        if state.end_epoch(record, self.options.patience):
            self.export.set_weights(model.get_weights())
            _save_whole(self.export, self.run_dir / BEST_MODEL)
        self._checkpoint(model)
        atomic_write(self.run_dir / HISTORY, _history_csv(state.history).encode())
        figures.learning_curves(state.history, self.run_dir / CURVES, loss=self.options.loss)
        if state.stopped_early:
            self.echo(f"early stop: val_loss has not improved for {state.wait} epochs "
                      f"(best {state.best_val_loss:.4f} at epoch {state.best_epoch})")
        return state.stopped_early

    def _checkpoint(self, model: keras.Model) -> None:
        root = self.run_dir / CHECKPOINTS
        final = root / f"epoch-{self.state.epoch:04d}"
        partial = final.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            partial.mkdir(parents=True)
            model.save(partial / "model.keras")
            (partial / "state.json").write_text(json.dumps(dataclasses.asdict(self.state), indent=1))
            os.replace(partial, final)
        except BaseException:  # a full disk: no half-written checkpoint stays beside the whole ones
            shutil.rmtree(partial, ignore_errors=True)
            raise
        for old in root.iterdir():
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def _write_config(self, model: keras.Model, strategy: tf.distribute.Strategy) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        store = self.reader.store
        record = {
            "options": _options_record(self.options),
            "model": {**self.config.to_dict(), "input_size": self.size, "parameters": model.count_params()},
            "store": {"path": str(store.path), "seed": store.seed, "config": store.config.to_dict(),
                      "samples": self.reader.counts()},
            "replicas": strategy.num_replicas_in_sync,
            "versions": {**software_versions(), "tensorflow": tf.__version__, "keras": keras.__version__},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write(self.run_dir / CONFIG, (json.dumps(record, indent=2) + "\n").encode())

    def finish(self) -> dict[str, Any] | None:
        """Score the best model on the test split (never seen during training or selection)."""
        best = self.run_dir / BEST_MODEL
        if not best.is_file():  # a run that diverged (e.g. --lr 1e308): it made no model, so it failed
            raise TrainError(f"no epoch had a finite validation loss (the training diverged; try a lower --lr): no "
                             f"model was written; the history of the run is in {self.run_dir / 'history.csv'}")
        model = keras.models.load_model(best)
        # Its batch-norm statistics re-estimated on the batches of its own epoch: the values it
        # already has for a run of this version, and the fix for a model saved before epochs
        # ended with this step (its statistics lagged behind its weights).
        recalibrate_batchnorm(model, self._bn_batches(self.state.best_epoch - 1))
        _save_whole(model, best)
        self.echo(f"choosing the inference settings of {best.name} on the validation split")
        try:
            settings = sweep(model, self.reader, "val", batch=self.options.batch, progress=self.progress).settings
        except TuneError as error:  # e.g. NaN probabilities: no setting can be chosen on them
            raise TrainError(f"{best}: {error}") from None
        written = save_settings(best, settings)
        self.echo(f"{settings.describe()} -> {written.name}")
        self.echo(f"evaluating {best.name} (epoch {self.state.best_epoch}) on the test split")
        method = model_method(model, self.options.batch, f"model {best.name} (epoch {self.state.best_epoch})",
                              settings)
        try:
            evaluation = evaluate(self.reader.path, method, self.run_dir, "test", reader=self.reader,
                                  progress=self.progress)
        except EvaluationError as error:
            raise TrainError(f"{best}: {error}") from None
        self.echo(evaluation.table())
        return evaluation.results[evaluation.headline]


def _load_init_weights(model: keras.Model, path: str) -> None:
    """Start `model` from the weights of the trained model at `path` (loaded in safe mode).

    The two must have the same layers: the same preset, filters, depth and kernel size (the
    input size may differ, the network being fully convolutional).
    """
    if Path(path).suffix.lower() == ".keras" and Path(path).is_file() and not zipfile.is_zipfile(path):
        # Keras says "File not found" of a file that is there (as predict, which checks this first, says)
        raise TrainError(f"--init {path}: not a .keras file (not a zip archive)")
    try:
        source = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises several types for an unreadable file
        # Keras' own reason, e.g. safe mode refusing a Lambda layer's Python code, as `predict` quotes it.
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        raise TrainError(f"--init {path}: not a readable Keras model ({type(error).__name__}"
                         f"{': ' + reason if reason else ''})") from None
    theirs, ours = source.get_weights(), model.get_weights()
    if [w.shape for w in theirs] != [w.shape for w in ours]:
        raise TrainError(f"--init {path}: its layers differ from this run's network "
                         f"({source.count_params():,} vs {model.count_params():,} parameters); "
                         "give the preset, --filters, --depth and --kernel-size it was trained with")
    model.set_weights(theirs)


class _OneEpoch(keras.callbacks.Callback):
    """Ends `fit` after the epoch it started with: the run's own loop does the bookkeeping."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.model.stop_training = True


def _history_csv(history: list[dict[str, float]]) -> str:
    columns = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(columns)]
    lines += [",".join(_number(row.get(c, "")) for c in columns) for row in history]
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    return str(int(value)) if isinstance(value, float) else str(value)
