"""The `paper` preset on a machine without a GPU: one warning line with the measured step time.

The step is timed inside the run itself (its second step: the first one also traces the graph),
so measuring costs nothing; the line comes a couple of steps after training starts.
"""

from __future__ import annotations

import time
from typing import Callable

import keras
import tensorflow as tf

TIMED_STEP = 1  # 0-based: the second training step of the run


def gpu_available() -> bool:
    """Whether TensorFlow sees at least one GPU."""
    return bool(tf.config.list_logical_devices("GPU"))


class SlowStepWarning(keras.callbacks.Callback):
    """Times one training step and prints the warning once."""

    def __init__(self, echo: Callable[[str], None], batch: int, size: int):
        super().__init__()
        self.echo, self.batch, self.size = echo, batch, size
        self.started: float | None = None
        self.done = False

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if not self.done and batch == TIMED_STEP:
            self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.done or self.started is None:
            return
        self.done = True
        self.echo(warning_line(time.perf_counter() - self.started, self.batch, self.size, self.params.get("steps")))


def warning_line(seconds: float, batch: int, size: int, steps: int | None) -> str:
    """The warning: measured time of a step, and of an epoch when its steps are known."""
    epoch = f", about {_duration(seconds * steps)} an epoch of {steps} steps" if steps else ""
    return (f"warning: no GPU: the paper preset took {_duration(seconds)} for one step of {batch} at {size} px "
            f"here{epoch}; `--preset small` trains on a CPU")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def slow_step_warnings(preset: str, echo: Callable[[str], None], batch: int, size: int) -> list[keras.callbacks.Callback]:
    """The callbacks a run adds to `fit`: the warning for `paper` without a GPU, else none."""
    if preset != "paper" or gpu_available():
        return []
    return [SlowStepWarning(echo, batch, size)]
