"""The link threshold: the centre line of a wider reading closes gaps without thickening lines."""

from __future__ import annotations

import json

import numpy as np

from model.inference.postprocess import link_line, probability_to_mask
from model.inference.settings import InferenceSettings, save_settings
from model.scoring.metrics import find_grains


def gapped_line() -> np.ndarray:
    """P(background) of a 40 x 40 image cut in two by a 3-px vertical line (0.1) whose rows
    15..24 are a gap the model is unsure of (0.7); the background is 0.99."""
    probability = np.full((40, 40), 0.99, np.float32)
    probability[:, 19:22] = 0.1
    probability[15:25, 19:22] = 0.7
    return probability


def boundary(mask: np.ndarray) -> np.ndarray:
    return mask == 0


def test_the_link_line_closes_the_gap_one_pixel_wide_and_adds_nothing_elsewhere():
    probability = gapped_line()
    plain = probability_to_mask(probability, 0.5)
    linked = probability_to_mask(probability, 0.5, link_threshold=0.9)
    assert find_grains(boundary(plain)).count == 1  # the gap joins the two halves
    assert find_grains(boundary(linked)).count == 2
    added = boundary(linked) & ~boundary(plain)
    # Only gap pixels, and one per gap row: the 3-px wide uncertain stretch is closed 1 px wide.
    assert added.sum() == 10 and added[15:25].sum(axis=1).tolist() == [1] * 10
    assert (boundary(linked) >= boundary(plain)).all()
    # A plain threshold that high closes the gap too, but keeps the whole 3-px stretch.
    assert boundary(probability_to_mask(probability, 0.9)).sum() == boundary(plain).sum() + 30


def test_a_patch_of_doubt_touching_no_boundary_adds_no_line():
    """An isolated faint patch (a textured one, whose centre line would be a mesh of small loops)
    in the middle of a grain is not a gap: its line is left out; the gap's line stays."""
    probability = np.pad(gapped_line(), ((0, 0), (0, 40)), constant_values=0.99)  # 40 x 80: room for a patch
    patch = np.full((26, 26), 0.8, np.float32)
    patch[2::6, 2::6] = 0.95  # a grid of sure pixels: holes in the reading at 0.9
    probability[7:33, 48:74] = patch
    assert find_grains(link_line(probability, 0.9)[:, 40:], min_area=1).count > 5  # its line alone makes loops
    linked = probability_to_mask(probability, 0.5, link_threshold=0.9)
    assert not boundary(linked)[:, 40:].any()  # nothing drawn around the patch
    assert find_grains(boundary(linked)).count == 2  # the gap is still closed
    assert np.array_equal(linked[:, :40], probability_to_mask(gapped_line(), 0.5, link_threshold=0.9))


def test_a_link_threshold_at_or_below_the_threshold_changes_nothing():
    probability = gapped_line()
    plain = probability_to_mask(probability, 0.8)
    for link in (None, 0.0, 0.5, 0.8):
        assert np.array_equal(probability_to_mask(probability, 0.8, link_threshold=link), plain)


def test_the_link_line_is_one_pixel_wide_inside_a_wide_reading():
    line = link_line(gapped_line(), 0.9)
    assert line.sum() == line[:, 19:22].sum()  # inside the 3-px reading
    assert line[2:-2].sum(axis=1).tolist() == [1] * 36  # one pixel a row (thinning may shorten the ends)


def linear_model(path, weight: float, bias: float, **settings):
    """A 1x1 convolution `weight * x + bias` saved at `path`, with `settings` stored beside it."""
    import keras

    inputs = keras.Input((None, None, 1))
    conv = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(weight),
                               bias_initializer=keras.initializers.Constant(bias))
    keras.Model(inputs, conv(inputs)).save(path)
    save_settings(path, InferenceSettings(**settings))
    return path


