"""report.html: one self-contained page per `measure --report` run, for a lab to file.

Method, scale and where it came from, the fields and specimens with E112's confidence interval,
the duplex check, histograms and overlay thumbnails (PNG and JPEG embedded as data: URIs), the
settings and the software's version. No script, stylesheet, font or image is fetched from
anywhere: the page is complete on its own.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import __version__
from pipeline.store import atomic_write
from .outputs import histogram_png
from .summary import ImageRecord

REPORT_HTML = "report.html"
THUMBNAIL_PX = 360  # longest side of an overlay thumbnail
SCALE_FROM = {"option": "--pixel-size", "ome": "OME-TIFF metadata", "imagej": "ImageJ TIFF tags",
              "tiff": "TIFF resolution tags", "": "none (G not computed)"}
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #bbb;padding:.25em .5em;text-align:right}th{background:#eee}"
         "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.5em}"
         "pre{background:#f6f6f6;padding:1em;overflow:auto}")


def _cell(value: Any, digits: int = 2) -> str:
    """A table cell: numbers rounded, NaN and empty as an en dash."""
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return html.escape(str(value)) if value not in ("", None) else "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(data: bytes, mime: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def thumbnail(path: Path) -> bytes | None:
    """A JPEG of the image at `path` scaled to THUMBNAIL_PX on its longest side, or None if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    scale = THUMBNAIL_PX / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None


def _specimen_section(name: str, members: Sequence[ImageRecord], row: dict[str, Any]) -> str:
    scaled = [r.measurement.table.diameter_um for r in members if r.measurement.pixel_size_um > 0]
    diameters = np.concatenate(scaled) if scaled else np.concatenate([r.measurement.table.diameter_px for r in members])
    figure = _image(histogram_png(diameters, f"specimen {name}", "µm" if scaled else "px"), "image/png",
                    f"grain size histograms of specimen {name}")
    table = _table(("quantity", "value"), [
        ("fields", row.get("fields", "")), ("grains", row.get("grains", "")),
        ("planimetric G (E112, Jeffries)", row.get("astm_g_planimetric", "")),
        ("± 95 % CI (G)", row.get("astm_g_planimetric_ci95", "")), ("%RA", row.get("planimetric_ra_pct", "")),
        ("intercept G (E112, Heyn)", row.get("astm_g_intercept", "")),
        ("± 95 % CI (G)", row.get("astm_g_intercept_ci95", "")), ("%RA", row.get("intercept_ra_pct", "")),
        ("mean intercept (µm)", row.get("mean_intercept_um", "")),
        ("duplex (E1181)", row.get("duplex", "")), ("largest grain, ALA G (E930)", row.get("ala_g", "")),
        ("largest grain (µm²)", row.get("largest_grain_um2", ""))])
    return f"<h3>Specimen {html.escape(name)}</h3>{table}<figure>{figure}</figure>"


def report_html(records: Sequence[ImageRecord], columns: Sequence[str], rows: Sequence[Sequence[Any]],
                settings: dict[str, Any], restore_used: str, notes: Sequence[str],
                failures: Sequence[tuple[Path, str]], out_dir: Path) -> str:
    """The page's text (overlay thumbnails read from out_dir)."""
    cells = [dict(zip(columns, row)) for row in rows]
    by_specimen = {c["specimen"]: c for c in cells if c["level"] == "specimen"}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    pattern = ("E112's three concentric circles" if settings["pattern"] == "circles" else
               "straight test lines at " + ", ".join(f"{a:g}°" for a in settings["angles"]))
    method = (f"ASTM E112 planimetric (Jeffries) and lineal intercept (Heyn) methods, {pattern}; "
              f"grains: 4-connected background regions of at least min_grain px; twins: {settings['twins']}; "
              f"border grains {'left out of tables' if settings['exclude_border'] else 'counted 1/2 (E112)'}; "
              f"{'restored first: ' + restore_used if restore_used else 'inputs are boundary maps'}.")
    images = _table(("image", "specimen", "size (px)", "field (px)", "µm / px", "scale from", "grains",
                     "planimetric G", "intercept G"),
                    [(r.name, r.specimen, f"{r.measurement.shape[1]} x {r.measurement.shape[0]}",
                      r.measurement.field_area_px, _cell(r.measurement.pixel_size_um, 4), SCALE_FROM[r.scale_source],
                      r.measurement.table.count, r.measurement.astm_g_planimetric, r.measurement.astm_g_intercept)
                     for r in records])
    specimens = "".join(_specimen_section(name, [r for r in records if r.specimen == name], by_specimen[name])
                        for name in by_specimen)
    overlays = []
    for r in records:
        data = thumbnail(out_dir / f"{r.name}_overlay.png")
        if data is not None:
            overlays.append(f"<figure>{_image(data, 'image/jpeg', r.name)}<figcaption>{html.escape(r.name)}"
                            f"</figcaption></figure>")
    software = f"Reconstruction-GB {__version__}, Python {platform.python_version()}, numpy {np.__version__}, " \
               f"OpenCV {cv2.__version__}"
    problems = "".join(f"<li>{html.escape(str(s))}: {html.escape(reason)}</li>" for s, reason in failures)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Grain size report</title>"
            f"<style>{STYLE}</style></head><body><h1>Grain size report</h1><p>{now}. {html.escape(software)}.</p>"
            f"<h2>Method</h2><p>{html.escape(method)}</p><h2>Fields</h2>{images}"
            f"<h2>Specimens</h2><p>E112 section 15 statistics are over the fields of one specimen only.</p>{specimens}"
            f"<h2>Overlays</h2>{''.join(overlays)}"
            f"<h2>Notes</h2><ul>{''.join(f'<li>{html.escape(n)}</li>' for n in notes)}</ul>"
            + (f"<h2>Not measured</h2><ul>{problems}</ul>" if problems else "")
            + f"<h2>Settings</h2><pre>{html.escape(json.dumps(settings, indent=2), quote=False)}</pre></body></html>\n")


def write_report(path: Path, records: Sequence[ImageRecord], columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 settings: dict[str, Any], restore_used: str, notes: Sequence[str],
                 failures: Sequence[tuple[Path, str]]) -> None:
    """Write report.html (see `report_html`)."""
    text = report_html(records, columns, rows, settings, restore_used, notes, failures, path.parent)
    atomic_write(path, text.encode("utf-8"))
