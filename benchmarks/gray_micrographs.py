"""Benchmark: the README's first command on raw gray micrographs, against the truth.

Run from the repo root: `.venv/bin/python benchmarks/gray_micrographs.py [--out DIR] [--method M]
[--steel PATH] [--sweep]`.

Four rendered gray micrographs (`render`: Voronoi grains in gray levels 120-205, dark boundaries
2-3 px wide, faded stretches, an illumination gradient, blur and noise; `KINDS`: 700 x 500 to
1500 x 1100, PNG and 8- and 16-bit TIFF, 60 to 450 cells), plus NIST's raw optical micrograph of
an etched steel (`--steel`, default /work/shared/real/nist-gsat/steel_optical.tif; source: NIST,
usnistgov/grain-size-analysis-tools; reference: about 220 grains, planimetric G 9.99 at
0.2252 um/px). The README's first section is run as a user would, through the CLI, with no
preparation flags: `cli.py measure --restore DIR --out measured/ --pixel-size P` (P is the one thing given: PIXEL_SIZE_UM for the rendered images,
0.2252 for the steel). Truth for a rendered image: `measure` of its crisp boundary map (cells
cut to slivers by the border drop out as specks, as they would in a perfect restoration).
Printed: per image, grains found vs truth and planimetric G vs truth; the last stdout line is one
JSON object with every figure.

`--sweep-strength` chooses how hard each method's auto preparation smooths and thresholds
(prepare.MODEL_STRENGTH, CLASSICAL_STRENGTH): non-local means + adaptive at each (h, offset) on the
four kinds rendered from seeds 7-10 (STRENGTH_SEEDS, never the benchmark's).

`--sweep` chose the defaults of `--denoise auto --binarize auto` (model/inference/prepare.py):
it renders the same four kinds from other seeds (SWEEP_SEED, never the benchmark's) and restores
them with each (denoise, binarize) pair in-process (model.inference.restore.Restorer, the code
`predict` runs), printing the mean count error and mean |G - G_true| of each pair.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

STEEL = Path("/work/shared/real/nist-gsat/steel_optical.tif")
STEEL_PIXEL_UM, STEEL_GRAINS, STEEL_G = 0.2252, 220, 9.99  # NIST's scale; reference measured on its boundary map
PIXEL_SIZE_UM = 0.5  # the scale given to measure for the rendered images
BENCHMARK_SEED, SWEEP_SEED = 2026, 7
SWEEP = [(denoise, binarize) for denoise in ("none", "median", "nlmeans") for binarize in ("otsu", "adaptive")]
# --sweep-strength: non-local means + adaptive at these strengths, on four sets of seeds other than the benchmark's.
STRENGTH_SEEDS = (7, 8, 9, 10)
STRENGTH_H = (6.0, 9.0, 12.0)
STRENGTH_OFFSETS = (0.03, 0.04, 0.05, 0.06, 0.08)


@dataclass(frozen=True)
class Kind:
    """One kind of rendered micrograph."""

    name: str
    height: int
    width: int
    cells: int
    boundary_px: int  # boundary width
    suffix: str  # .png or .tif
    bits: int  # 8 or 16


KINDS = (
    Kind("png_coarse", 500, 700, 60, 2, ".png", 8),
    Kind("tiff8_large", 1100, 1500, 250, 3, ".tif", 8),
    Kind("tiff16", 700, 900, 90, 2, ".tif", 16),
    Kind("png_fine", 1100, 1500, 450, 3, ".png", 8),
)


def log(message: str) -> None:
    """Print a progress line to stderr."""
    print(message, file=sys.stderr, flush=True)


def voronoi_cells(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) int32 labels 1..cells: each pixel's nearest of `cells` uniformly random seeds."""
    seeds = np.full((height, width), 255, np.uint8)
    seeds[rng.integers(0, height, cells), rng.integers(0, width, cells)] = 0
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    return labels.astype(np.int32)


