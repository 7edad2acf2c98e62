"""Tasks that kill the worker process running them (workers import this module by name)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.executors import DaskExecutor


class KillingTask:
    """Wraps a block task: kills its own process when it meets sample `victim`.

    With `once`, only the first attempt dies (a marker file remembers it), so a retry succeeds.
    """

    def __init__(self, function: Callable[[Any], Any], victim: int, marker: Path, once: bool):
        self.function, self.victim, self.marker, self.once = function, victim, marker, once

    def __call__(self, block: Any) -> Any:
        if block.start <= self.victim < block.stop and not (self.once and self.marker.exists()):
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.function(block)


class KillingExecutor(DaskExecutor):
    """A local Dask executor whose tasks kill their worker at sample `victim`."""

    def __init__(self, victim: int, marker: Path, once: bool, **kwargs: Any):
        super().__init__(**kwargs)
        self.victim, self.marker, self.once = victim, marker, once

    def map(self, function, items, on_result):  # type: ignore[no-untyped-def]
        super().map(KillingTask(function, self.victim, self.marker, self.once), items, on_result)
