"""The frozen description of how every sample of a library is made."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .presets import PRESETS as _TABLE, STUDY_DILATIONS, STUDY_RATES

TASKS = ("reconstruction",)
# Named ways of making a sample, in the one table of pipeline/presets/__init__.py.
PRESETS = tuple(_TABLE)
# polySim rates of each preset when none are given (the study's are the defaults below).
PRESET_RATES = {name: preset.rates for name, preset in _TABLE.items() if preset.rates}
MIN_SIZE = 64
# One sample of this side is 4.3 gigapixels (about 170 GB of working memory); a larger one overflows
# the float arithmetic of the method's size-scaled parameters (`--size` with 400 digits: a traceback).
MAX_SIZE = 65536
# The store records each sample's drawn rates as uint16 (pipeline/store.py, META_ARRAYS).
MAX_RATE = 65535


class ConfigError(ValueError):
    """A generation setting that cannot produce a valid library."""


@dataclass(frozen=True)
class GenerationConfig:
    """Method parameters of the study (defaults) at image size `size`.

    Ranges are inclusive integer ranges. Patch counts and sides given as None follow the
    study's scaling with the image size (see `patch_count_range` and `patch_side_range`).
    """

    size: int = 512
    task: str = "reconstruction"
    nucleation_rate: tuple[int, int] = STUDY_RATES["nucleation_rate"]  # type: ignore[assignment]
    growth_rate: tuple[int, int] = STUDY_RATES["growth_rate"]  # type: ignore[assignment]
    height: int = 300
    patch_count: tuple[int, int] | None = None
    patch_side: tuple[int, int] | None = None
    blur_sigma: float = 20.0
    dilations: tuple[int, ...] = STUDY_DILATIONS
    # One of PRESETS (pipeline/presets/): "study" (the default) makes the study's samples; the
    # others draw widths themselves and use `dilations` only for the study samples they mix in.
    preset: str = "study"

    def __post_init__(self) -> None:
        # JSON round trips give lists; keep the frozen object hashable and comparable.
        for name in ("nucleation_rate", "growth_rate", "patch_count", "patch_side", "dilations"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(v) for v in value))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for settings polySim or the fragmentation cannot handle."""
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}: choose from {', '.join(PRESETS)}")
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}: only {', '.join(TASKS)} is available")
        if self.size < MIN_SIZE:
            raise ConfigError(f"size must be at least {MIN_SIZE} px, got {self.size}")
        if self.size > MAX_SIZE:
            raise ConfigError(f"size must be at most {MAX_SIZE} px, got {self.size}")
        # polySim never fills the image (loops forever) when a rate is zero.
        _check_range("nucleation rate", self.nucleation_rate, low=1, high=MAX_RATE)
        _check_range("growth rate", self.growth_rate, low=1, high=MAX_RATE)
        _check_range("patch count", self.patch_count_range, low=0)
        _check_range("patch side", self.patch_side_range, low=1)
        if self.patch_side_range[1] > self.size:
            raise ConfigError(f"patch side {self.patch_side_range[1]} exceeds the image size {self.size}")
        if self.height < 2:
            raise ConfigError(f"height must be at least 2, got {self.height}")
        if not self.blur_sigma > 0:
            raise ConfigError(f"blur sigma must be > 0, got {self.blur_sigma}")
        if not self.dilations or min(self.dilations) < 1 or any(d % 2 == 0 for d in self.dilations):
            raise ConfigError(f"dilations must be odd kernel sides >= 1, got {list(self.dilations)}")

    def check_makes_boundaries(self) -> None:
        """ConfigError if the growth rates can give single-grain samples only (no boundary at all).

        Not part of `validate`: stores generated before this check still open.
        """
        limit = max_growth_rate(self.size, self.height)
        if self.growth_rate[1] > limit:
            raise ConfigError(
                f"growth rate {self.growth_rate[1]} gives {self.size} px samples of one grain and no boundary: from "
                f"{limit + 1} on, polySim's first grain fills the image in its first step; use at most {limit} "
                f"at {self.size} px")

    @property
    def patch_count_range(self) -> tuple[int, int]:
        """Number of blurred patches per image: the study's [30, 100] at 512 px, scaled."""
        if self.patch_count is not None:
            return self.patch_count
        return int(30 * self.size / 512), int(100 * self.size / 512)

    @property
    def patch_side_range(self) -> tuple[int, int]:
        """Side of a blurred patch: the study's [max(5, 2%), max(10, 8%)] of the image size."""
        if self.patch_side is not None:
            return self.patch_side
        return max(5, int(0.02 * self.size)), max(10, int(0.08 * self.size))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the resolved patch ranges written out."""
        fields = dataclasses.asdict(self)
        fields["patch_count"] = list(self.patch_count_range)
        fields["patch_side"] = list(self.patch_side_range)
        if self.preset == "study":  # stores made before presets existed read as the study's
            del fields["preset"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> GenerationConfig:
        """Inverse of `to_dict`; unknown keys are an error (a store from a newer version)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return cls(**fields)

    def differences(self, other: GenerationConfig) -> list[str]:
        """Names of the fields whose resolved values differ between two configs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [name for name in {**mine, **theirs} if mine.get(name, "study") != theirs.get(name, "study")]


def max_growth_rate(size: int, height: int) -> int:
    """The largest polySim growth rate that can still leave two grains on a size x size image.

    polySim grows every nucleus's diameter by the rate at each step, and draws a nucleus where the
    section (at half the height) cuts it. The first nucleus is always accepted and drawn first, at
    most height / 2 from the section: after step one its disk has a radius of at least
    sqrt((rate / 2)^2 - (height / 2)^2). Once that reaches the image's diagonal, sqrt(2) x size,
    it covers every pixel before any other grain is drawn (at 64 px and height 300: from 351 on).
    """
    return math.ceil(2 * math.hypot(math.sqrt(2) * size, height / 2)) - 1


def _check_range(name: str, bounds: tuple[int, int], low: int, high: int | None = None) -> None:
    if len(bounds) != 2:
        raise ConfigError(f"{name} must be a (min, max) pair, got {list(bounds)}")
    lo, hi = bounds
    if lo < low:
        raise ConfigError(f"{name} must be >= {low}, got min {lo}")
    if high is not None and hi > high:
        raise ConfigError(f"{name} must be <= {high}, got max {hi}")
    if lo > hi:
        raise ConfigError(f"{name} min {lo} is greater than max {hi}")