def boundaries(labels: np.ndarray, width: int) -> np.ndarray:
    """Boolean: pixels whose `width` x `width` neighbourhood holds more than one cell."""
    kernel = np.ones((width, width), np.uint8)
    as_float = labels.astype(np.float32)
    return cv2.dilate(as_float, kernel) != cv2.erode(as_float, kernel)


def render(kind: Kind, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(gray micrograph as uint8 or uint16, crisp truth boundary map: uint8 0 boundary / 255 grain).

    Grain levels uniform in 120-205, boundaries 35-75; about one faded stretch per three cells (a
    disk of radius 6-22 px where the boundary keeps 0-45 % of its contrast); an illumination
    gradient of +-8-15 % in a random direction; Gaussian blur (sigma 0.8-1.3) and noise (sigma 5-10).
    """
    return render_grains(voronoi_cells(kind.height, kind.width, kind.cells, rng), kind, rng)


def render_grains(labels: np.ndarray, kind: Kind, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`render`'s picture of a given grain map (ids from 1; kind.cells // 3 faded stretches), e.g.
    another generator's grains (benchmarks/micrographs.py renders MicroStructPy's maps with it)."""
    edge = boundaries(labels, kind.boundary_px)
    levels = rng.uniform(120, 205, labels.max() + 1).astype(np.float32)
    grain = levels[labels]
    kept = np.ones(labels.shape, np.float32)  # share of the boundary's contrast kept
    ys, xs = np.nonzero(edge)
    for k in rng.choice(len(ys), size=max(1, kind.cells // 3), replace=False):
        cv2.circle(kept, (int(xs[k]), int(ys[k])), int(rng.integers(6, 23)), float(rng.uniform(0.0, 0.45)), -1)
    dark = np.float32(rng.uniform(35, 75))
    gray = np.where(edge, grain - (grain - dark) * kept, grain)
    angle = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0 : kind.height, 0 : kind.width].astype(np.float32)
    ramp = np.cos(angle) * (x / kind.width - 0.5) + np.sin(angle) * (y / kind.height - 0.5)
    gray = gray * (1 + 2 * rng.uniform(0.08, 0.15) * ramp)
    gray = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), float(rng.uniform(0.8, 1.3)))
    gray = gray + rng.normal(0, rng.uniform(5, 10), gray.shape).astype(np.float32)
    if kind.bits == 16:
        image = np.clip(np.rint(gray * 257.0), 0, 65535).astype(np.uint16)
    else:
        image = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return image, np.where(edge, 0, 255).astype(np.uint8)


def render_set(folder: Path, seed: int) -> dict[str, np.ndarray]:
    """Write the four KINDS into `folder` (seed `seed`); returns each file name's truth boundary map."""
    folder.mkdir(parents=True, exist_ok=True)
    truths = {}
    for number, kind in enumerate(KINDS):
        image, truth = render(kind, np.random.default_rng([seed, number]))
        path = folder / f"{kind.name}{kind.suffix}"
        if not cv2.imwrite(str(path), image):
            raise OSError(f"cannot write {path}")
        truths[path.stem] = truth
    return truths


def truth_of(truth: np.ndarray, pixel_um: float) -> tuple[int, float]:
    """(grains, planimetric G) of a crisp boundary map, measured as `measure` does."""
    from model.measure.grains import measure_boundary

    result = measure_boundary(truth, pixel_um)
    return result.table.count, float(result.astm_g_planimetric)


