"""Score a trained model on one split of a library, streaming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from . import figures
from .data import LibraryReader
from .predictions import predict_split

METRICS_FILE = "test_metrics.json"
FIGURE_FILE = "test_predictions.png"
FIGURE_SAMPLES = 4


def confusion(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """2x2 counts [true class, predicted class] with class 1 = background (pixel >= 128)."""
    truth = (label >= 128).ravel().astype(np.int64)
    predicted = (prediction >= 128).ravel().astype(np.int64)
    return np.bincount(2 * truth + predicted, minlength=4).reshape(2, 2)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean over classes of TP / (TP + FP + FN), classes absent from both sides left out (as Keras)."""
    tp = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(0) + matrix.sum(1) - tp
    present = denominator > 0
    return float(np.mean(tp[present] / denominator[present])) if present.any() else float("nan")


def evaluate_model(model: keras.Model, reader: LibraryReader, split: str, batch: int, out_dir: Path,
                   echo: Callable[[str], None] = print) -> dict[str, Any]:
    """mIoU of `model` over every done sample of `split`; writes metrics JSON and a figure."""
    matrix = np.zeros((2, 2), np.int64)
    rows = []
    for index, prediction in predict_split(model, reader, split, batch):
        micro, label = reader.read_pair(index)
        matrix += confusion(prediction, label)
        if len(rows) < FIGURE_SAMPLES:
            rows.append((micro, label, prediction))
    result = {"split": split, "samples": int(matrix.sum() // reader.size**2), "miou": mean_iou(matrix)}
    (out_dir / METRICS_FILE).write_text(json.dumps(result, indent=2) + "\n")
    figures.panels(rows, ("input", "ground truth", "prediction"), out_dir / FIGURE_FILE)
    echo(f"{split} mIoU: {result['miou']:.4f} over {result['samples']} samples")
    return result
