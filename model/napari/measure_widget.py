"""The Measure dock widget: a boundary Labels layer -> grain-id layer, summary table, size histogram, Save.

Measuring and saving go through `adapter` (the project's `measure_image` and `measure_files`), so
the table equals `cli.py measure`'s summary.csv and Save writes exactly what that command writes.
Edit the boundary layer (paint = boundary, erase = background) and press Measure again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox, Table
from magicgui.widgets import create_widget
from napari.layers import Labels
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import QLabel

from . import adapter


def cell(value: float | int) -> str:
    """A table cell as summary.csv writes numbers (6 significant digits, NaN empty)."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


class MeasureWidget(Container):
    """Measure: pixel size, min grain; grain ids, summary table and histogram; Save as `cli.py measure`."""

    def __init__(self, napari_viewer: Any):
        self.viewer = napari_viewer
        self.boundaries = create_widget(annotation=Labels, label="boundaries")
        self.pixel_size = FloatSpinBox(value=0.0, min=0.0, max=1e6, step=0.01,
                                       label="pixel size (um; 0: none)")
        self.min_grain = SpinBox(value=0, min=0, max=10**9, label="min grain (px; 0: auto)")
        self.exclude_border = CheckBox(value=False, text="exclude border grains")
        self.measure_button = PushButton(text="Measure")
        self.table = Table(value={"data": [], "index": [], "columns": ["value"]}, label="summary")
        self.table.min_height = 8 * 30 + 30  # all rows of the summary without scrolling
        self.out_dir = FileEdit(mode="d", label="save to")
        self.save_button = PushButton(text="Save")
        self.status = Label(value="")
        super().__init__(widgets=[self.boundaries, self.pixel_size, self.min_grain, self.exclude_border,
                                  self.measure_button, self.table, self.out_dir, self.save_button, self.status])
        self.histogram = QLabel()
        self.native.layout().insertWidget(self.native.layout().count() - 3, self.histogram)
        self.boundaries.changed.connect(self._layer_changed)
        self.measure_button.clicked.connect(self.measure)
        self.save_button.clicked.connect(self.save)
        self.result = None
        self.error = ""

    def _say(self, text: str) -> None:
        self.status.value = text
        self.error = text if text.startswith("Error") else ""

    def _layer_changed(self, layer: Labels | None) -> None:
        size = adapter.pixel_size_of(layer.metadata, getattr(layer.source, "path", None)) if layer is not None else None
        if size is not None:
            self.pixel_size.value = size

    def _name(self, layer: Labels) -> str:
        return adapter.safe_name(str(layer.metadata.get("name") or layer.name))

    def _options(self) -> Any:
        return adapter.measure_options(self.pixel_size.value, self.min_grain.value, self.exclude_border.value)

    def measure(self) -> None:
        """Measure the chosen boundary layer as it is now (edits included); show grains, table and histogram."""
        layer = self.boundaries.value
        if layer is None:
            self._say("Error: restore a micrograph first (or choose a boundary Labels layer)")
            return
        try:
            result = adapter.measure(layer.data, self._options())
        except adapter.PluginError as exc:
            self._say(f"Error: {exc}")
            return
        self.result = result
        name = f"{layer.metadata.get('source') or layer.name} grains"
        grains = adapter.grain_ids(result)
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], Labels):
            self.viewer.layers[name].data = grains
        else:
            self.viewer.add_labels(grains, name=name, scale=layer.scale, translate=layer.translate, opacity=0.5)
        self.viewer.layers.selection.active = layer  # keep editing the boundaries, not the grains
        rows = adapter.summary_rows(result)
        self.table.value = {"data": [[cell(v)] for _, v in rows], "index": [label for label, _ in rows],
                            "columns": ["value"]}
        pixmap = QPixmap()
        pixmap.loadFromData(adapter.histogram_png(result, self._name(layer)))
        shown = pixmap.scaledToWidth(360)
        self.histogram.setPixmap(shown)
        self.histogram.setFixedSize(shown.size())  # the whole histogram, title included, never clipped
        self._say(f"{result.table.count} grains")

    def save(self) -> None:
        """Write the boundary map NAME.png and everything `cli.py measure NAME.png` writes, into the chosen folder."""
        layer = self.boundaries.value
        folder = self.out_dir.value
        if layer is None:
            self._say("Error: nothing to save: choose a boundary Labels layer")
            return
        if folder is None or str(folder) in ("", "."):
            self._say("Error: choose a folder to save to")
            return
        try:
            path, report = adapter.save(layer.data, Path(folder), self._name(layer), self._options())
        except adapter.PluginError as exc:
            self._say(f"Error: {exc}")
            return
        self._say(f"saved {path.name}; {report.summary()}")