def cli(*args: str) -> str:
    """Run `cli.py ARGS`; its stdout, or exit with its stderr."""
    run = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, cwd=REPO)
    if run.returncode:
        sys.exit(f"cli.py {' '.join(args)} failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
    return run.stdout


def measured(folder: Path) -> dict[str, tuple[int, float]]:
    """(grains, planimetric G) per image of a measure --out folder's summary.csv."""
    with open(folder / "summary.csv", newline="") as handle:
        # Per-image rows; the field statistics E112 asks for (mean, ci95, relative accuracy) follow them.
        rows = [row for row in csv.DictReader(handle) if row["image"] not in ("mean", "ci95", "relative_accuracy_pct")]
    count_key = next(k for k in rows[0] if k in ("grains", "grain_count", "count"))
    g_key = next(k for k in rows[0] if "planimetric" in k)
    return {row["image"]: (int(row[count_key]), float(row[g_key]) if row[g_key] not in ("", "nan") else math.nan)
            for row in rows}


def benchmark(work: Path, method: str, steel: Path | None, model: Path | None = None) -> dict:
    """The README's first command on the rendered set (and the steel); figures per image."""
    micrographs = work / "micrographs"
    truths = render_set(micrographs, BENCHMARK_SEED)
    method_args = [] if method == "default" else ["--method", method]  # default: as the README, no --method
    if model is not None and method != "bridge":
        method_args += ["--model", str(model)]
    started = time.perf_counter()
    predict_out = cli("measure", "--restore", str(micrographs), "--out", str(work / "measured"),
                      "--pixel-size", str(PIXEL_SIZE_UM), *method_args)
    seconds = time.perf_counter() - started
    log(predict_out.strip())
    found = measured(work / "measured")
    rows = {}
    for name, truth in truths.items():
        true_count, true_g = truth_of(truth, PIXEL_SIZE_UM)
        count, g = found[name]
        rows[name] = {"grains": count, "true_grains": true_count, "count_error": (count - true_count) / true_count,
                      "g": g, "true_g": true_g, "g_error": g - true_g}
    if steel is not None and steel.is_file():
        cli("measure", "--restore", str(steel), "--out", str(work / "steel_measured"),
            "--pixel-size", str(STEEL_PIXEL_UM), *method_args)
        count, g = measured(work / "steel_measured")[steel.stem]
        rows["nist_" + steel.stem] = {"grains": count, "true_grains": STEEL_GRAINS,
                                      "count_error": (count - STEEL_GRAINS) / STEEL_GRAINS, "g": g,
                                      "true_g": STEEL_G, "g_error": g - STEEL_G}
    return {"method": method, "predict_seconds_rendered_set": round(seconds, 1), "images": rows,
            "first_lines": predict_out.strip().splitlines()[:2]}


def rendered(folder: Path, seed: int) -> list[tuple[np.ndarray, tuple[int, float]]]:
    """The four KINDS rendered from `seed` into `folder`, each read as `predict` reads it, with its
    truth (grains, planimetric G): the images a sweep restores, never the benchmark's seed."""
    from model.inference.images import read_image

    truths = render_set(folder, seed)
    return [(read_image(next(folder.glob(name + ".*"))), truth_of(truth, PIXEL_SIZE_UM))
            for name, truth in truths.items()]


def restore_errors(restorer, images: list[tuple[np.ndarray, tuple[int, float]]]) -> tuple[list[float], list[float]]:
    """Relative count error and G error (both signed) of each image restored by `restorer` and
    measured as `measure` does (min grain from the image)."""
    from model.measure.grains import measure_boundary

    errors, g_errors = [], []
    for image, (true_count, true_g) in images:
        got = measure_boundary(restorer.restore(image)[0], PIXEL_SIZE_UM, None)
        errors.append((got.table.count - true_count) / true_count)
        g_errors.append(float(got.astm_g_planimetric) - true_g)
    return errors, g_errors


def sweep(work: Path, methods: list[str]) -> dict:
    """Mean count error and |G error| per (denoise, binarize) pair and method on the sweep seed's set."""
    from model.inference.restore import RestoreOptions, Restorer

    images = rendered(work / "sweep", SWEEP_SEED)
    results = {}
    for method in methods:
        for denoise, binarize in SWEEP:
            signed, g_signed = restore_errors(Restorer(RestoreOptions(method=method, denoise=denoise,
                                                                      binarize=binarize)), images)
            errors, g_errors = np.abs(signed), np.abs(g_signed)
            key = f"{method} {denoise}+{binarize}"
            results[key] = {"count_error": float(np.mean(errors)), "g_error": float(np.mean(g_errors)),
                            "per_image_count_error": [round(float(e), 3) for e in errors]}
            log(f"{key:32s} count error {np.mean(errors):.3f}  |G error| {np.mean(g_errors):.3f}  "
                f"{results[key]['per_image_count_error']}")
    return results


def sweep_strength(work: Path, methods: list[str], model: Path | None, hs: tuple[float, ...] = STRENGTH_H,
                   offsets: tuple[float, ...] = STRENGTH_OFFSETS) -> dict:
    """Count and G errors of nlmeans + adaptive at each (h, offset) of hs x offsets, per method,
    over the four kinds rendered from each of STRENGTH_SEEDS (16 images)."""
    from model.inference.prepare import Strength
    from model.inference.restore import RestoreOptions, Restorer

    images = [item for seed in STRENGTH_SEEDS for item in rendered(work / f"strength-{seed}", seed)]
    results = {}
    for name in methods:
        method = None if name == "default" else name  # default: the model's own choice (its settings)
        extra = {"model": model} if model is not None and method != "bridge" else {}
        for h in hs:
            for offset in offsets:
                restorer = Restorer(RestoreOptions(method=method, denoise="nlmeans", binarize="adaptive",
                                                   strength=Strength(h, offset), **extra))
                errors, g_errors = restore_errors(restorer, images)
                key = f"{name} h {h:g} offset {offset:g}"
                results[key] = {"mean_abs_count_error": float(np.mean(np.abs(errors))),
                                "max_abs_count_error": float(np.max(np.abs(errors))),
                                "mean_abs_g_error": float(np.mean(np.abs(g_errors))),
                                "max_abs_g_error": float(np.max(np.abs(g_errors))),
                                "per_image_count_error": [round(e, 3) for e in errors]}
                r = results[key]
                log(f"{key:32s} count error mean {r['mean_abs_count_error']:.3f} max {r['max_abs_count_error']:.3f}"
                    f"  |G error| mean {r['mean_abs_g_error']:.3f} max {r['max_abs_g_error']:.3f}")
    return results


def main() -> None:
    """Parse the arguments, run, print per-image lines and one JSON line last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Working folder [default: a temporary one].")
    parser.add_argument("--method", default="default", choices=["default", "model", "bridge", "model+bridge"],
                        help="default: no --method, the model's own choice (its settings), as the README runs it.")
    parser.add_argument("--model", type=Path, default=None, help="A .keras model [default: the bundled one].")
    parser.add_argument("--steel", type=Path, default=STEEL, help="NIST's raw steel micrograph (skipped if absent).")
    parser.add_argument("--sweep", action="store_true", help="Choose the auto preparation instead (other seeds).")
    parser.add_argument("--sweep-strength", action="store_true",
                        help="Choose each method's nlmeans h and adaptive offset instead (other seeds).")
    parser.add_argument("--strength-h", default=",".join(f"{h:g}" for h in STRENGTH_H),
                        help="--sweep-strength: the nlmeans h values (comma separated).")
    parser.add_argument("--strength-offsets", default=",".join(f"{o:g}" for o in STRENGTH_OFFSETS),
                        help="--sweep-strength: the adaptive offsets (comma separated).")
    parser.add_argument("--sweep-methods", default="bridge,model",
                        help="Methods the sweep tries (comma separated; `default`: the model's own choice).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.out or Path(temporary)
        record = {"benchmark": "gray_micrographs", "date": datetime.date.today().isoformat(),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
        if args.sweep:
            record["sweep"] = sweep(work, args.sweep_methods.split(","))
        elif args.sweep_strength:
            record["sweep_strength"] = sweep_strength(
                work, args.sweep_methods.split(","), args.model,
                tuple(float(h) for h in args.strength_h.split(",")), tuple(float(o) for o in args.strength_offsets.split(",")))
        else:
            result = benchmark(work, args.method, args.steel, args.model)
            for name, row in result["images"].items():
                print(f"{name:22s} grains {row['grains']:5d} (truth {row['true_grains']:4d}, "
                      f"{100 * row['count_error']:+6.1f} %)  G {row['g']:6.2f} (truth {row['true_g']:5.2f}, "
                      f"{row['g_error']:+.2f})")
            record.update(result)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
