"""The Restore dock widget: one micrograph (or the shown sample of a store) -> an editable boundary Labels layer.

The work runs in napari's `thread_worker`, which hands each job to a child process (see
`restore_process`: TensorFlow and napari's OpenGL cannot share a process) and yields its
progress to the bar; the UI never waits. Restoring goes through `adapter` only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, ProgressBar, PushButton
from magicgui.widgets import SpinBox, create_widget
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.colormaps import DirectLabelColormap
from . import adapter
from .restore_process import RestoreProcess

BOUNDARY_COLOURS = {None: "transparent", 0: "transparent", 1: "#ff2020"}
TTA = {"the model's": None, "on": True, "off": False}  # predict's --tta/--no-tta, or neither


def boundary_colormap() -> DirectLabelColormap:
    """Boundary pixels (label 1) in red, everything else see-through."""
    return DirectLabelColormap(color_dict=BOUNDARY_COLOURS)


def current_plane(viewer: Any, layer: Image) -> tuple[np.ndarray, int | None]:
    """The 2D image the viewer shows of `layer` (BGR order for colour, as OpenCV reads files) and its slider step."""
    data = layer.data
    spatial = 3 if layer.rgb else 2
    step = None
    if data.ndim > spatial:
        leading = tuple(int(i) for i in viewer.dims.current_step[-data.ndim:-spatial])
        data = data[leading]
        step = leading[-1] if leading else None
    plane = np.asarray(data)
    if layer.rgb:
        plane = np.ascontiguousarray(plane[..., [2, 1, 0, 3][: plane.shape[-1]]])  # napari RGB(A) -> BGR(A)
    return plane, step


class RestoreWidget(Container):
    """Restore: `cli.py predict`'s choices (method, model file, binarize, denoise, scale, invert, threshold,
    min speck, TTA) with its defaults: the bundled model's own method and automatic preparation by the
    input's kind, which the widget says before anything runs."""

    def __init__(self, napari_viewer: Any):
        self.viewer = napari_viewer
        self.image = create_widget(annotation=Image, label="micrograph")
        self.kind = Label(value="")
        self.method = ComboBox(choices=list(adapter.METHODS), value="bundled model", label="method")
        self.model_file = FileEdit(mode="r", filter="*.keras", label="model file", visible=False)
        self.binarize = ComboBox(choices=list(adapter.BINARIZE), value="auto", label="binarize")
        self.denoise = ComboBox(choices=list(adapter.DENOISE), value="auto", label="denoise")
        self.scale = FloatSpinBox(value=1.0, min=0.05, max=8.0, step=0.05, label="scale")
        self.invert = CheckBox(value=False, text="bright boundaries (invert)")
        self.own_threshold = CheckBox(value=False, text="own threshold (else the model's)")
        self.threshold = FloatSpinBox(value=0.5, min=0.0, max=1.0, step=0.05, label="threshold", enabled=False)
        self.min_speck = SpinBox(value=-1, min=-1, max=10**6, label="min speck (px; -1: the model's)")
        self.tta = ComboBox(choices=list(TTA), value="the model's", label="flips (TTA)")
        self.run_button = PushButton(text="Restore")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="tiles")
        self.status = Label(value="")
        super().__init__(widgets=[self.image, self.kind, self.method, self.model_file, self.binarize, self.denoise,
                                  self.scale, self.invert, self.own_threshold, self.threshold, self.min_speck,
                                  self.tta, self.run_button,
                                  self.cancel_button, self.progress, self.status])
        self.method.changed.connect(self._method_changed)
        self.own_threshold.changed.connect(lambda on: setattr(self.threshold, "enabled", bool(on)))
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        for choice in (self.image, self.method, self.binarize, self.denoise):
            choice.changed.connect(self._say_kind)
        self.process = RestoreProcess()  # keeps the loaded model between runs
        self.native.destroyed.connect(lambda *_: self.process.close())
        self.worker = None
        self.busy = False
        self.cancelled = False
        self.error = ""

    def reset_choices(self, *args: Any) -> None:
        """Refresh the layer list (napari calls this as layers come and go), then say the chosen one's kind."""
        super().reset_choices(*args)
        self._say_kind()

    def _method_changed(self, method: str) -> None:
        self.model_file.visible = method in ("other model file", "model", "model+bridge")
        self.threshold.visible = self.own_threshold.visible = self.tta.visible = method not in ("bridge", "none")

    def _options(self) -> Any:
        return adapter.restore_options(self.method.value, self.model_file.value,
                                       self.threshold.value if self.own_threshold.value else None,
                                       self.binarize.value, self.denoise.value, self.invert.value, self.scale.value,
                                       None if self.min_speck.value < 0 else int(self.min_speck.value),
                                       TTA[self.tta.value])

    def _say_kind(self, *_: Any) -> None:
        """Say the chosen layer's input kind and the preparation it gets (`cli.py predict`'s first line)."""
        layer = self.image.value
        if layer is None:
            self.kind.value = ""
            return
        try:
            plane, _ = current_plane(self.viewer, layer)
            options = adapter.restore_options(self.method.value, self.model_file.value, None, self.binarize.value,
                                              self.denoise.value, self.invert.value, self.scale.value)
            self.kind.value = adapter.preparation_line(adapter.kind_of(plane), options)
        except adapter.PluginError as exc:
            self.kind.value = str(exc)

    def _advance(self, tiles: int) -> None:
        self.progress.value = min(self.progress.max, self.progress.value + tiles)

    def _say(self, text: str) -> None:
        self.status.value = text
        self.error = text if text.startswith("Error") else ""

    def run(self) -> None:
        """Start restoring the chosen layer's shown plane in a worker thread."""
        layer = self.image.value
        if self.busy:
            return
        if layer is None:
            self._say("Error: open a micrograph first")
            return
        try:
            options = self._options()
            plane, step = current_plane(self.viewer, layer)
            kind = adapter.preparation_line(adapter.kind_of(plane), options)
            gray = adapter.unit_gray(plane)  # refuse an unusable image here, before any work starts
        except adapter.PluginError as exc:
            self._say(f"Error: {exc}")
            return
        self.kind.value = kind
        self.process.new_job()
        self.busy, self.cancelled, self.run_button.enabled, self.cancel_button.enabled = True, False, False, True
        self.progress.value, self.progress.max = 0, 1
        self._say("loading the model..." if options.uses_model else "restoring...")
        # With an "errored" handler of our own the worker shows the error instead of re-raising it.
        self.worker = self._work(options, gray, _connect={"errored": lambda exc: self._say(f"Error: {exc}")},
                                 _start_thread=False)
        self.worker.yielded.connect(self._report)
        self.worker.returned.connect(lambda labels: self._show(layer, step, labels))
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def cancel(self) -> None:
        """Stop the restoration under way (the child process is stopped; nothing is added to the viewer)."""
        if self.busy:
            self.cancelled = True
            self.process.cancel()

    @thread_worker
    def _work(self, options: Any, gray: np.ndarray):  # type: ignore[no-untyped-def]
        for kind, value in self.process.run(options, gray):
            if kind == "labels":
                return value
            if kind == "cancelled":
                return None
            if kind == "error":
                raise adapter.PluginError(value)
            yield kind, value

    def _report(self, message: tuple[str, Any]) -> None:
        kind, value = message
        if kind == "tiles":
            tiles, used = value
            self.progress.max = max(1, tiles)
            self._say(f"restoring: {used}")
        else:
            self._advance(value)

    def _finished(self) -> None:
        self.busy, self.run_button.enabled, self.cancel_button.enabled = False, True, False

    def _show(self, layer: Image, step: int | None, labels: np.ndarray | None) -> None:
        if labels is None:
            self.progress.value = 0
            self._say("cancelled")
            return
        name = f"{layer.name} boundaries"
        stem = adapter.safe_name(layer.name if step is None else f"{layer.name}_{step}")
        # The micrograph's scale goes with its boundaries: Measure reads it (a reader's, else the file's tags).
        pixel = adapter.pixel_size_of(layer.metadata, getattr(layer.source, "path", None))
        metadata = {"source": layer.name, "sample": step, "name": stem, "restore": self.status.value,
                    **({"pixel_size_um": pixel} if pixel is not None else {})}
        scale, translate = layer.scale[-2:], layer.translate[-2:]  # a layer's ndim leaves out RGB channels
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], Labels):
            target = self.viewer.layers[name]
            target.data, target.metadata = labels, metadata
        else:
            target = self.viewer.add_labels(labels, name=name, metadata=metadata, scale=scale, translate=translate,
                                            opacity=1.0, colormap=boundary_colormap())
        self.progress.value = self.progress.max
        target.selected_label = 1  # painting draws boundary, erasing (label 0) removes it
        target.brush_size = 2
        self._say(f"{int(labels.sum())} boundary pixels; paint or erase in '{name}', then Measure")
