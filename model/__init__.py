"""Attention U-Net, training, evaluation and inference (TensorFlow lives here, never in pipeline/)."""

from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Import TensorFlow with its native log lines kept off stderr.

    Two sources: notes printed while the native libraries load (CPU features, oneDNN), before
    TensorFlow's logger reads any setting, so file descriptor 2 is discarded during the import;
    and lines logged while graphs run, such as the once-per-run `E0000 ... oneDNN supports
    DT_INT32 only on platforms with AVX-512` (a notice, not an error), which only
    TF_CPP_MIN_LOG_LEVEL=3 silences. It is read when TensorFlow loads, so it is set here, unless
    the environment already sets it (TF_CPP_MIN_LOG_LEVEL=0 shows everything). Turning oneDNN off
    (TF_ENABLE_ONEDNN_OPTS=0) would also silence it but doubles a CPU training step. Python errors
    raised by the import still reach the user: they are reported after stderr is restored.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
