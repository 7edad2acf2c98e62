"""The `general` generation preset: deterministic draws over their documented ranges."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pipeline.config import ConfigError, GenerationConfig
from pipeline.boundaries import draw_label, line_of
from pipeline.gaps import GAP_STYLES
from pipeline.grainmap import ALIGNED, add_twins, merge_grains, plan, relabel
from pipeline.presets import PRESETS, make_sample, source_of
from pipeline.sample import BOUNDARY, draw

GENERAL_64 = GenerationConfig(size=64, preset="general", nucleation_rate=(5, 60), growth_rate=(1, 8))


def plans(config: GenerationConfig, count: int, seed: int = 0):
    """Each sample's own plan, or None where it is a study sample."""
    return [None if source_of(config, seed, i).preset == "study" else plan(config, draw(config, seed, i)[1])
            for i in range(count)]


def test_a_general_sample_is_a_pure_function_of_config_seed_and_index():
    for i in (0, 1, 5):
        first, second = make_sample(GENERAL_64, 4, i), make_sample(GENERAL_64, 4, i)
        for name in ("micro", "label", "grains"):
            assert np.array_equal(getattr(first, name), getattr(second, name)), name
        assert first.meta == second.meta
    assert not np.array_equal(make_sample(GENERAL_64, 4, 0).label, make_sample(GENERAL_64, 5, 0).label)


def test_the_plans_reach_every_documented_range():
    config = dataclasses.replace(GENERAL_64, size=512)
    drawn = plans(config, 400)
    general = [p for p in drawn if p is not None]
    assert 0.18 < 1 - len(general) / len(drawn) < 0.32  # a quarter are study samples
    zooms = [p.shape.zoom for p in general if p.shape.stretch == 1.0]
    assert min(zooms) < 0.6 and max(zooms) > 2.2 and all(0.5 <= z <= 2.5 for z in zooms)
    stretches = [p.shape.stretch for p in general if p.shape.stretch != 1.0]
    assert 0.4 < len(stretches) / len(general) < 0.6 and min(stretches) < 1.7 and max(stretches) > 3.7
    assert {p.width for p in general} == set(range(1, 7))
    assert {p.style for p in general} == set(GAP_STYLES)
    assert min(p.pockets for p in general) <= 2 and max(p.pockets for p in general) >= 38
    assert 0.3 < np.mean([p.twinned_grains > 0 for p in general]) < 0.5
    assert 0.4 < np.mean([p.noise for p in general]) < 0.6
    for p in general:  # the simulated map never exceeds twice the image side
        assert p.shape.source_side(512) <= 2 * 512 + 1


def test_mean_grain_areas_span_more_than_ten_times_across_samples():
    config = dataclasses.replace(GENERAL_64, size=256)
    areas = [256 * 256 / make_sample(config, 0, i).meta.num_grains for i in range(40)]
    assert max(areas) / min(areas) > 10


def test_general_samples_have_the_drawn_width_and_the_study_share_is_the_study_library():
    study = GenerationConfig(size=64)
    for i, choice in enumerate(plans(GENERAL_64, 12)):
        sample = make_sample(GENERAL_64, 0, i)
        if choice is None:
            expected = make_sample(study, 0, i)
            assert np.array_equal(sample.micro, expected.micro) and sample.meta == expected.meta
        else:
            assert sample.meta.dilation == choice.width
            assert sample.grains.max() == sample.meta.num_grains


def test_the_label_is_a_line_of_the_drawn_width_between_every_two_grains():
    grains = np.ones((20, 20), np.uint16)
    grains[:, 10:] = 2
    for width in range(1, 7):
        label = draw_label(grains, width, 0, (1, 4), np.random.default_rng(0))
        assert (label[5] == BOUNDARY).sum() == width  # a vertical line `width` px wide


def test_merges_join_neighbours_and_twins_add_straight_bands():
    grains = np.repeat(np.repeat(np.arange(1, 17, dtype=np.uint16).reshape(4, 4), 16, 0), 16, 1)  # 16 squares
    merged, count = relabel(merge_grains(grains, 0.5, np.random.default_rng(1)))
    assert 8 <= count < 16  # each merge joins two 4-adjacent squares (chains may join more)
    twinned, count = relabel(add_twins(grains, 1.0, (4, 4), np.random.default_rng(2)))
    assert count > 16 and line_of(twinned).sum() > line_of(grains).sum()


