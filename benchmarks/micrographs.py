"""Benchmark: restoring raw gray micrographs, grain by grain, for issue 32's targets.

Run from the repo root: `.venv/bin/python benchmarks/micrographs.py [--seeds 2026,2027,2028]
[--steel PATH] [--reference PATH] [--methods default,prep+model+bridge,prep+bridge]`.

Images, none of which any model here was trained or tuned on:
- `rendered`: benchmarks/gray_micrographs.py's renderer (Voronoi grains, written apart from the
  library's pipeline/render.py: other grain shapes, contrast, fading and optics), its four kinds
  from each seed;
- `scratched`: the same images with heavy distractors drawn here: 20-40 long dark or bright
  polishing scratches and 30-80 etch pits each (none of them boundaries);
- `msp`: grain maps of another generator, MicroStructPy (lognormal circles and aligned ellipses of
  aspect 2-4 at 512 px, benchmarks/independent_sets.py's maps), rendered by the same second
  renderer (2 px boundaries, faded stretches, illumination, blur, noise), one of each per seed;
  the maps come from independent_sets.py's cache, or are made when MicroStructPy is installed
  (benchmarks/requirements.txt), else the set is left out and said;
- NIST's raw optical micrograph of an etched steel against NIST's own boundary map (source: the
  National Institute of Standards and Technology, usnistgov/grain-size-analysis-tools; never
  trained or tuned on).
Methods (model.inference.restore.Restorer, the code `predict` and `measure --restore` run):
`default` (no option: what a user gets), `prep+model+bridge` (the automatic preparation, non-local
means + adaptive threshold, then the boundary-map model and the bridge: the default before the
micrograph model), `prep+bridge`, `prep` (preparation alone), `micrograph-model` (the micrograph
model without the bridge).
Per image: grains found as `measure` counts them (its own smallest grain) against the truth's;
planimetric G; the share of true grains (>= 20 px, 4-connected) matched one-to-one
(model.scoring.metrics.matched_grains) and the grain-partition ARI. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from gray_micrographs import KINDS, PIXEL_SIZE_UM, STEEL, STEEL_PIXEL_UM, Kind, render, render_grains  # noqa: E402

REFERENCE = STEEL.with_name("steel_reference_boundaries.tif")
MATCH_MIN_AREA = 20  # px: the true grains counted for the match share (issue 32's definition)
METHODS = ("default", "prep+model+bridge", "prep+bridge")
SCRATCHES, PITS = (20, 40), (30, 80)
MSP_KINDS = ("lognormal", "elongated")  # MicroStructPy grain maps (benchmarks/independent_sets.py)
MSP_SIZE = 512
MSP_STREAM = 32  # the msp set's random stream, apart from the rendered set's [seed, kind number]


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def scratched(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`image` with long straight or bent polishing scratches and round etch pits (not boundaries)."""
    top = 65535.0 if image.dtype == np.uint16 else 255.0
    gray = image.astype(np.float32)
    height, width = gray.shape
    for _ in range(int(rng.integers(*SCRATCHES, endpoint=True))):
        start = rng.uniform((0, 0), (width, height))
        angle, length = rng.uniform(0, math.pi), rng.uniform(0.3, 1.0) * max(height, width)
        middle = start + 0.5 * length * np.array([math.cos(angle), math.sin(angle)]) + rng.normal(0, 0.03 * length, 2)
        end = start + length * np.array([math.cos(angle + rng.normal(0, 0.05)), math.sin(angle + rng.normal(0, 0.05))])
        layer = np.zeros_like(gray)
        cv2.polylines(layer, [np.rint(np.stack([start, middle, end])).astype(np.int32)], False, 1.0,
                      int(rng.integers(1, 3, endpoint=True)), cv2.LINE_AA)
        gray += layer * top * rng.uniform(0.1, 0.3) * (1 if rng.random() < 0.3 else -1)
    for _ in range(int(rng.integers(*PITS, endpoint=True))):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.circle(gray, centre, int(rng.integers(1, 5, endpoint=True)), top * rng.uniform(0.1, 0.3), -1, cv2.LINE_AA)
    return np.clip(np.rint(gray), 0, top).astype(image.dtype)


