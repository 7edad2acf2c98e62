"""Benchmark: how a restoration method generalises beyond the library's own distribution.

Run from the repo root: `.venv/bin/python benchmarks/generalisation.py STORE [--model PATH]
[--count N] [--sets a,b] [--seed S]`. Progress goes to stderr; a markdown table goes to stdout,
and the last line is one JSON object with every figure (house rule for benchmarks/).

Seven sets of N images each at the store's size (512 px), made from the store's TEST split
only (never train or val) or from fresh polySim grain maps, every one with the library's own
fragmentation ranges (`store.config`) where gaps are blurred squares:
- `library`: the test split as stored (the reference; at most as many images as the split holds).
- `elongated`: a fresh polySim map at twice the size, stretched by sqrt(2) along a random
  direction and shrunk by sqrt(2) across it (grains 2:1 at constant area; a double-size map's
  grains are about 1.4x larger, so the count per image stays near the library's),
  nearest-neighbour, a 5x5 median smoothing the staircase; boundaries redrawn with
  `boundaries`, fragmented, Otsu, one dilation drawn from the library's, as a library sample.
  (A double-size map is needed: at 45 degrees the stretched window spans 1.41 x 1.41 = 2 sides.)
- `fine`: a fresh polySim map at twice the size, a random crop of 1.6-2x the image side
  zoomed out to the image size (about 2.5x the library's grains per image), then as above.
- `coarse`: a random crop of 1/2.4-1/1.6 of a test grain map zoomed in to the image size
  (about 4x fewer grains), 5x5 median, then as above.
- `sharp-cuts`: the test label with hard-edged gaps instead of blurred squares: cuts that
  follow a boundary (a rotated rectangle along the local boundary direction, 3-48 px long:
  from line-perpendicular slits to long erased stretches) and rotated rectangles of the
  library's patch sides centred on the boundary.
- `faded`: the test map's 2-px boundaries whose contrast fades (a linear ramp across the image
  and smooth Gaussian dips centred on the boundary), plus Gaussian noise, Otsu-binarised, then
  the sample's own dilation: gaps with soft, ragged ends, as in a badly lit micrograph.
- `noisy`: the test input with binarisation noise: dark salt-and-pepper pixels and round blobs
  on the background, porous boundaries (single white pixels) and small round holes. Unlike
  `train --corrupt` (square specks and holes), so a model trained with it is not tested on its
  own augmentation.
Five more sets no polySim run could make (MicroStructPy grain maps with lognormal and elongated
grains, 1-6 px lines; NIST's real steel, fragmented and raw): benchmarks/independent_sets.py.
Images of a derived set cycle over the test samples with fresh draws, so N may exceed the split.
Targets are always the true boundaries of the image's own grain map, thickened like its input.
Every image k of set s draws from its own generator, SeedSequence(seed, spawn_key=(stream of s,
k)): an image does not depend on N, on the other sets or on the order they are made in.

Default 30 images per set: on the shared 2-core VM (a training job beside it) the sets and both
baselines took 1 min 47 s (most of it polySim at 1024 px for `elongated` and `fine`, about 1 s a
map); with a `small`-preset model 4 min 52 s (about 0.4 s per image, plus the bridge on its
output). TTA multiplies the model's share by 8: use --count or --sets then.

Methods: `identity` and `bridge` (model.methods.classical), and, when a model is found (`--model`,
else the bundled one), `model` (whole images, its stored inference settings: threshold, speck
filter, dihedral TTA) and `model+bridge`. Metrics: model.scoring.metrics (docs/metrics.md).

Is a set's difference between `model+bridge` and `bridge` more than the images drawn? Each set's
`paired` entry (and a line on stderr) gives the mean per-image grain-count error of model+bridge
minus bridge's (the difference of the table's two figures), a 95 % paired bootstrap interval of
that mean (images resampled with replacement, 10,000 rounds, a fixed seed), and on how many images
model+bridge's error is lower, higher or the same.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model.methods import BASELINES, bridged  # noqa: E402
from model.scoring.metrics import MetricAccumulator  # noqa: E402
from pipeline.config import GenerationConfig  # noqa: E402
from pipeline.gaps import faded, sharp_cuts, speckle  # noqa: E402
from pipeline.grainmap import warp  # noqa: E402
from pipeline.polysim import simulate  # noqa: E402
from pipeline.boundaries import boundaries, thicken  # noqa: E402
from pipeline.gaps import blurred_fragments  # noqa: E402
from pipeline.sample import TEST, erased_fraction  # noqa: E402
from pipeline.store import LibraryStore  # noqa: E402

import independent_sets  # noqa: E402  (beside this file)

# Set name -> random stream; the numbers are part of the benchmark's definition.
SET_STREAMS = {"library": 0, "elongated": 1, "fine": 2, "coarse": 3, "sharp-cuts": 4, "faded": 5, "noisy": 6}
DEFAULT_COUNT = 30
BATCH = 2
BOOTSTRAP_ROUNDS = 10_000
COLUMNS = (("miou", "mIoU", ".4f"), ("gap_recall", "gap recall", ".3f"), ("boundary_f1", "boundary F1", ".4f"),
           ("grain_count_error", "grain count err", ".3f"), ("grain_ari", "grain ARI", ".4f"),
           ("astm_g_error", "ASTM G err", ".3f"))
ELONGATION = 2.0  # aspect ratio of the stretch
FINE_ZOOM, COARSE_ZOOM = (1.6, 2.0), (1.6, 2.4)
CUT_COUNT, CUT_LENGTH = (20, 50), (3, 48)  # sharp cuts per image; length of a boundary-following cut
FADE_DIPS, FADE_SIGMA, FADE_NOISE = (20, 50), (6.0, 20.0), (10.0, 30.0)
NOISE_PEPPER, NOISE_POROSITY, NOISE_BLOBS = (0.001, 0.005), (0.02, 0.08), (20, 80)


@dataclass(frozen=True)
class Source:
    """One test sample of the library: what the sets are made from."""

    micro: np.ndarray
    label: np.ndarray
    grains: np.ndarray
    dilation: int


@dataclass(frozen=True)
class Pair:
    """One benchmark image: fragmented input, true boundaries, and the grain map they come from."""

    micro: np.ndarray
    label: np.ndarray
    grains: np.ndarray


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def image_rng(seed: int, set_name: str, k: int) -> np.random.Generator:
    """The generator of image `k` of set `set_name`."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(SET_STREAMS[set_name], k)))


