"""The `micrograph` preset: gray etched micrographs rendered over general grain maps."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from pipeline.config import PRESET_RATES, GenerationConfig
from pipeline.presets import PRESETS, make_sample, source_of
from pipeline.render import RANGES, draw_render, render
from pipeline.sample import BOUNDARY

MICRO_64 = GenerationConfig(size=64, preset="micrograph", **PRESET_RATES["micrograph"])
MICRO_256 = dataclasses.replace(MICRO_64, size=256)
GENERAL_256 = GenerationConfig(size=256, preset="general", **PRESET_RATES["general"])


def test_a_micrograph_sample_is_a_pure_function_of_config_seed_and_index():
    first, again, other = make_sample(MICRO_64, 4, 2), make_sample(MICRO_64, 4, 2), make_sample(MICRO_64, 4, 3)
    for name in ("micro", "label", "grains", "clean"):
        assert np.array_equal(first.image(name), again.image(name)), name
    assert first.meta == again.meta
    assert not np.array_equal(first.micro, other.micro)
    assert first.micro.dtype == first.clean.dtype == np.uint8 and len(np.unique(first.micro)) > 20  # gray


def test_micrograph_samples_are_byte_for_byte_those_of_their_first_release():
    """The bytes the 2026-12-06 micrograph library and its model were made with."""
    digest = hashlib.sha256()
    for config in (MICRO_64, MICRO_256):
        for i in range(4):
            s = make_sample(config, 3, i)
            for image in (s.micro, s.label, s.grains, s.clean):
                digest.update(image.tobytes())
            digest.update(repr(dataclasses.astuple(s.meta)).encode())
    assert digest.hexdigest() == "42ddd855c60a752c57fee48ea0bc3fecf97289c78b6b1a3c3c10b08abb6b0d22"


def test_the_render_draws_reach_every_documented_range():
    plans = [draw_render(np.random.default_rng([9, i])) for i in range(400)]
    for name in ("level", "contrast", "shading", "texture", "groove_depth", "groove_softness", "faint_share",
                 "faint_scale", "twin_contrast", "scratch_depth", "illumination", "vignetting", "blur", "noise",
                 "shot"):
        low, high = getattr(RANGES, name)
        values = [getattr(p, name) for p in plans]
        assert low <= min(values) < low + 0.05 * (high - low), name
        assert high - 0.05 * (high - low) < max(values) <= high, name
    for name in ("pits", "stains"):
        low, high = getattr(RANGES, name)
        assert min(getattr(p, name) for p in plans) == low and max(getattr(p, name) for p in plans) == high, name
    scratched = [p.scratches for p in plans if p.scratches]
    assert 0.5 < len(scratched) / len(plans) < 0.7
    assert min(scratched) == RANGES.scratches[0] and max(scratched) == RANGES.scratches[1]
    assert 0.1 < np.mean([p.inverted for p in plans]) < 0.2


def test_the_label_is_the_general_librarys_and_never_sees_the_render():
    """Where the general library's sample i is its own draw, the micrograph library's sample i has the
    same grains and label: scratches, pits and faint stretches never touch the truth."""
    own = [i for i in range(8) if source_of(GENERAL_256, 0, i).preset == "general"][:3]
    for i in own:
        micro, general = make_sample(MICRO_256, 0, i), make_sample(GENERAL_256, 0, i)
        assert np.array_equal(micro.label, general.label) and np.array_equal(micro.grains, general.grains)


def _scene(size: int = 128):
    grains = np.ones((size, size), np.uint16)
    grains[:, size // 2:] = 2
    label = np.full((size, size), 255, np.uint8)
    label[:, size // 2 - 1:size // 2 + 1] = BOUNDARY
    return grains, label


def test_the_clean_render_has_no_distractor_and_no_noise():
    grains, label = _scene()
    quiet = dataclasses.replace(draw_render(np.random.default_rng(1)), scratches=0, pits=0, stains=0, noise=0.0,
                                shot=0.0, blur=0.0, inverted=False)
    busy = dataclasses.replace(quiet, scratches=12, pits=40, stains=3, noise=14.0, shot=0.4)
    calm = render(grains, grains, label, 2, quiet, np.random.default_rng(5))
    noisy = render(grains, grains, label, 2, busy, np.random.default_rng(5))
    assert np.array_equal(calm.clean, noisy.clean)  # the same clean render whatever the distractors and noise
    assert np.array_equal(calm.micro, calm.clean)  # nothing to add: the micrograph is its clean render
    assert np.abs(noisy.micro.astype(int) - noisy.clean).mean() > 3


def test_grooves_are_dark_on_the_true_boundary_and_inverted_renders_bright():
    grains, label = _scene()
    plan = dataclasses.replace(draw_render(np.random.default_rng(2)), scratches=0, pits=0, stains=0, noise=1.0,
                               shot=0.0, faint_share=0.05, groove_depth=80.0, contrast=2.0, inverted=False)
    picture = render(grains, grains, label, 2, plan, np.random.default_rng(3)).clean.astype(float)
    on, off = picture[label == BOUNDARY].mean(), picture[label != BOUNDARY].mean()
    assert on < off - 30
    flipped = render(grains, grains, label, 2, dataclasses.replace(plan, inverted=True), np.random.default_rng(3))
    assert np.array_equal(flipped.clean, 255 - picture.astype(np.uint8))


def test_the_table_names_the_micrograph_preset_with_its_clean_render():
    assert PRESETS["micrograph"].images == ("micro", "label", "grains", "clean")
    assert PRESETS["micrograph"].mix is None  # every sample rendered


def test_a_micrograph_store_keeps_the_clean_render_and_verify_checks_it(run_cli, tmp_path):
    out = tmp_path / "m.zarr"
    result = run_cli("generate", "--preset", "micrograph", "--count", "8", "--size", "64", "--out", out,
                     "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    info = run_cli("info", out)
    assert "preset micrograph" in info.output, info.output
    from pipeline.store import LibraryStore

    store = LibraryStore.open(out)
    assert store.images == ("micro", "label", "grains", "clean") and store.recorded_crcs().shape == (8, 4)
    for i in (0, 5):
        expected = make_sample(MICRO_64, 0, i)
        for name in ("micro", "label", "clean"):
            assert np.array_equal(store.read(name, i), expected.image(name)), name
    assert run_cli("verify", out).exit_code == 0
    exported = run_cli("export", out, "--out", tmp_path / "png", "--count", "2")
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in (tmp_path / "png" / "clean").iterdir()) == ["0.png", "1.png"]
    shard = store.shard_file("clean", 3)
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF  # a flipped byte inside the shard's first chunk
    shard.write_bytes(bytes(data))
    damaged = run_cli("verify", out)
    assert damaged.exit_code != 0 and "clean" in damaged.output, damaged.output
