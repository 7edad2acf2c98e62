"""Attention U-Net, training, evaluation and inference (TensorFlow lives here, never in pipeline/)."""

from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Import TensorFlow with its native start-up notes (CPU features, oneDNN) kept off stderr.

    TF_CPP_MIN_LOG_LEVEL only works when set before the interpreter starts, so the CLI
    instead discards file descriptor 2 while the native libraries load. Python errors raised
    by the import still reach the user: they are reported after stderr is restored.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
