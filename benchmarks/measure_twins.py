"""Benchmark: `measure --twins merge` on twinned grain maps from the project's own generator, against the truth.

Run from the repo root: `.venv/bin/python benchmarks/measure_twins.py [--count N] [--size PX] [--seed S]`.

Each image is a grain map drawn the `general` way (pipeline.grainmap.draw_grain_map: polySim,
zoomed, with its own merges of neighbouring grains), with twin bands (`add_twins`, bands 4-16 px
wide) in TWINNED of its grains, drawn as 2 px boundaries (pipeline.boundaries.draw_label). Truth:
`measure` of the same map before the twins (`GrainMap.parents`), drawn the same way. Printed, per
image and in total for equiaxed maps (E112's twin rule is for annealed, equiaxed fcc metals) and
for the stretched ones the generator draws too: grains found without and with `--twins merge`,
and `--twins merge` on the twin-free truth (grains merged that are no twins). The last stdout line
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from model.measure.grains import measure_boundary  # noqa: E402
from pipeline.boundaries import draw_label  # noqa: E402
from pipeline.config import GenerationConfig  # noqa: E402
from pipeline.grainmap import GENERAL, draw_grain_map, plan  # noqa: E402
from pipeline.presets import GENERAL_RATES  # noqa: E402
from pipeline.sample import draw  # noqa: E402

TWINNED, WIDTH, SEED = 0.4, 2, 11  # share of grains given a band; boundary width (px); the benchmark's seed


def twinned_pair(index: int, size: int = 512, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, bool]:
    """(twinned boundary image, twin-free truth image, stretched?) of sample `index`: 0 boundary, 255 grain."""
    config = GenerationConfig(size=size, preset="general", **GENERAL_RATES)
    draws, rng = draw(config, seed, index)
    choices = dataclasses.replace(plan(config, rng, GENERAL), twinned_grains=TWINNED, width=WIDTH)
    drawn = draw_grain_map(config, draws, choices, rng, GENERAL)
    boundary_rng = np.random.default_rng(0)  # no pockets: the draw is the same for both maps
    return (draw_label(drawn.grains, WIDTH, 0, GENERAL.pocket_radius, boundary_rng),
            draw_label(drawn.parents, WIDTH, 0, GENERAL.pocket_radius, boundary_rng), choices.shape.stretch > 1)


def compare(index: int, size: int = 512, seed: int = SEED) -> dict[str, object]:
    """Grain counts of one sample: truth, twinned as measured, twinned with --twins merge, truth with it."""
    twinned, truth, stretched = twinned_pair(index, size, seed)
    merged = measure_boundary(twinned, 1.0, None, twins="merge")
    return {"index": index, "stretched": stretched, "truth": measure_boundary(truth, 1.0, None).table.count,
            "twinned": measure_boundary(twinned, 1.0, None).table.count, "merged": merged.table.count,
            "bands": merged.twins.bands, "merged_truth": measure_boundary(truth, 1.0, None, twins="merge").table.count}


def totals(rows: list[dict[str, object]]) -> dict[str, object]:
    """Summed counts and the merged counts' error against the truth, in %."""
    truth = sum(int(r["truth"]) for r in rows)
    sums = {key: sum(int(r[key]) for r in rows) for key in ("truth", "twinned", "merged", "merged_truth", "bands")}
    return {"images": len(rows), **sums,
            "merged_error_pct": round(100 * (sums["merged"] - truth) / truth, 2) if truth else None,
            "merged_truth_error_pct": round(100 * (sums["merged_truth"] - truth) / truth, 2) if truth else None}


def main() -> None:
    """Measure `--count` samples and print per image, then the totals, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    rows = [compare(i, args.size, args.seed) for i in range(args.count)]
    for r in rows:
        print(f"{r['index']:3d} {'stretched' if r['stretched'] else 'equiaxed ':9s} truth {r['truth']:4d} "
              f"twinned {r['twinned']:4d} merged {r['merged']:4d} ({r['bands']} bands) "
              f"merge on truth {r['merged_truth']:4d}", file=sys.stderr)
    result = {"equiaxed": totals([r for r in rows if not r["stretched"]]),
              "stretched": totals([r for r in rows if r["stretched"]]),
              "size": args.size, "seed": args.seed, "twinned_share": TWINNED, "boundary_px": WIDTH}
    for kind in ("equiaxed", "stretched"):
        t = result[kind]
        print(f"{kind}: {t['images']} images, truth {t['truth']}, twinned {t['twinned']}, merged {t['merged']} "
              f"({t['merged_error_pct']:+.1f} %), merge on the twin-free truth {t['merged_truth']} "
              f"({t['merged_truth_error_pct']:+.1f} %)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
