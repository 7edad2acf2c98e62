"""Training progress for logs: a line every few batches with the rate and the time left in the epoch.

Keras' own bar (verbose 1) needs a terminal; with output to a file or pipe (`make demo`, batch
jobs) `train` uses verbose 2, one line per epoch, which can leave a log silent for half an hour.
`BatchLines` fills that gap: every `every` batches (default: about LINES_PER_EPOCH lines an epoch)
one line `epoch E: batch B/N, loss L, R batches/s, ETA m:ss`. The rate is timed from the end of
the epoch's first batch: that one includes building the graph (a minute or more on a loaded
CPU), which would make every later ETA far too long.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import keras

LINES_PER_EPOCH = 10
UNKNOWN_EVERY = 50  # batches between lines when the epoch's length is unknown


def every_for(steps: int | None, lines: int = LINES_PER_EPOCH) -> int:
    """Batches between two lines: about `lines` lines an epoch of `steps` batches (at least 1)."""
    if not steps:
        return UNKNOWN_EVERY
    return max(1, math.ceil(steps / lines))


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def batch_line(epoch: int, done: int, steps: int | None, rate: float, loss: float | None) -> str:
    """`epoch E: batch B/N, loss L, R batches/s, ETA m:ss` (1-based epoch; N and ETA left out when unknown)."""
    parts = [f"epoch {epoch}: batch {done}/{steps}" if steps else f"epoch {epoch}: batch {done}"]
    if loss is not None and math.isfinite(loss):
        parts.append(f"loss {loss:.4f}")
    parts.append(f"{rate:.2f} batches/s" if math.isfinite(rate) else "- batches/s")
    if steps and math.isfinite(rate) and rate > 0:
        parts.append(f"ETA {clock((steps - done) / rate)}")
    return ", ".join(parts)


class BatchLines(keras.callbacks.Callback):
    """Echo `batch_line` every `every` training batches (None: `every_for` the epoch's length)."""

    def __init__(self, echo: Callable[[str], Any], every: int | None = None,
                 clock_: Callable[[], float] = time.monotonic):
        super().__init__()
        self.echo, self.every, self.clock = echo, every, clock_
        self.epoch, self.first_done = 0, 0.0  # when the epoch's first batch ended

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        steps = (self.params or {}).get("steps")
        every = self.every or every_for(steps)
        done = batch + 1
        if done == 1:
            self.first_done = self.clock()
        if done % every or (steps and done == steps):  # the epoch's end has Keras' own line
            return
        loss = (logs or {}).get("loss")
        seconds = self.clock() - self.first_done
        rate = (done - 1) / seconds if seconds > 0 else math.inf
        self.echo(batch_line(self.epoch, done, steps, rate, None if loss is None else float(loss)))
