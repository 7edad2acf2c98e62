"""The presets: named recipes that make sample i of a library, and the one table that names them.

A preset is a recipe (a module of this package with `make(config, seed, index, variant)`, a pure
function of its arguments) plus what the table says about it: its variant, its default polySim
rates, its image arrays, and the other preset whose samples it mixes in. `generate --preset`,
`info`, the store's provenance and docs/store.md all read this table.

Layers (each imports only those below it; a recipe never imports another recipe nor this table):
    this table                pipeline/presets/__init__.py
    recipes                   pipeline/presets/{study,general,micrograph}.py
    primitives                pipeline/{grainmap,boundaries,gaps,render,polysim}.py
    the sample and its draws  pipeline/sample.py
The table loads a recipe by its module name when a sample is made, so importing it (as
pipeline/config.py does, to validate a preset's name) loads no recipe.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sample import Sample, uniform

if TYPE_CHECKING:
    from ..config import GenerationConfig

# The study's polySim rates and dilations: the defaults of GenerationConfig.
STUDY_RATES: dict[str, tuple[int, ...]] = {"nucleation_rate": (10, 20), "growth_rate": (1, 3)}
STUDY_DILATIONS = (1, 3)
GENERAL_RATES: dict[str, tuple[int, ...]] = {"nucleation_rate": (5, 60), "growth_rate": (1, 8)}
# The image arrays of a boundary-map sample, and of a micrograph sample (its clean render too).
BOUNDARY_IMAGES = ("micro", "label", "grains")
MICROGRAPH_IMAGES = (*BOUNDARY_IMAGES, "clean")


@dataclass(frozen=True)
class Mix:
    """Some of a preset's samples are another preset's sample i: those whose own draw in `stream` is < `share`."""

    preset: str
    share: float
    stream: int  # part of the format: the random stream of the choice
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields of the other preset's samples


@dataclass(frozen=True)
class Preset:
    """One row of the table."""

    name: str
    summary: str  # one line, for --help, info and docs/store.md
    recipe: str  # module of this package that makes the samples
    variant: str = ""  # handed to the recipe (which ranges it draws from)
    rates: dict[str, tuple[int, ...]] = field(default_factory=dict)  # default polySim rates, when not the study's
    images: tuple[str, ...] = BOUNDARY_IMAGES
    mix: Mix | None = None


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset("study", "the study's method: polySim at its rates, blurred square gaps, Otsu", recipe="study"),
    Preset("general", "varied grain maps (zoom, stretch, merges, twins), widths 1-6 px, four gap styles, noise; "
           "a quarter of the samples the study's", recipe="general", variant="general", rates=GENERAL_RATES,
           mix=Mix("study", 0.25, stream=3, overrides={**STUDY_RATES, "dilations": STUDY_DILATIONS})),
    Preset("aligned", "half the general library, half elongated aligned small grains", recipe="general",
           variant="aligned", rates={"nucleation_rate": (40, 120), "growth_rate": (1, 8)},
           mix=Mix("general", 0.5, stream=4, overrides=GENERAL_RATES)),
    Preset("micrograph", "general grain maps rendered as 8-bit gray etched micrographs (grooves, twins, scratches, "
           "pits, illumination, blur, noise); with the clean render", recipe="micrograph", rates=GENERAL_RATES,
           images=MICROGRAPH_IMAGES),
)}


def source_of(config: GenerationConfig, seed: int, index: int) -> GenerationConfig:
    """The config whose own recipe makes sample `index`: `config`, or that of the preset mixed in."""
    preset = PRESETS[config.preset]
    while preset.mix is not None and uniform(seed, preset.mix.stream, index) < preset.mix.share:
        config = dataclasses.replace(config, preset=preset.mix.preset, **preset.mix.overrides)
        preset = PRESETS[config.preset]
    return config


def make_sample(config: GenerationConfig, seed: int, index: int) -> Sample:
    """Build sample `index` of the library defined by (config, seed)."""
    config = source_of(config, seed, index)
    preset = PRESETS[config.preset]
    recipe = importlib.import_module(f"{__name__}.{preset.recipe}")
    return recipe.make(config, seed, index, preset.variant)
