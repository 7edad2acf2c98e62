"""The Measure dock widget: a boundary Labels layer -> grain-id layer, summary table, size histogram, Save.

Measuring and saving go through `adapter` (the project's `measure_image` and `measure_files`), so
the table equals `cli.py measure`'s summary.csv and Save writes exactly what that command writes.
Both run in napari's `thread_worker` (a 2048 px map takes seconds): the bar shows work under way,
Cancel drops the result. Edit the boundary layer (paint = boundary, erase = background) and press
Measure again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, Container, FileEdit, FloatSpinBox, Label, ProgressBar, PushButton, SpinBox
from magicgui.widgets import Table, create_widget
from napari.layers import Labels
from napari.qt.threading import create_worker
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
        self.scale_source = Label(value="")
        self.measure_button = PushButton(text="Measure")
        self.table = Table(value={"data": [], "index": [], "columns": ["value"]}, label="summary")
        self.table.min_height = 8 * 30 + 30  # all rows of the summary without scrolling
        self.out_dir = FileEdit(mode="d", label="save to")
        self.save_button = PushButton(text="Save")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="work")
        self.status = Label(value="")
        super().__init__(widgets=[self.boundaries, self.pixel_size, self.scale_source, self.min_grain,
                                  self.exclude_border, self.measure_button, self.table, self.out_dir, self.save_button,
                                  self.cancel_button, self.progress, self.status])
        self.histogram = QLabel()
        self.native.layout().insertWidget(self.native.layout().count() - 5, self.histogram)
        self.boundaries.changed.connect(self._layer_changed)
        self.measure_button.clicked.connect(self.measure)
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.cancel)
        self.result = None
        self.worker = None
        self.busy = False
        self.cancelled = False
        self.error = ""
        self._layer_changed(self.boundaries.value)

    def _say(self, text: str) -> None:
        self.status.value = text
        self.error = text if text.startswith("Error") else ""

    def _layer_changed(self, layer: Labels | None) -> None:
        """Take the layer's pixel size (its metadata, else its file's TIFF/ImageJ/OME tags); say where it came from."""
        if layer is None:
            return
        size = adapter.pixel_size_of(layer.metadata, getattr(layer.source, "path", None))
        if size is not None:
            self.pixel_size.value = size
            self.scale_source.value = f"pixel size {size:g} um, from {layer.metadata.get('source') or layer.name}"
        else:
            self.scale_source.value = "no pixel size in the layer's file: type one (0: G left empty)"

    def _start(self, work: Any, done: Any) -> None:
        """Run `work()` in a worker thread; `done(result)` on the UI thread unless cancelled; errors in one line."""
        self.busy, self.cancelled = True, False
        self.measure_button.enabled = self.save_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.min, self.progress.max, self.progress.value = 0, 0, 0  # min = max: Qt's busy bar
        self._say("measuring...")

        def returned(result: Any) -> None:
            if self.cancelled:
                self._say("cancelled")
            else:
                done(result)

        def failed(exc: Exception) -> None:
            self._say("cancelled" if self.cancelled else f"Error: {exc}")

        self.worker = create_worker(work, _connect={"returned": returned, "errored": failed,
                                                    "finished": self._finished}, _start_thread=False)
        self.worker.start()

    def _finished(self) -> None:
        self.busy = False
        self.measure_button.enabled = self.save_button.enabled = True
        self.cancel_button.enabled = False
        self.progress.max, self.progress.value = 1, 0 if self.cancelled else 1

    def cancel(self) -> None:
        """Drop the measurement under way: its result is not shown (nothing is saved past what was written)."""
        if self.busy:
            self.cancelled = True
            self._say("cancelling...")

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
        if self.busy:
            return
        try:
            options = self._options()
        except adapter.PluginError as exc:
            self._say(f"Error: {exc}")
            return
        data = layer.data.copy()  # what the layer holds now; edits while measuring count next time
        self._start(lambda: adapter.measure(data, options), lambda result: self._shown(layer, result))

    def _shown(self, layer: Labels, result: Any) -> None:
        """Show one measurement: the grain-id layer, the table and the histogram."""
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
        if self.busy:
            return
        try:
            options = self._options()
        except adapter.PluginError as exc:
            self._say(f"Error: {exc}")
            return
        data, name = layer.data.copy(), self._name(layer)
        self._start(lambda: adapter.save(data, Path(folder), name, options),
                    lambda saved: self._say(f"saved {saved[0].name}; {saved[1].summary()}"))