def images(seeds: list[int], steel: Path, reference: Path) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(name, micrograph, truth boundary map 0/255, pixel size) of every benchmark image."""
    out = []
    for seed in seeds:
        for number, kind in enumerate(KINDS):
            image, truth = render(kind, np.random.default_rng([seed, number]))
            out.append((f"rendered/{seed}/{kind.name}", image, truth, PIXEL_SIZE_UM))
            noisy = scratched(image, np.random.default_rng([seed, number, 1]))
            out.append((f"scratched/{seed}/{kind.name}", noisy, truth, PIXEL_SIZE_UM))
    out += msp_images(seeds)
    if steel.is_file() and reference.is_file():
        truth = np.where(cv2.imread(str(reference), cv2.IMREAD_GRAYSCALE) > 127, 0, 255).astype(np.uint8)
        out.append(("nist/steel_optical", cv2.imread(str(steel), cv2.IMREAD_UNCHANGED), truth, STEEL_PIXEL_UM))
    return out


def msp_images(seeds: list[int]) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """MicroStructPy's grain maps rendered by the second renderer (none when they cannot be had)."""
    from independent_sets import MissingGeneratorError, msp_grains

    out = []
    for seed in seeds:
        for number, kind in enumerate(MSP_KINDS):
            rng = np.random.default_rng([seed, MSP_STREAM, number])
            try:
                grains = msp_grains(kind, MSP_SIZE, rng)
            except MissingGeneratorError as error:
                log(f"msp set left out: {error}")
                return []
            cells = int(len(np.unique(grains)))
            image, truth = render_grains(grains.astype(np.int32), Kind(f"msp-{kind}", MSP_SIZE, MSP_SIZE, cells, 2,
                                                                       ".png", 8), rng)
            out.append((f"msp/{seed}/{kind}", image, truth, PIXEL_SIZE_UM))
    return out


def restorers(methods: list[str]):  # type: ignore[no-untyped-def]
    """One Restorer per method name."""
    from model.inference.restore import RestoreOptions, Restorer
    from model.pretrained import BUNDLED_MODEL

    options = {"default": RestoreOptions(), "prep+model+bridge": RestoreOptions(model=BUNDLED_MODEL),
               "prep+bridge": RestoreOptions(method="bridge"), "prep": RestoreOptions(method="none"),
               "micrograph-model": RestoreOptions(method="model")}
    return {name: Restorer(options[name]) for name in methods}


def score(mask: np.ndarray, truth: np.ndarray, pixel_um: float) -> dict[str, float]:
    """Grain figures of one restored mask against its truth (both 0 boundary / 255 grain)."""
    from model.measure.grains import measure_boundary
    from model.scoring.metrics import find_grains, grain_partition_ari, matched_grains

    got, true = measure_boundary(mask, pixel_um, None), measure_boundary(truth, pixel_um, None)
    found, real = find_grains(mask < 128, MATCH_MIN_AREA), find_grains(truth < 128, MATCH_MIN_AREA)
    return {"grains": got.table.count, "true_grains": true.table.count,
            "count_error": (got.table.count - true.table.count) / true.table.count,
            "g": float(got.astm_g_planimetric), "true_g": float(true.astm_g_planimetric),
            "matched": matched_grains(found, real), "true_grains_20px": real.count,
            "match": matched_grains(found, real) / real.count, "ari": grain_partition_ari(found, real)}


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean |count error|, pooled match share, mean ARI, mean |G error| of a set of images."""
    return {"images": len(rows), "count_error": float(np.mean([abs(r["count_error"]) for r in rows])),
            "match": sum(r["matched"] for r in rows) / sum(r["true_grains_20px"] for r in rows),
            "ari": float(np.mean([r["ari"] for r in rows])),
            "g_error": float(np.mean([abs(r["g"] - r["true_g"]) for r in rows]))}


def main() -> None:
    """Score every method on every image; per-set lines, then one JSON object."""
    from model.inference.images import to_unit_gray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2026,2027,2028")
    parser.add_argument("--steel", type=Path, default=STEEL)
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    methods = args.methods.split(",")
    items = images([int(s) for s in args.seeds.split(",")], args.steel, args.reference)
    record: dict = {"benchmark": "micrographs", "date": datetime.date.today().isoformat(),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
                    "per_image": {}, "sets": {}}
    for method, restorer in restorers(methods).items():
        log(f"{method}: {restorer.describe()}")
        started = time.perf_counter()
        for name, image, truth, pixel_um in items:
            mask = restorer.restore(to_unit_gray(image))[0]
            row = score(mask, truth, pixel_um)
            record["per_image"].setdefault(name, {})[method] = row
            log(f"  {name:32s} {row['grains']:4d}/{row['true_grains']:4d} match {row['match']:.3f} ari {row['ari']:.3f}")
        record.setdefault("seconds", {})[method] = round(time.perf_counter() - started, 1)
    for group in ("rendered", "scratched", "msp", "nist"):
        names = [n for n in record["per_image"] if n.startswith(group + "/")]
        if names:
            record["sets"][group] = {m: summary([record["per_image"][n][m] for n in names]) for m in methods}
    print(f"| set | method | images | count error | grains matched | ARI | G error |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for group, by_method in record["sets"].items():
        for method, s in by_method.items():
            print(f"| {group} | {method} | {s['images']} | {s['count_error']:.3f} | {s['match']:.3f} | "
                  f"{s['ari']:.4f} | {s['g_error']:.3f} |")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
