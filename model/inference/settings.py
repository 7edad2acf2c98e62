"""Inference settings that travel with a model: chosen on the validation split, stored beside it.

A model `M.keras` may have `M.settings.json` next to it, written by `train` at the end of a run
(or by `tune`): the decision threshold, the link threshold, the speck filter, whether
test-time augmentation is used and whether the bridge follows the model when no method is named. `predict` and `evaluate` use these unless told otherwise; a model without the file gets
the defaults below. No code is loaded from the file: it is plain JSON, checked field by field.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.store import atomic_write

SUFFIX = ".settings.json"


class SettingsError(ValueError):
    """A settings file that cannot be used. One line."""


@dataclass(frozen=True)
class InferenceSettings:
    """How a model's background probability becomes a boundary image."""

    threshold: float = 0.5  # P(background) at or above this is background
    link_threshold: float | None = None  # centre line of the reading at this threshold joins the boundary
    min_speck: int = 0  # boundary components smaller than this (px) touching no other boundary are removed
    tta: bool = False  # mean over the 8 dihedral transforms
    bridge: bool = False  # the model's mask is followed by the bridge (the method used when none is given)
    chosen_on: str = "defaults"  # where the values come from, e.g. "val split of STORE (N samples)"
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the sweep that chose them

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise SettingsError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.link_threshold is not None and not 0.0 <= float(self.link_threshold) <= 1.0:
            raise SettingsError(f"link_threshold must be in [0, 1] or null, got {self.link_threshold}")
        if int(self.min_speck) < 0:
            raise SettingsError(f"min_speck must be >= 0, got {self.min_speck}")

    def describe(self) -> str:
        """One phrase, e.g. `threshold 0.5, link threshold 0.95, speck filter 0 px, test-time augmentation off`."""
        link = "off" if self.link_threshold is None else f"{self.link_threshold:g}"
        return (f"threshold {self.threshold:g}, link threshold {link}, speck filter {self.min_speck} px, "
                f"test-time augmentation {'on' if self.tta else 'off'}, bridge after {'on' if self.bridge else 'off'}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settings_path(model_path: str | os.PathLike[str]) -> Path:
    """Where the settings of `model_path` live: `M.keras` -> `M.settings.json`."""
    path = Path(model_path)
    return path.with_name(path.stem + SUFFIX)


def load_settings(model_path: str | os.PathLike[str]) -> InferenceSettings:
    """The settings stored beside `model_path`, or the defaults when there are none."""
    path = settings_path(model_path)
    if not path.is_file():
        return InferenceSettings()
    try:
        record = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(InferenceSettings)}
        if not isinstance(record, dict) or not set(record) <= known:
            raise SettingsError(f"unexpected fields {sorted(set(record) - known)}")
        link = record.get("link_threshold")
        return InferenceSettings(threshold=float(record.get("threshold", 0.5)),
                                 link_threshold=None if link is None else float(link),
                                 min_speck=int(record.get("min_speck", 0)), tta=bool(record.get("tta", False)),
                                 bridge=bool(record.get("bridge", False)),
                                 chosen_on=str(record.get("chosen_on", "defaults")),
                                 details=dict(record.get("details", {})))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise SettingsError(f"{path}: not a usable settings file ({error})") from None


def save_settings(model_path: str | os.PathLike[str], settings: InferenceSettings) -> Path:
    """Write `settings` beside `model_path` (atomically); returns the file's path."""
    path = settings_path(model_path)
    atomic_write(path, (json.dumps(settings.to_dict(), indent=2) + "\n").encode())
    return path
