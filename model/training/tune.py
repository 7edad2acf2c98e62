"""Choose a model's inference settings on the validation split, never on test.

The model's probabilities for the first N validation samples are computed once (per TTA
choice); then every (threshold, speck filter) pair turns them into masks, which are scored with
the project's metrics. The pair with the lowest grain-level objective wins:

    objective = grain-count error + (1 - grain ARI)    (ties: the higher boundary F1)

because a single missing pixel in a restored line merges two grains, which pixel losses barely
see (docs/metrics.md). The choice is stored beside the model (model.inference.settings), where
`predict` and `evaluate` find it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from model.data import DataError, LibraryReader
from model.inference.postprocess import probability_to_mask
from model.inference.settings import InferenceSettings, save_settings
from model.scoring.metrics import MetricAccumulator, image_statistics
from model.scoring.predictions import predict_probabilities

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SPECKS = (0, 10, 30)
DEFAULT_SAMPLES = 200


class TuneError(ValueError):
    """A model, store or split that cannot be tuned on. One line."""


def objective(metrics: dict[str, float]) -> float:
    """Lower is better: grain-count error plus the grain partition's disagreement (1 - ARI)."""
    return float(metrics["grain_count_error"] + (1.0 - metrics["grain_ari"]))


@dataclass(frozen=True)
class Tuning:
    settings: InferenceSettings
    sweep: list[dict[str, Any]]  # one row per (tta, threshold, min_speck): its metrics and objective


def sweep(model: Any, reader: LibraryReader, split: str = "val", samples: int = DEFAULT_SAMPLES, batch: int = 4,
          thresholds: Sequence[float] = THRESHOLDS, min_specks: Sequence[int] = MIN_SPECKS,
          tta_choices: Sequence[bool] = (False,), progress: Callable[[int], Any] | None = None) -> Tuning:
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
    for tta in tta_choices:
        meters = {(t, s): MetricAccumulator() for t in thresholds for s in min_specks}
        for index, probability in predict_probabilities(model, reader, indices, batch, tta):
            micro, label = pairs[index]
            for (threshold, min_speck), meter in meters.items():
                meter.add(image_statistics(probability_to_mask(probability, threshold, min_speck), label, micro))
            if bar is not None:
                bar.update(1)
        for (threshold, min_speck), meter in meters.items():
            metrics = meter.result()
            rows.append({"tta": tta, "threshold": threshold, "min_speck": min_speck,
                         "objective": objective(metrics), **metrics})
    if bar is not None:
        bar.close()
    best = min(rows, key=lambda row: (row["objective"], -row["boundary_f1"]))
    settings = InferenceSettings(
        threshold=best["threshold"], min_speck=best["min_speck"], tta=best["tta"],
        chosen_on=f"{split} split of {reader.path} (first {len(indices)} samples)",
        details={"objective": "grain_count_error + (1 - grain_ari); ties: higher boundary_f1",
                 "best": {k: best[k] for k in ("objective", "grain_count_error", "grain_ari", "boundary_f1",
                                               "gap_recall", "miou")},
                 "sweep": [{k: row[k] for k in ("tta", "threshold", "min_speck", "objective")} for row in rows]})
    return Tuning(settings, rows)


def tune_saved(model_path: str | os.PathLike[str], data: str | os.PathLike[str], **options: Any) -> Tuning:
    """Sweep a saved model on a library's validation split and store the choice beside the model."""
    from model.inference.predict import PredictError, load_model

    try:
        model = load_model(model_path)
        reader = LibraryReader(data)
    except (PredictError, DataError) as error:
        raise TuneError(str(error)) from None
    tuning = sweep(model, reader, **options)
    save_settings(Path(model_path), tuning.settings)
    return tuning
