"""The generalisation benchmark's sets: deterministic per (seed, set, image) and labels left true."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import generalisation as gen  # noqa: E402
from pipeline.config import GenerationConfig  # noqa: E402
from pipeline.sample import boundaries, erased_fraction, make_sample, thicken  # noqa: E402

CONFIG = GenerationConfig(size=128)  # small images: every maker runs in milliseconds


@pytest.fixture(scope="module")
def sources() -> list[gen.Source]:
    """Three library samples standing in for a test split."""
    samples = [make_sample(CONFIG, 7, i) for i in range(3)]
    return [gen.Source(s.micro, s.label, s.grains, s.meta.dilation) for s in samples]


def _set(name: str, sources: list[gen.Source], seed: int = 0, count: int = 4) -> list[gen.Pair]:
    return list(gen.make_set(name, sources, CONFIG, seed, count))


@pytest.mark.parametrize("name", list(gen.SET_STREAMS))
def test_a_set_is_the_same_for_the_same_seed_and_differs_for_another(name, sources):
    first, again, other = _set(name, sources), _set(name, sources), _set(name, sources, seed=1)
    for a, b in zip(first, again):
        assert np.array_equal(a.micro, b.micro) and np.array_equal(a.label, b.label)
    changed = any(not np.array_equal(a.micro, b.micro) for a, b in zip(first, other))
    assert changed == (name != "library")  # the library set is the stored test split itself


@pytest.mark.parametrize("name", list(gen.SET_STREAMS))
def test_an_image_does_not_depend_on_the_set_size(name, sources):
    short, long = _set(name, sources, count=2), _set(name, sources, count=4)
    for a, b in zip(short, long):
        assert np.array_equal(a.micro, b.micro) and np.array_equal(a.label, b.label)


@pytest.mark.parametrize("name", list(gen.SET_STREAMS))
def test_the_label_is_the_true_boundary_of_its_own_grain_map_and_the_input_has_gaps(name, sources):
    pairs = _set(name, sources)
    for pair in pairs:
        assert pair.micro.dtype == np.uint8 and pair.micro.shape == (CONFIG.size, CONFIG.size)
        assert set(np.unique(pair.micro)) <= {0, 255}
        thin = boundaries(pair.grains)
        assert any(np.array_equal(pair.label, thicken(thin, d)) for d in CONFIG.dilations)
    # A 128 px coarse image may hold a single boundary that no patch hits: gaps are a property of the set.
    assert sum(erased_fraction(p.micro, p.label) for p in pairs) > 0


@pytest.mark.parametrize("name", ["sharp-cuts", "faded", "noisy"])
def test_sets_made_from_the_test_split_keep_its_label_unchanged(name, sources):
    for k, pair in enumerate(_set(name, sources, count=3)):
        assert np.array_equal(pair.label, sources[k].label)
        assert not np.array_equal(pair.micro, sources[k].micro)


def test_the_library_set_is_capped_at_the_split_and_the_others_cycle_over_it(sources):
    assert len(_set("library", sources, count=5)) == len(sources)
    cycled = _set("coarse", sources, count=5)
    assert len(cycled) == 5 and not np.array_equal(cycled[0].micro, cycled[3].micro)


def test_sharp_cuts_leave_no_gray_and_no_blur_only_whole_erasures(sources):
    for pair in _set("sharp-cuts", sources):
        # Cuts only erase: every input boundary pixel is a true boundary pixel.
        assert not np.any((pair.micro == 0) & (pair.label == 255))