# --- grain maps ----------------------------------------------------------------------------
def fresh_grains(size: int, config: GenerationConfig, rng: np.random.Generator) -> np.ndarray:
    """A polySim grain map of side `size` with the library's rates, seeded from `rng`."""
    nucleation = int(rng.integers(config.nucleation_rate[0], config.nucleation_rate[1], endpoint=True))
    growth = int(rng.integers(config.growth_rate[0], config.growth_rate[1], endpoint=True))
    return simulate(size, nucleation, growth, config.height, int(rng.integers(0, 2**32))).grains


def library_fragments(grains: np.ndarray, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """Boundaries of `grains`, fragmented, binarised and thickened exactly as a library sample."""
    label = boundaries(grains)
    micro, _ = blurred_fragments(label, rng, config)
    dilation = int(rng.choice(config.dilations))
    return Pair(thicken(micro, dilation), thicken(label, dilation), grains)


def stretched(grains: np.ndarray, size: int, angle: float, along: float, across: float) -> np.ndarray:
    """The centre of `grains` scaled by `along` in direction `angle` and `across` normal to it (size x size)."""
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    # Output pixel -> source pixel (inverse map), about the centres of both images.
    return warp(grains, size, rotation @ np.diag([1 / along, 1 / across]) @ rotation.T)


def zoomed(grains: np.ndarray, size: int, zoom: float, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of side size / zoom of `grains`, resized to size x size (nearest)."""
    side = min(grains.shape[0], max(2, round(size / zoom)))
    top, left = (int(rng.integers(0, grains.shape[0] - side, endpoint=True)) for _ in range(2))
    return cv2.resize(grains[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_NEAREST)


# --- set makers: (source, library config, generator) -> Pair ---------------------------------
def make_library(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """The test sample as stored."""
    return Pair(source.micro, source.label, source.grains)


def make_elongated(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """Grains stretched 2:1 in a random direction at constant area, fragmented as the library."""
    grains = fresh_grains(2 * config.size, config, rng)
    factor = math.sqrt(ELONGATION)
    grains = stretched(grains, config.size, float(rng.uniform(0, math.pi)), factor, 1 / factor)
    return library_fragments(cv2.medianBlur(grains, 5), config, rng)


def make_fine(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """A fresh double-size grain map zoomed out, fragmented as the library."""
    grains = zoomed(fresh_grains(2 * config.size, config, rng), config.size, 1 / rng.uniform(*FINE_ZOOM), rng)
    return library_fragments(grains, config, rng)


def make_coarse(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """The test grain map zoomed in, fragmented as the library."""
    grains = zoomed(source.grains, config.size, float(rng.uniform(*COARSE_ZOOM)), rng)
    return library_fragments(cv2.medianBlur(grains, 5), config, rng)


def make_sharp_cuts(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """The test label with hard-edged cuts: boundary-following slits and stretches, rotated rectangles."""
    micro = sharp_cuts(source.label, rng, CUT_COUNT, CUT_LENGTH, 2 * source.dilation + 6, config.patch_side_range)
    return Pair(micro, source.label, source.grains)


def make_faded(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """Boundaries whose contrast fades (ramp and smooth dips) under noise, Otsu-binarised."""
    micro = faded(boundaries(source.grains), rng, FADE_DIPS, FADE_SIGMA, FADE_NOISE)
    return Pair(thicken(micro, source.dilation), source.label, source.grains)


def make_noisy(source: Source, config: GenerationConfig, rng: np.random.Generator) -> Pair:
    """The test input with binarisation noise: dark specks and blobs, porous boundaries and round holes."""
    return Pair(speckle(source.micro, rng, NOISE_PEPPER, NOISE_POROSITY, NOISE_BLOBS), source.label, source.grains)


MAKERS: dict[str, Callable[[Source, GenerationConfig, np.random.Generator], Pair]] = {
    "library": make_library, "elongated": make_elongated, "fine": make_fine, "coarse": make_coarse,
    "sharp-cuts": make_sharp_cuts, "faded": make_faded, "noisy": make_noisy,
}
# Sets no polySim run could make: an independent generator's grain maps and NIST's steel (independent_sets.py).
SET_STREAMS.update(independent_sets.STREAMS)
MAKERS.update(independent_sets.makers(Source, make_sharp_cuts))


def make_set(name: str, sources: list[Source], config: GenerationConfig, seed: int, count: int) -> Iterator[Pair]:
    """The images of set `name`: image k from test sample k mod len(sources) and its own generator."""
    count = min(count, len(sources)) if name == "library" else min(count, independent_sets.CAPS.get(name, count))
    for k in range(count):
        yield MAKERS[name](sources[k % len(sources)], config, image_rng(seed, name, k))


def test_sources(store: LibraryStore, limit: int) -> list[Source]:
    """The first `limit` done samples of the store's test split."""
    indices = np.flatnonzero(store.done() & (store.metadata("split") == TEST))[:limit]
    reader, dilation = store.image_reader(("micro", "label", "grains")), store.metadata("dilation")
    return [Source(*reader.read(int(i)), int(dilation[i])) for i in indices]


# --- methods and scoring ---------------------------------------------------------------------
@dataclass(frozen=True)
class Restorer:
    """A Keras model with the inference settings stored beside it."""

    model: Any
    settings: Any
    path: Path

    def restore(self, micros: list[np.ndarray]) -> list[np.ndarray]:
        """Masks (0 boundary, 255 background) of whole images, BATCH at a time, under the stored settings."""
        from model.inference.postprocess import batch_probabilities, probability_to_mask

        masks = []
        for start in range(0, len(micros), BATCH):
            batch = np.stack(micros[start:start + BATCH]).astype(np.float32)[..., None] / 255.0
            masks += [probability_to_mask(p, self.settings.threshold, self.settings.min_speck,
                                          self.settings.link_threshold)
                      for p in batch_probabilities(self.model, batch, self.settings.tta)[..., 0]]
        return masks


def load_restorer(path: str | None) -> tuple[Restorer | None, str]:
    """The model at `path` (the bundled one when None) and its settings, or None and why not."""
    from model.inference.predict import PredictError, load_model
    from model.inference.settings import SettingsError, load_settings
    from model.pretrained import NoModelError, resolve_model

    try:
        resolved = resolve_model(path)
        return Restorer(load_model(resolved), load_settings(resolved), resolved), str(resolved)
    except (NoModelError, SettingsError, PredictError) as error:
        return None, str(error)


def paired_count_error(first: np.ndarray, second: np.ndarray, truth: np.ndarray,
                       rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict[str, Any]:
    """Per-image grain-count error |found - true| / true of method `first` minus that of `second`
    (grains found per image by each, `truth` the true counts; images with no true grain left out):
    its mean, a 95 % paired bootstrap interval of the mean, and the images where `first` is lower,
    higher or equal."""
    found_a, found_b, truth = (np.asarray(x, dtype=np.float64) for x in (first, second, truth))
    keep = truth > 0
    diff = (np.abs(found_a - truth) - np.abs(found_b - truth))[keep] / truth[keep]
    if diff.size == 0:
        return {"images": 0, "mean": math.nan, "ci95": [math.nan, math.nan], "lower": 0, "higher": 0, "equal": 0}
    draws = np.random.default_rng(seed).integers(0, diff.size, size=(rounds, diff.size))
    low, high = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
    return {"images": int(diff.size), "mean": float(diff.mean()), "ci95": [float(low), float(high)],
            "lower": int((diff < 0).sum()), "higher": int((diff > 0).sum()), "equal": int((diff == 0).sum())}


def score_set(pairs: list[Pair], restorer: Restorer | None) -> dict[str, Any]:
    """Every method on every image of one set: metrics per method, seconds per method, set facts,
    and (with a model) model+bridge against bridge image by image (`paired_count_error`)."""
    names = [*BASELINES, *(("model", "model+bridge") if restorer else ())]
    meters = {name: MetricAccumulator() for name in names}
    found: dict[str, list[int]] = {name: [] for name in names}
    truth: list[int] = []
    seconds = dict.fromkeys(names, 0.0)
    restored: list[np.ndarray | None] = [None] * len(pairs)
    if restorer is not None:
        tick = time.perf_counter()
        restored = restorer.restore([p.micro for p in pairs])
        seconds["model"] = time.perf_counter() - tick
    for pair, mask in zip(pairs, restored):
        outputs = {}
        for name, baseline in BASELINES.items():
            tick = time.perf_counter()
            outputs[name] = baseline(pair.micro)
            seconds[name] += time.perf_counter() - tick
        if mask is not None:
            tick = time.perf_counter()
            outputs["model"], outputs["model+bridge"] = mask, bridged(mask, restorer.settings.min_speck)
            seconds["model+bridge"] += time.perf_counter() - tick
        for name, output in outputs.items():
            stats = meters[name].update(output, pair.label, pair.micro)
            found[name].append(stats.grains_pred)
        truth.append(stats.grains_gt)
    paired = ({"model+bridge - bridge": paired_count_error(found["model+bridge"], found["bridge"], truth)}
              if restorer else {})
    return {
        "images": len(pairs),
        "erased_fraction": float(np.mean([erased_fraction(p.micro, p.label) for p in pairs])),
        "methods": {name: meters[name].result() for name in names},
        "seconds": seconds,
        "paired": paired,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per (set, method), grains per image and erased share beside the set."""
    head = "| set | images | gt grains | erased | method | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    rows = [head, "| --- " * (len(COLUMNS) + 5) + "|"]
    for name, result in results.items():
        for n, (method, metrics) in enumerate(result["methods"].items()):
            facts = [name, str(result["images"]), f"{metrics['grains_gt']:.1f}",
                     f"{result['erased_fraction']:.3f}"] if n == 0 else [""] * 4
            cells = [*facts, method, *(format(metrics[k], f) for k, _, f in COLUMNS)]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="a Reconstruction-GB store (its test split is read, nothing written)")
    parser.add_argument("--model", default=None, help="a .keras model (default: the bundled model, if installed)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="images per set")
    parser.add_argument("--sets", default=",".join(s for s in SET_STREAMS if independent_sets.available(s)),
                        help="comma-separated sets to run (default: all that can be made here)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every set's draws")
    args = parser.parse_args()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in SET_STREAMS]
    if unknown or not sets:
        parser.error(f"unknown set(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SET_STREAMS)}")
    missing = [s for s in sets if not independent_sets.available(s)]
    if missing:
        parser.error(f"set(s) {', '.join(missing)} cannot be made here: see benchmarks/independent_sets.py")
    if args.count <= 0:
        parser.error("--count must be > 0")

    started = time.perf_counter()
    store = LibraryStore.open(args.store)
    sources = test_sources(store, args.count)
    if not sources:
        sys.exit(f"{args.store} has no done test sample")
    restorer, model_note = load_restorer(args.model)
    log(f"model: {model_note}" if restorer else f"no model rows: {model_note}")
    results = {}
    for name in sets:
        tick = time.perf_counter()
        pairs = list(make_set(name, sources, store.config, args.seed, args.count))
        made = time.perf_counter() - tick
        results[name] = {**score_set(pairs, restorer), "make_seconds": made}
        line = ", ".join(f"{m} gce {r['grain_count_error']:.3f}" for m, r in results[name]["methods"].items())
        log(f"{name}: {len(pairs)} images, {time.perf_counter() - tick:.0f} s: {line}")
        for label, p in results[name]["paired"].items():
            log(f"  {label}, grain-count error: {p['mean']:+.4f} (95 % interval {p['ci95'][0]:+.4f} to "
                f"{p['ci95'][1]:+.4f}); lower on {p['lower']}, higher on {p['higher']}, equal on {p['equal']} images")
    print(table(results))
    if restorer is None:
        print(f"\nNo model rows: {model_note}")
    print(json.dumps({
        "store": str(store.path), "size": store.config.size, "test_samples_used": len(sources),
        "count": args.count, "seed": args.seed,
        "model": str(restorer.path) if restorer else None, "model_note": None if restorer else model_note,
        "settings": {k: v for k, v in restorer.settings.to_dict().items() if k != "details"} if restorer else None,
        "sets": results, "seconds": time.perf_counter() - started,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