def test_evaluate_uses_the_stored_link_threshold_and_0_turns_it_off(run_cli, tmp_path, tiny_library):
    # 0.5 x + 0.3: boundary -> 0.3, background -> 0.8. With threshold 0.5 the input comes back;
    # a link threshold of 0.9 reads every pixel as boundary (its effect on masks: the tests above).
    model = linear_model(tmp_path / "m.keras", 0.5, 0.3, threshold=0.5, link_threshold=0.9)
    runs = {"stored": ["--model", model], "off": ["--model", model, "--link-threshold", "0"],
            "identity": ["--baseline", "identity"]}
    for name, args in runs.items():
        result = run_cli("evaluate", "--data", tiny_library, *args, "--split", "all", "--out", tmp_path / name,
                         "--no-progress")
        assert result.exit_code == 0, result.output
    stored, off, identity = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in runs)
    assert stored["settings"]["link_threshold"] == 0.9 and off["settings"]["link_threshold"] == 0.0
    for key in ("miou", "boundary_iou", "gap_recall", "boundary_f1", "grain_count_error", "grain_ari"):
        assert off[key] == identity[key], key
    assert "link threshold 0.9" in (tmp_path / "stored" / "report.md").read_text()


def test_predict_takes_the_link_threshold_from_settings_and_option(run_cli, tmp_path):
    import cv2

    # The identity: P(background) is the input, so a gray gap (0.7 * 255) is what the model is unsure of.
    model = linear_model(tmp_path / "id.keras", 1.0, 0.0, threshold=0.5, link_threshold=0.9)

    source = tmp_path / "in" / "g.png"
    source.parent.mkdir()
    cv2.imwrite(str(source), np.round(gapped_line() * 255).astype(np.uint8))
    used = {}
    for name, extra in {"stored": [], "off": ["--link-threshold", "0"]}.items():
        result = run_cli("predict", source, "--model", model, *extra, "--out", tmp_path / name, "--tile", "64",
                         "--no-progress")
        assert result.exit_code == 0, result.output
        used[name] = result.output.splitlines()[0]
    stored = cv2.imread(str(tmp_path / "stored" / "g.png"), cv2.IMREAD_UNCHANGED)
    off = cv2.imread(str(tmp_path / "off" / "g.png"), cv2.IMREAD_UNCHANGED)
    assert "link-threshold 0.9 (from id.settings.json)" in used["stored"]
    assert "link-threshold 0.0 (option)" in used["off"]
    assert find_grains(boundary(stored)).count == 2
    assert find_grains(boundary(off)).count == 1


def test_a_doubtful_spur_off_a_boundary_adds_no_dead_end():
    """A faint patch touching the boundary at one place only (a dead end into a grain) draws nothing;
    the gap's bridge beside it is kept whole."""
    probability = gapped_line()
    probability[5:9, 22:36] = 0.7  # a doubtful stretch from the line's right side into the grain
    plain = probability_to_mask(probability, 0.5)
    linked = probability_to_mask(probability, 0.5, link_threshold=0.9)
    added = boundary(linked) & ~boundary(plain)
    assert not added[:, 22:].any()  # the spur left no line in the grain
    assert added[15:25].sum(axis=1).tolist() == [1] * 10  # the gap is closed one pixel wide
    assert find_grains(boundary(linked)).count == 2


def test_a_doubtful_ring_touching_a_boundary_draws_no_grain_inside_a_grain():
    """A ring of doubt attached to the line (its centre line a loop) would close a new grain inside
    a grain: it is left out, while the real gap is still closed."""
    probability = np.pad(gapped_line(), ((0, 0), (0, 20)), constant_values=0.99)  # 40 x 60
    ring = np.zeros((40, 60), np.uint8)
    import cv2

    cv2.circle(ring, (36, 8), 6, 1, 2)
    probability[(ring > 0) & (probability > 0.5)] = 0.7
    probability[7:10, 22:31] = 0.7  # its stalk to the line
    linked = probability_to_mask(probability, 0.5, link_threshold=0.9)
    assert find_grains(boundary(linked)).count == 2
    assert not (boundary(linked) & ~boundary(probability_to_mask(probability, 0.5)))[:, 23:].any()
