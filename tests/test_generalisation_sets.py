"""The generalisation benchmark's sets: deterministic per (seed, set, image) and labels left true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import generalisation as gen  # noqa: E402
import independent_sets as ind  # noqa: E402
from pipeline.config import GenerationConfig  # noqa: E402
from pipeline.boundaries import boundaries, thicken  # noqa: E402
from pipeline.presets import make_sample  # noqa: E402
from pipeline.sample import erased_fraction  # noqa: E402

CONFIG = GenerationConfig(size=128)  # small images: every maker runs in milliseconds
POLYSIM_SETS = [name for name in gen.SET_STREAMS if name not in ind.STREAMS]
NEEDS_MSP = pytest.mark.skipif(not ind.msp_available(), reason="MicroStructPy is a benchmark-only dependency, "
                               "not installed here (benchmarks/requirements.txt)")
NEEDS_NIST = pytest.mark.skipif(not ind.NIST_DIR.is_dir(), reason=f"NIST's images are not at {ind.NIST_DIR}")
# Sets whose images change with the seed, made here in milliseconds (the MicroStructPy ones take seconds).
SEEDED_SETS = [*POLYSIM_SETS, pytest.param("nist-steel", marks=NEEDS_NIST)]


@pytest.fixture(scope="module")
def sources() -> list[gen.Source]:
    """Three library samples standing in for a test split."""
    samples = [make_sample(CONFIG, 7, i) for i in range(3)]
    return [gen.Source(s.micro, s.label, s.grains, s.meta.dilation) for s in samples]


def _set(name: str, sources: list[gen.Source], seed: int = 0, count: int = 4) -> list[gen.Pair]:
    return list(gen.make_set(name, sources, CONFIG, seed, count))


@pytest.mark.parametrize("name", SEEDED_SETS)
def test_a_set_is_the_same_for_the_same_seed_and_differs_for_another(name, sources):
    first, again, other = _set(name, sources), _set(name, sources), _set(name, sources, seed=1)
    for a, b in zip(first, again):
        assert np.array_equal(a.micro, b.micro) and np.array_equal(a.label, b.label)
    changed = any(not np.array_equal(a.micro, b.micro) for a, b in zip(first, other))
    assert changed == (name != "library")  # the library set is the stored test split itself


@pytest.mark.parametrize("name", SEEDED_SETS)
def test_an_image_does_not_depend_on_the_set_size(name, sources):
    short, long = _set(name, sources, count=2), _set(name, sources, count=4)
    for a, b in zip(short, long):
        assert np.array_equal(a.micro, b.micro) and np.array_equal(a.label, b.label)


@pytest.mark.parametrize("name", POLYSIM_SETS)
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


# --- sets no polySim run could make (benchmarks/independent_sets.py) ------------------------
def test_lines_are_one_pixel_where_a_right_or_lower_neighbour_differs_and_widen_by_a_square():
    grains = np.ones((6, 6), np.uint16)
    grains[:, 3:] = 2
    thin = ind.lines(grains, 1)
    assert np.array_equal(np.flatnonzero((thin == 0).all(axis=0)), [2]) and (thin == 0).sum() == 6
    assert np.array_equal(np.flatnonzero((ind.lines(grains, 3) == 0).all(axis=0)), [1, 2, 3])
    assert (ind.lines(np.ones((6, 6), np.uint16), 6) == 255).all()  # one grain: no boundary


def test_padding_replicates_the_edges_to_the_next_multiple():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = ind.pad_to(image, 4)
    assert padded.shape == (4, 4) and np.array_equal(padded[3], image[2]) and np.array_equal(padded[:3], image)


@NEEDS_NIST
def test_nist_steel_crops_the_reference_map_and_fragments_it(sources):
    label, grains = ind.nist_reference()
    assert label.shape == (600, 800) and grains.max() == 226  # 4-connected grains of NIST's map
    for k, pair in enumerate(_set("nist-steel", sources, count=3)):
        assert pair.micro.shape == pair.label.shape == (CONFIG.size, CONFIG.size)
        assert set(np.unique(pair.micro)) <= {0, 255}
        # The label is the window of the reference map at the image's first two draws.
        rng = gen.image_rng(0, "nist-steel", k)
        top, left = (int(rng.integers(0, n - CONFIG.size, endpoint=True)) for n in label.shape)
        window = np.s_[top:top + CONFIG.size, left:left + CONFIG.size]
        assert np.array_equal(pair.label, label[window]) and np.array_equal(pair.grains, grains[window])
    assert sum(erased_fraction(p.micro, p.label) for p in _set("nist-steel", sources, count=3)) > 0


@NEEDS_NIST
def test_nist_optical_is_one_prepared_image_scored_against_the_reference(sources):
    pairs = _set("nist-optical", sources, count=5)
    assert len(pairs) == 1  # the raw micrograph is one image, whatever --count says
    pair, again = pairs[0], _set("nist-optical", sources, seed=1)[0]
    assert np.array_equal(pair.micro, again.micro)  # no draw: the preparation is fixed
    assert pair.micro.shape == pair.label.shape == pair.grains.shape == (608, 800)
    assert set(np.unique(pair.micro)) <= {0, 255}
    label, _ = ind.nist_reference()
    assert np.array_equal(pair.label[:600], label) and np.array_equal(pair.label[600:], np.repeat(label[-1:], 8, 0))
    # Edge replication joins no two grains: the padded map has the reference's 226 grains.
    count, _ = cv2.connectedComponents((pair.label == 255).astype(np.uint8), connectivity=4)
    assert count - 1 == 226


def test_a_set_that_cannot_be_made_here_is_one_clear_line_and_exit_2(tmp_path):
    if ind.msp_available():
        pytest.skip("MicroStructPy is installed here: the msp sets can be made")
    script = Path(gen.__file__)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "none.zarr"), "--sets", "msp-lognormal"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "msp-lognormal cannot be made here" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "none.zarr").exists()


@NEEDS_MSP
@pytest.mark.parametrize("name", ind.MSP_SETS)
def test_a_microstructpy_image_is_a_function_of_seed_and_k_and_is_cached(name, sources, tmp_path, monkeypatch):
    monkeypatch.setattr(ind, "CACHE_DIR", tmp_path)
    maker = gen.MAKERS[name]
    first = maker(sources[0], CONFIG, gen.image_rng(0, name, 1))
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = maker(sources[0], CONFIG, gen.image_rng(0, name, 1))  # from the cache
    assert np.array_equal(first.micro, again.micro) and np.array_equal(first.grains, again.grains)
    assert first.micro.shape == first.label.shape == (CONFIG.size, CONFIG.size)
    widths = [w for w in range(1, 7) if np.array_equal(first.label, ind.lines(first.grains, w))]
    assert widths and erased_fraction(first.micro, first.label) > 0
    other = maker(sources[0], CONFIG, gen.image_rng(0, name, 2))
    assert not np.array_equal(first.grains, other.grains) and len(list(tmp_path.glob("*.npz"))) == 2


def test_paired_count_error_is_the_difference_of_the_two_means_image_by_image():
    # errors |found - true| / true: first 0.0, 0.2, 0.1; second 0.1, 0.0, 0.1; the 4th image has no grain
    paired = gen.paired_count_error([10, 12, 9, 3], [11, 10, 9, 0], [10, 10, 10, 0])
    assert paired["images"] == 3
    assert paired["mean"] == pytest.approx((-0.1 + 0.2 + 0.0) / 3)
    assert (paired["lower"], paired["higher"], paired["equal"]) == (1, 1, 1)
    low, high = paired["ci95"]
    assert -0.1 - 1e-12 <= low < paired["mean"] < high <= 0.2 + 1e-12  # within the smallest and largest difference


def test_paired_count_error_of_a_constant_difference_has_no_spread():
    paired = gen.paired_count_error([12, 24], [11, 22], [10, 20])  # first 0.1 worse on both
    assert paired["mean"] == pytest.approx(0.1)
    assert paired["ci95"] == pytest.approx([0.1, 0.1])
    assert (paired["lower"], paired["higher"], paired["equal"]) == (0, 2, 0)
