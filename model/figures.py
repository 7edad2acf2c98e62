"""Figures written to disk (never shown in a window): learning curves and sample panels."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed, none is opened

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def learning_curves(history: Sequence[dict[str, float]], path: Path, loss: str = "") -> None:
    """Loss (named in its title) and mIoU per epoch, training beside validation; whole-epoch ticks."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, ("loss", "miou")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            key = prefix + name
            if all(key in row for row in history):
                ax.plot(epochs, [row[key] for row in history], style, label=key, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"loss ({loss})" if name == "loss" and loss else name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def panels(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path: Path,
           row_labels: Sequence[str] = (), title: str = "") -> None:
    """A grid of images: one row per sample, one column per title (gray or RGB images), under `title`."""
    fig, axes = plt.subplots(len(rows), len(titles), figsize=(3 * len(titles), 3 * len(rows)), squeeze=False)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c])
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    try:
        fig.savefig(partial, dpi=100)
        partial.replace(path)
    except BaseException:  # a full disk: no half-written figure left behind
        partial.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
