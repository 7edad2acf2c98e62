"""Known-answer boundary images for `measure`: square grids, hexagons and Voronoi tessellations, exact G.

Run from the repo root: `.venv/bin/python benchmarks/measure_known.py [--sizes 512 1024 2048]
[--widths 1 2 3 5] [--nist PATH]`.

Every image is the Voronoi diagram of seeds on a lattice (square lattice: squares; offset rows:
regular hexagons; jittered square lattice: a random tessellation), drawn with boundary bands of
exactly `width` px (a pixel is boundary when its centre lies within width / 2 of its cell's
edge). The exact answers come from the geometry, not from the pixels:
- intercepts: the crossings of the ideal (zero-width) cell edges with the very test lines
  `measure` uses (`model.measure.intercepts.line_paths`), found by walking each line from cell to
  cell across the bisectors; on the three circles, by sampling the ideal cells every 1/16 px;
- planimetric: E112's count (inside 1, cut 1/2, corner 1/4) of the ideal cells on the field.
Reported per image: exact and measured intercept and planimetric G (1 px = 1 µm) and their
differences; the target is |difference| <= 0.05 on every image. With --nist, NIST's steel
reference map is measured too (see docs/measure.md). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model.measure.grains import INTERCEPT_OFFSET, INTERCEPT_SLOPE, measure_boundary, planimetric_grain_size  # noqa: E402
from model.measure.intercepts import LINE_ANGLES, Paths, circle_paths, line_paths, pattern_paths  # noqa: E402

OFFSET = 0.013  # lattice shift (px) so that no pixel centre or test line lies exactly on an edge
REACH = 2  # candidate seeds: the 5 x 5 lattice cells around a point's own


@dataclass(frozen=True)
class Tessellation:
    """Seeds on a (possibly jittered) lattice: seeds[j, i] = (x, y) in px, lattice cell (sx, sy) px."""

    seeds: np.ndarray  # (rows, cols, 2) float64
    cell: tuple[float, float]
    origin: tuple[float, float]  # position of lattice cell (0, 0)'s corner

    def _candidates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seed row, seed col) arrays (n, 25) of the lattice cells around each point."""
        j = np.floor((y - self.origin[1]) / self.cell[1]).astype(np.int64)
        i = np.floor((x - self.origin[0]) / self.cell[0]).astype(np.int64)
        dj, di = np.meshgrid(np.arange(-REACH, REACH + 1), np.arange(-REACH, REACH + 1), indexing="ij")
        rows = np.clip(j[:, None] + dj.ravel()[None, :], 0, self.seeds.shape[0] - 1)
        cols = np.clip(i[:, None] + di.ravel()[None, :], 0, self.seeds.shape[1] - 1)
        return rows, cols

    def nearest(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flat index of the nearest seed, distance to the cell's edge) of each point."""
        rows, cols = self._candidates(x, y)
        sx, sy = self.seeds[rows, cols, 0], self.seeds[rows, cols, 1]
        d2 = (sx - x[:, None]) ** 2 + (sy - y[:, None]) ** 2
        best = np.argmin(d2, axis=1)
        pick = np.arange(x.size)
        ax, ay, a2 = sx[pick, best], sy[pick, best], d2[pick, best]
        gap = np.hypot(sx - ax[:, None], sy - ay[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            edge = np.where(gap > 0, (d2 - a2[:, None]) / (2 * gap), np.inf)  # distance to each bisector
        return rows[pick, best] * self.seeds.shape[1] + cols[pick, best], edge.min(axis=1)

    def render(self, shape: tuple[int, int], width: float) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 boundary image: 0 within width / 2 of an edge, 255 elsewhere; ideal cell id of every pixel)."""
        height, w = shape
        image = np.empty(shape, np.uint8)
        cells = np.empty(shape, np.int64)
        for top in range(0, height, 64):
            y, x = np.mgrid[top:min(height, top + 64), 0:w] + 0.5
            cell, edge = self.nearest(x.ravel(), y.ravel())
            image[top:top + y.shape[0]] = np.where(edge < width / 2, 0, 255).reshape(y.shape)
            cells[top:top + y.shape[0]] = cell.reshape(y.shape)
        return image, cells

    def line_crossings(self, paths: Paths) -> int:
        """Crossings of the ideal cell edges with straight test lines, walking each line across the bisectors."""
        ux, uy = paths.direction
        px, py = paths.origin[:, 0] + 1e-9 * ux, paths.origin[:, 1] + 1e-9 * uy
        flat = self.seeds.reshape(-1, 2)
        current, _ = self.nearest(px, py)
        active = np.arange(px.size)
        total = 0
        while active.size:
            a = current[active]
            ax, ay = flat[a, 0], flat[a, 1]
            rows, cols = self._candidates(ax, ay)
            sx, sy = self.seeds[rows, cols, 0], self.seeds[rows, cols, 1]
            x0, y0 = px[active, None], py[active, None]
            toward = ux * (sx - ax[:, None]) + uy * (sy - ay[:, None])
            with np.errstate(divide="ignore", invalid="ignore"):
                t = ((sx - x0) ** 2 + (sy - y0) ** 2 - (ax[:, None] - x0) ** 2 - (ay[:, None] - y0) ** 2) / (2 * toward)
            t = np.where(toward > 1e-12, t, np.inf)
            best = np.argmin(t, axis=1)
            pick = np.arange(active.size)
            crosses = t[pick, best] < paths.length[active]
            total += int(crosses.sum())
            current[active[crosses]] = (rows[pick, best] * self.seeds.shape[1] + cols[pick, best])[crosses]
            active = active[crosses]
        return total

    def circle_crossings(self, paths: Paths) -> int:
        """Crossings of the ideal cell edges with the three circles (cells sampled every 1/16 px)."""
        cx, cy = paths.origin[0]
        total = 0
        for circumference in paths.length:
            radius = circumference / (2 * math.pi)
            phi = np.linspace(0, 2 * math.pi, int(circumference * 16), endpoint=False)
            cell, _ = self.nearest(cx + radius * np.cos(phi), cy - radius * np.sin(phi))
            total += int(np.count_nonzero(cell != np.roll(cell, 1)))
        return total


def tessellation(kind: str, shape: tuple[int, int], cell: float, seed: int = 0) -> Tessellation:
    """Seeds covering `shape` and 3 cells around it: "squares", "hexagons" or "voronoi" (jittered by 0.35 cell)."""
    height, width = shape
    margin = 3
    if kind == "hexagons":
        sx, sy = cell, cell * math.sqrt(3) / 2
    else:
        sx = sy = cell
    origin = (-margin * sx + cell / 2 + OFFSET, -margin * sy + cell / 2 + OFFSET)
    rows, cols = int(math.ceil(height / sy)) + 2 * margin, int(math.ceil(width / sx)) + 2 * margin
    j, i = np.mgrid[0:rows, 0:cols].astype(np.float64)
    x, y = origin[0] + (i + 0.5) * sx, origin[1] + (j + 0.5) * sy
    if kind == "hexagons":
        x = x + np.where(j % 2 == 1, sx / 2, 0.0) - sx / 4
    elif kind == "voronoi":
        rng = np.random.default_rng(seed)
        x = x + rng.uniform(-0.35, 0.35, x.shape) * sx
        y = y + rng.uniform(-0.35, 0.35, y.shape) * sy
    elif kind != "squares":
        raise ValueError(f"unknown tessellation {kind!r}")
    return Tessellation(np.stack([x, y], axis=2), (sx, sy), origin)


def exact_jeffries(cells: np.ndarray) -> float:
    """E112's planimetric count of the ideal cells on the field (inside 1, cut 1/2, 1/4 per corner held)."""
    border = np.unique(np.concatenate([cells[0], cells[-1], cells[:, 0], cells[:, -1]]))
    corners = [cells[0, 0], cells[0, -1], cells[-1, 0], cells[-1, -1]]
    inside = np.unique(cells).size - border.size
    cut = [c for c in border if c not in corners]
    return inside + 0.5 * len(cut) + 0.25 * len(corners)


def exact_answer(tess: Tessellation, cells: np.ndarray, pattern: str = "lines",
                 angles: tuple[float, ...] = LINE_ANGLES) -> dict[str, float]:
    """Exact planimetric and intercept G (1 px = 1 µm) and crossings on `measure`'s test paths."""
    shape = cells.shape
    if pattern == "circles":
        paths = [circle_paths(shape)]
        crossings = tess.circle_crossings(paths[0])
    else:
        paths = [line_paths(shape, a) for a in angles]
        crossings = sum(tess.line_crossings(p) for p in paths)
    length = float(sum(p.length.sum() for p in paths))
    return {"crossings": crossings, "length_px": length,
            "g_intercept": INTERCEPT_SLOPE * math.log10(length / crossings * 1e-3) - INTERCEPT_OFFSET,
            "g_planimetric": planimetric_grain_size(exact_jeffries(cells), shape, 1.0)}


def known_image(kind: str, size: int, cell: float, width: float, seed: int = 0):  # type: ignore[no-untyped-def]
    """(boundary image, tessellation, ideal cell map) of one known-answer image of size x size px."""
    tess = tessellation(kind, (size, size), cell, seed)
    image, cells = tess.render((size, size), width)
    return image, tess, cells


CELLS = {"squares": 32.0, "hexagons": 40.0, "voronoi": 48.0}
NIST_PIXEL_UM = 0.2252  # NIST's readme: 222 px = 50 um on the steel micrograph


def nist_line_grid(white_boundaries: np.ndarray, row_step: int = 60,
                   angles: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0, 180.0)) -> np.ndarray:
    """Segment lengths (px) by the rule of NIST's `count_intersects_line_grid.py` (usnistgov/grain-size-analysis-tools).

    Re-implemented here from its description: the image (boundaries white) is padded with black
    to its diagonal, rotated about its centre by each angle (bilinear, cut at 128), and along rows
    `row_step` px apart each run of black between a white-to-black and the next black-to-white
    edge longer than 2 px is one grain segment. Boundary pixels are not part of any segment.
    """
    height, width = white_boundaries.shape
    pad = int(math.ceil(1.1 * (math.ceil(math.hypot(height, width)) - min(height, width)) * 0.5))
    padded = cv2.copyMakeBorder(white_boundaries, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    centre = ((padded.shape[1] - 1) / 2, (padded.shape[0] - 1) / 2)
    lengths = []
    for angle in angles:
        turned = padded
        if angle:
            matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
            turned = cv2.warpAffine(padded, matrix, padded.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=0)
        white = turned >= 128
        for row in white[::row_step]:
            edges = np.flatnonzero(row[1:] != row[:-1]) + 1  # index of the first pixel after each edge
            starts = edges[~row[edges]]  # white -> black
            ends = edges[row[edges]]  # black -> white
            for start in starts:
                after = ends[ends > start]
                if after.size and after[0] - start > 2:
                    lengths.append(after[0] - start)
    return np.asarray(lengths, np.float64)


def nist_comparison(path: Path, pixel_um: float = NIST_PIXEL_UM) -> dict[str, float]:
    """`measure` (bright boundaries detected and inverted) beside NIST's line-grid rule on NIST's reference map."""
    from model.inference.images import read_image
    from model.measure.run import read_boundary

    gray = read_image(path)
    boundary, inverted, dark = read_boundary(gray, invert=False)
    found = measure_boundary(boundary, pixel_um, None)
    segments = nist_line_grid(np.where(boundary == 0, 255, 0).astype(np.uint8))
    nist_mean_um = float(segments.mean()) * pixel_um
    # NIST's segments leave the boundary pixels out: the same measure from our lines is the length of
    # test line on grain pixels per crossing.
    in_grain = (found.table.grain_map > 0).ravel()
    on_grain = sum(float((in_grain[paths.flat] * np.repeat(paths.step, np.diff(paths.first))).sum())
                   for _, paths in pattern_paths(boundary.shape, "lines", LINE_ANGLES))
    grain_chord_um = on_grain / found.intercepts * pixel_um
    return {"inverted": inverted, "dark_share": round(dark, 4), "grains": found.table.count,
            "min_grain_px": found.min_grain,
            "g_planimetric": round(found.astm_g_planimetric, 4), "g_intercept": round(found.astm_g_intercept, 4),
            "mean_intercept_um": round(found.mean_intercept_um, 4), "crossings": found.intercepts,
            "nist_segments": int(segments.size), "nist_mean_segment_um": round(nist_mean_um, 4),
            "nist_g_intercept": round(INTERCEPT_SLOPE * math.log10(nist_mean_um * 1e-3) - INTERCEPT_OFFSET, 4),
            "grain_chord_um": round(grain_chord_um, 4),
            "g_intercept_grain_chord": round(INTERCEPT_SLOPE * math.log10(grain_chord_um * 1e-3) - INTERCEPT_OFFSET, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--widths", type=float, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--kinds", nargs="+", default=list(CELLS))
    parser.add_argument("--circles", action="store_true", help="also the three-circle pattern")
    parser.add_argument("--nist", type=Path, default=None, help="NIST's steel_reference_boundaries.tif")
    args = parser.parse_args()
    rows = []
    for kind in args.kinds:
        for size in args.sizes:
            for width in args.widths:
                image, tess, cells = known_image(kind, size, CELLS[kind], width, seed=size)
                for pattern in (["lines", "circles"] if args.circles else ["lines"]):
                    exact = exact_answer(tess, cells, pattern)
                    start = time.perf_counter()
                    found = measure_boundary(image, 1.0, None, pattern=pattern)
                    seconds = time.perf_counter() - start
                    row = {"kind": kind, "size": size, "width": width, "pattern": pattern,
                           "exact_crossings": exact["crossings"], "crossings": found.intercepts,
                           "g_intercept_exact": round(exact["g_intercept"], 4),
                           "g_intercept": round(found.astm_g_intercept, 4),
                           "g_intercept_error": round(found.astm_g_intercept - exact["g_intercept"], 4),
                           "g_planimetric_exact": round(exact["g_planimetric"], 4),
                           "g_planimetric": round(found.astm_g_planimetric, 4),
                           "g_planimetric_error": round(found.astm_g_planimetric - exact["g_planimetric"], 4),
                           "seconds": round(seconds, 3)}
                    rows.append(row)
                    print(" ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr, flush=True)
    worst = {f"{pattern}_{key}": max([abs(r[key]) for r in rows if r["pattern"] == pattern], default=None)
             for pattern in ("lines", "circles") for key in ("g_intercept_error", "g_planimetric_error")}
    nist = nist_comparison(args.nist) if args.nist else None
    if nist:
        print(" ".join(f"{k}={v}" for k, v in nist.items()), file=sys.stderr, flush=True)
    print(json.dumps({"images": rows, "worst": worst, "nist_steel": nist,
                      "date": datetime.date.today().isoformat(),
                      "machine": f"{platform.machine()}, {platform.python_version()}"}))


if __name__ == "__main__":
    main()
