"""The trained model that ships with the project (see README.md in this folder: its model card)."""

from __future__ import annotations

import os
from pathlib import Path

# The bundled models; the validation-chosen inference settings of each lie beside it
# (model.inference.settings). BUNDLED_MODEL reads binary boundary maps; MICROGRAPH_MODEL reads gray
# micrographs as they are (trained on the micrograph preset's library; its card: README.md).
BUNDLED_MODEL = Path(__file__).with_name("reconstruction_gb.keras")
MICROGRAPH_MODEL = Path(__file__).with_name("reconstruction_gb_micrograph.keras")


class NoModelError(ValueError):
    """No --model was given and no bundled model is installed. One line."""


def resolve_model(path: str | os.PathLike[str] | None) -> Path:
    """`path` when given, else the bundled model; NoModelError when neither exists."""
    if path is not None:
        return Path(path)
    if BUNDLED_MODEL.is_file():
        return BUNDLED_MODEL
    raise NoModelError(f"no --model given and no bundled model at {BUNDLED_MODEL}; "
                       "pass --model PATH (a .keras file written by `train`)")
