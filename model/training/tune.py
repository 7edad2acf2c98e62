"""Choose a model's inference settings on the validation split, never on test.

The model's probabilities for the first N validation samples are computed once (per TTA
choice); then every (threshold, link threshold, speck filter) triple turns them into masks,
which are scored with the project's metrics. The triple with the lowest objective wins:

    objective = grain-count error + (1 - grain ARI) + (1 - mIoU)    (ties: the higher boundary F1)

three error fractions: grains miscounted, grain partition disagreement, pixels misread. The
grain terms matter most, because one missing pixel in a restored line merges two grains,
which pixel losses barely see (docs/metrics.md); the pixel term keeps the choice from buying
closed gaps with lines drawn thick everywhere (a high threshold does exactly that), which the
link threshold (model.inference.postprocess.link_line) avoids. The choice is stored beside
the model (model.inference.settings), where `predict` and `evaluate` find it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from model.data import DataError, LibraryReader
from model.inference.postprocess import ModelOutputError, link_line, linked_mask
from model.methods import bridged, remove_specks
from model.inference.settings import InferenceSettings, save_settings
from model.scoring.metrics import MetricAccumulator, image_statistics
from model.scoring.predictions import predict_probabilities

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
LINK_THRESHOLDS = (None, 0.9, 0.95, 0.98)  # None: no link line; values at or below the threshold are skipped
MIN_SPECKS = (0, 10, 30)
# Whether the bridge follows the model's mask (`model+bridge`, the method used when none is named).
# Only without the link line: the bridge is the linking then.
BRIDGE_CHOICES = (False, True)
DEFAULT_SAMPLES = 200
OBJECTIVE = "grain_count_error + (1 - grain_ari) + (1 - miou); ties: higher boundary_f1"


class TuneError(ValueError):
    """A model, store or split that cannot be tuned on. One line."""


def objective(metrics: dict[str, float]) -> float:
    """Lower is better: grain-count error, grain partition disagreement and pixel disagreement."""
    return float(metrics["grain_count_error"] + (1.0 - metrics["grain_ari"]) + (1.0 - metrics["miou"]))


@dataclass(frozen=True)
class Tuning:
    settings: InferenceSettings
    sweep: list[dict[str, Any]]  # one row per (tta, threshold, link_threshold, min_speck, bridge): metrics, objective


def candidates(thresholds: Sequence[float], link_thresholds: Sequence[float | None]) -> list[tuple[float, float | None]]:
    """(threshold, link threshold) pairs worth scoring: a link threshold at or below the threshold adds nothing."""
    return [(t, link) for t in thresholds for link in link_thresholds if link is None or link > t]


def sweep(model: Any, reader: LibraryReader, split: str = "val", samples: int = DEFAULT_SAMPLES, batch: int = 4,
          thresholds: Sequence[float] = THRESHOLDS, min_specks: Sequence[int] = MIN_SPECKS,
          tta_choices: Sequence[bool] = (False,), progress: Callable[[int], Any] | None = None,
          link_thresholds: Sequence[float | None] = LINK_THRESHOLDS,
          bridge_choices: Sequence[bool] = BRIDGE_CHOICES) -> Tuning:
    """Score every setting on the first `samples` done samples of `split`; return the best one."""
    if split == "test":
        raise TuneError("settings are chosen on the validation split, never on test")
    try:
        indices = reader.indices(split)[:samples]
    except DataError as error:
        raise TuneError(str(error)) from None
    if not len(indices):
        raise TuneError(f"{reader.path} has no done samples in the {split} split")
    pairs = {int(i): reader.read_pair(i) for i in indices}
    rows = []
    bar = progress(len(indices) * len(tta_choices)) if progress else None
    pairs_tried = candidates(thresholds, link_thresholds)
    for tta in tta_choices:
        meters = {(t, link, s, b): MetricAccumulator() for t, link in pairs_tried for s in min_specks
                  for b in bridge_choices if not (b and link is not None)}
        for index, probability in _probabilities(model, reader, indices, batch, tta):
            micro, label = pairs[index]
            # Each link line once per image: it depends on the link threshold alone.
            lines = {link: link_line(probability, link) for link in link_thresholds if link is not None}
            for threshold, link in pairs_tried:  # link is None or above the threshold
                mask = linked_mask(probability, threshold, lines.get(link))
                plain = image_statistics(mask, label, micro)
                for min_speck in min_specks:
                    filtered = remove_specks(mask, min_speck)  # the very mask when nothing is removed
                    stats = plain if filtered is mask else image_statistics(filtered, label, micro)
                    for with_bridge in bridge_choices:
                        if (threshold, link, min_speck, with_bridge) in meters:  # as predict does it
                            meters[threshold, link, min_speck, with_bridge].add(
                                image_statistics(bridged(filtered, min_speck), label, micro) if with_bridge else stats)
            if bar is not None:
                bar.update(1)
        for (threshold, link, min_speck, with_bridge), meter in meters.items():
            metrics = meter.result()
            rows.append({"tta": tta, "threshold": threshold, "link_threshold": link, "min_speck": min_speck,
                         "bridge": with_bridge, "objective": objective(metrics), **metrics})
    if bar is not None:
        bar.close()
    best = best_row(rows, f"{len(indices)} {split} samples")
    settings = InferenceSettings(
        threshold=best["threshold"], link_threshold=best["link_threshold"], min_speck=best["min_speck"],
        tta=best["tta"], bridge=best["bridge"], chosen_on=f"{split} split of {reader.path} (first {len(indices)} samples)",
        details={"objective": OBJECTIVE,
                 "best": {k: _finite_or_none(best[k]) for k in ("objective", "grain_count_error", "grain_ari", "miou",
                                                                "boundary_iou", "boundary_f1", "gap_recall",
                                                                "astm_g_error")},
                 "sweep": [{k: _finite_or_none(row[k]) for k in ("tta", "threshold", "link_threshold", "min_speck",
                                                                 "bridge", "objective", "miou", "grain_count_error",
                                                                 "grain_ari")} for row in rows]})
    return Tuning(settings, rows)


def best_row(rows: list[dict[str, Any]], scored_on: str) -> dict[str, Any]:
    """The row of the lowest objective (ties: the higher boundary F1). A NaN objective (no grain in any
    image: grain ARI undefined) is never chosen: `min` over NaN kept whichever row came first."""
    def worst_if_nan(value: float, sign: float) -> tuple[bool, float]:
        return (True, 0.0) if math.isnan(value) else (False, sign * value)

    scored = [row for row in rows if not math.isnan(row["objective"])]
    if not scored:
        raise TuneError(f"no setting can be scored on the {scored_on}: the model's output gives no grain at any "
                        "threshold (grain ARI undefined); no settings written")
    return min(scored, key=lambda row: (row["objective"], worst_if_nan(row["boundary_f1"], -1.0)))


def _finite_or_none(value: Any) -> Any:
    """A metric for the settings file: NaN (undefined) is null, as evaluate's metrics.json writes it."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _probabilities(model: Any, reader: LibraryReader, indices: np.ndarray, batch: int,
                   tta: bool) -> Iterator[tuple[int, np.ndarray]]:
    """predict_probabilities, with NaN or infinite probabilities a TuneError (no setting can be chosen on them)."""
    try:
        yield from predict_probabilities(model, reader, indices, batch, tta)
    except ModelOutputError as error:
        raise TuneError(str(error)) from None


def tune_saved(model_path: str | os.PathLike[str], data: str | os.PathLike[str], **options: Any) -> Tuning:
    """Sweep a saved model on a library's validation split and store the choice beside the model."""
    from model.inference.predictor import PredictError, check_signature, load_model

    try:
        model = load_model(model_path)
        rows, cols = check_signature(model)  # a 3-channel input gave a traceback, 2 output channels settings
        reader = LibraryReader(data)
    except (PredictError, DataError) as error:
        raise TuneError(str(error)) from None
    if (rows, cols) != (None, None) and (rows, cols) != (reader.size, reader.size):
        raise TuneError(f"the model takes {rows}x{cols} inputs; the library's images are {reader.size}x{reader.size}")
    tuning = sweep(model, reader, **options)
    save_settings(Path(model_path), tuning.settings)
    return tuning
