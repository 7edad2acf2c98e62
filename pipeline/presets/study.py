"""The study's recipe (docs/store.md): polySim grain structure, 2-px ground-truth boundaries from
the 4-neighbour Laplacian of the grain-id map, square patches replaced by their Gaussian blur,
Otsu binarisation, one square dilation of the boundaries of both images."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..boundaries import boundaries, thicken
from ..gaps import blurred_fragments
from ..polysim import simulate
from ..sample import Sample, SampleMeta, draw, erased_fraction, split_of

if TYPE_CHECKING:
    from ..config import GenerationConfig


def make(config: GenerationConfig, seed: int, index: int, variant: str = "") -> Sample:
    """Sample `index` of the study's library defined by (config, seed)."""
    draws, rng = draw(config, seed, index)
    structure = simulate(config.size, draws.nucleation_rate, draws.growth_rate, config.height, draws.polysim_seed)

    label = boundaries(structure.grains)
    micro, patches = blurred_fragments(label, rng, config)
    micro, label = thicken(micro, draws.dilation), thicken(label, draws.dilation)

    meta = SampleMeta(
        seed=draws.polysim_seed,
        nucleation_rate=draws.nucleation_rate,
        growth_rate=draws.growth_rate,
        num_grains=structure.num_grains,
        avrami_exponent=structure.avrami_exponent,
        dilation=draws.dilation,
        gap_patches=patches,
        erased_fraction=float(erased_fraction(micro, label)),
        split=split_of(seed, index),
    )
    return Sample(index=index, micro=micro, label=label, grains=structure.grains, meta=meta)
