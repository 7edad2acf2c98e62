"""The micrograph recipe: a grain map drawn as the general preset draws it, its true boundary
network as the label, rendered as an 8-bit gray etched micrograph (pipeline/render.py).

The grain map and the label take the same draws from stream 1 as the general recipe, so a
micrograph library's sample i shows the general library's grains and label of sample i wherever
that one is not a study sample (same seed and rates); the render draws from its own stream 5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..boundaries import draw_label
from ..grainmap import GENERAL, draw_grain_map, plan
from ..render import draw_render, render
from ..sample import Sample, SampleMeta, draw, split_of, stream

if TYPE_CHECKING:
    from ..config import GenerationConfig

STREAM_RENDER = 5  # part of the format


def make(config: GenerationConfig, seed: int, index: int, variant: str = "") -> Sample:
    """Sample `index` of a micrograph library: `micro` the rendered micrograph, `clean` its clean render.

    Its metadata: `dilation` is the label's line width, `erased_fraction` the share of the true
    boundary drawn faint (under a quarter of the groove depth: the gaps), `gap_patches` the number
    of faint stretches.
    """
    draws, rng = draw(config, seed, index)
    choices = plan(config, rng, GENERAL)
    drawn = draw_grain_map(config, draws, choices, rng, GENERAL)
    label = draw_label(drawn.grains, choices.width, choices.pockets, GENERAL.pocket_radius, rng)

    paint = np.random.default_rng(stream(seed, STREAM_RENDER, index))
    picture = render(drawn.grains, drawn.parents, label, choices.width, draw_render(paint), paint)

    meta = SampleMeta(
        seed=draws.polysim_seed, nucleation_rate=draws.nucleation_rate, growth_rate=draws.growth_rate,
        num_grains=drawn.count, avrami_exponent=drawn.avrami_exponent, dilation=choices.width,
        gap_patches=picture.faint_stretches, erased_fraction=picture.faint_fraction, split=split_of(seed, index),
    )
    return Sample(index=index, micro=picture.micro, label=label, grains=drawn.grains, meta=meta, clean=picture.clean)