def test_an_unknown_preset_is_refused_and_the_default_config_has_no_preset_key():
    with pytest.raises(ConfigError, match="unknown preset 'fancy'"):
        GenerationConfig(preset="fancy")
    assert "preset" not in GenerationConfig().to_dict()
    assert GenerationConfig.from_dict(GENERAL_64.to_dict()).to_dict() == GENERAL_64.to_dict()
    assert GenerationConfig(size=64).differences(GENERAL_64) == ["nucleation_rate", "growth_rate", "preset"]


def test_generate_preset_general_writes_the_preset_into_the_store_and_info_prints_it(run_cli, tmp_path):
    out = tmp_path / "g.zarr"
    result = run_cli("generate", "--preset", "general", "--count", "6", "--size", "64", "--out", out,
                     "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    info = run_cli("info", out)
    assert "preset general" in info.output and '"preset": "general"' in info.output
    from pipeline.store import LibraryStore

    store = LibraryStore.open(out)
    assert store.config.to_dict() == GENERAL_64.to_dict()
    assert np.array_equal(store.read("label", 3), make_sample(GENERAL_64, 0, 3).label)
    assert math.isclose(PRESETS["general"].mix.share, 0.25)


ALIGNED_64 = GenerationConfig(size=64, preset="aligned", nucleation_rate=(40, 120), growth_rate=(1, 8))


def test_half_of_an_aligned_library_is_the_general_library_and_the_rest_is_stretched_small_grains():
    own = [i for i in range(400) if source_of(ALIGNED_64, 0, i).preset == "aligned"]
    assert 0.42 < len(own) / 400 < 0.58
    for i in range(8):
        sample, general = make_sample(ALIGNED_64, 0, i), make_sample(GENERAL_64, 0, i)
        same = all(np.array_equal(getattr(sample, n), getattr(general, n)) for n in ("micro", "label", "grains"))
        assert same == (i not in own), i
    config = dataclasses.replace(ALIGNED_64, size=512)
    drawn = [plan(config, draw(config, 0, i)[1], ALIGNED) for i in own]
    assert not any(source_of(config, 0, i).preset == "study" for i in own)
    assert all(2.0 <= p.shape.stretch <= 5.0 for p in drawn)
    assert min(p.shape.stretch for p in drawn) < 2.2 and max(p.shape.stretch for p in drawn) > 4.8
    assert all(p.shape.source_side(512) <= 3 * 512 + 1 for p in drawn)
    assert {p.width for p in drawn} == set(range(1, 7)) and {p.style for p in drawn} == set(GAP_STYLES)
    assert all(p.merge_share <= 0.15 for p in drawn)


def test_aligned_samples_hold_more_grains_than_general_ones():
    aligned = dataclasses.replace(ALIGNED_64, size=256)
    own = [i for i in range(24) if source_of(aligned, 0, i).preset == "aligned"][:8]
    counts = [make_sample(aligned, 0, i).meta.num_grains for i in own]
    general = [make_sample(dataclasses.replace(GENERAL_64, size=256), 0, i).meta.num_grains for i in own]
    assert np.median(counts) > 1.5 * np.median(general)
    assert make_sample(aligned, 0, own[0]).meta == make_sample(aligned, 0, own[0]).meta


def test_generate_preset_aligned_uses_its_own_rates_by_default(run_cli, tmp_path):
    out = tmp_path / "a.zarr"
    result = run_cli("generate", "--preset", "aligned", "--count", "4", "--size", "64", "--out", out,
                     "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "preset aligned" in run_cli("info", out).output
    from pipeline.store import LibraryStore

    store = LibraryStore.open(out)
    assert store.config.to_dict() == ALIGNED_64.to_dict()
    assert np.array_equal(store.read("micro", 2), make_sample(ALIGNED_64, 0, 2).micro)


def test_general_and_aligned_samples_are_byte_for_byte_those_of_main_before_the_presets_moved():
    """The presets' recipes moved to pipeline/presets/ (issue 31): digests made by main at a35819b."""
    import hashlib

    expected = {"general": "f81ebbc4c181bb6f35ee8ab0735706251da827a9a5cbdd6cca0b2d84c150c6fc",
                "aligned": "9c6ceee1462e9b5f5a8dbf7a8ec850bb06f9498cebc063aba5aa2cea6280a66c"}
    for preset, hexdigest in expected.items():
        digest = hashlib.sha256()
        for size in (64, 256):
            config = GenerationConfig(size=size, preset=preset, **PRESETS[preset].rates)
            for i in range(6):
                s = make_sample(config, 3, i)
                for image in (s.micro, s.label, s.grains):
                    digest.update(image.tobytes())
                digest.update(repr(dataclasses.astuple(s.meta)).encode())
        assert digest.hexdigest() == hexdigest, preset
