"""The general recipe: a grain map drawn the general way (pipeline/grainmap.py), its boundaries
1-6 px wide with pockets at triple junctions, one gap style, then binarisation noise (etch pits,
porous lines) in the input only. Variant `general` draws from GENERAL's ranges, `aligned` from
ALIGNED's (elongated, aligned small grains)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..boundaries import draw_label, line_of
from ..gaps import NOISE_BLOBS, NOISE_PEPPER, NOISE_POROSITY, fragment_in_style, speckle
from ..grainmap import ALIGNED, GENERAL, draw_grain_map, plan
from ..sample import Sample, SampleMeta, draw, erased_fraction, split_of

if TYPE_CHECKING:
    from ..config import GenerationConfig

RANGES = {"general": GENERAL, "aligned": ALIGNED}


def make(config: GenerationConfig, seed: int, index: int, variant: str = "general") -> Sample:
    """Sample `index` of a general (or aligned) library's own draws."""
    ranges = RANGES[variant]
    draws, rng = draw(config, seed, index)
    choices = plan(config, rng, ranges)
    drawn = draw_grain_map(config, draws, choices, rng, ranges)

    label = draw_label(drawn.grains, choices.width, choices.pockets, ranges.pocket_radius, rng)
    micro, gaps = fragment_in_style(label, line_of(drawn.grains), choices.style, config, choices.width, rng)
    if choices.noise:
        micro = speckle(micro, rng, NOISE_PEPPER, NOISE_POROSITY, NOISE_BLOBS)

    meta = SampleMeta(
        seed=draws.polysim_seed, nucleation_rate=draws.nucleation_rate, growth_rate=draws.growth_rate,
        num_grains=drawn.count, avrami_exponent=drawn.avrami_exponent, dilation=choices.width, gap_patches=gaps,
        erased_fraction=float(erased_fraction(micro, label)), split=split_of(seed, index),
    )
    return Sample(index=index, micro=micro, label=label, grains=drawn.grains, meta=meta)
