"""Figures for the lectures: training curves, learned filters, confusion matrices.

matplotlib is imported only when a function is called (install the `plot` extra: pip install cnn[plot]).
Every function returns the matplotlib Figure it drew."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._types import ArrayLike
    from .callbacks import History

__all__ = ["history", "gradient_norms", "filters", "confusion_matrix"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("cnn.plot needs matplotlib; install it with `pip install cnn[plot]` "
                          "(the `plot` extra) or `pip install matplotlib`") from None
    return plt


def history(history: History | dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training and validation, from a History or its .history dict."""
    plt = _pyplot()
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or "loss" not in logs:
        raise ValueError("history must be a cnn History (returned by fit) or its .history dict with 'loss'")
    metric = next((k for k in ("accuracy", "acc") if k in logs), None)
    panels = [("loss", "Loss")] + ([(metric, "Accuracy")] if metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    epochs = np.arange(1, len(logs["loss"]) + 1)
    for ax, (key, title) in zip(axes[0], panels):
        ax.plot(epochs, logs[key], marker="o", label="training")
        if "val_" + key in logs:
            ax.plot(epochs, logs["val_" + key], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gradient_norms(history: History | dict[str, list[float]]) -> Figure:
    """The per-layer gradient norms that cnn.callbacks.GradientNorms logged, one line per layer, log scale:
    in a deep sigmoid net the first layers' lines sit orders of magnitude below the last ones'."""
    plt = _pyplot()
    logs = getattr(history, "history", history)
    keys = [k for k in logs if k.startswith("grad_norm/")]
    if not keys:
        raise ValueError("no 'grad_norm/<layer>' entries: fit with callbacks=[cnn.callbacks.GradientNorms()]")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key in keys:
        ax.plot(np.arange(1, len(logs[key]) + 1), logs[key], marker="o", label=key.split("/", 1)[1])
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean gradient norm")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def filters(weights: ArrayLike, shape: Sequence[int], columns: int | None = None, cmap: str = "seismic") -> Figure:
    """Each column of `weights` (in, units), e.g. a first Dense kernel, as an image of `shape` (28, 28),
    in a grid; the colour scale is symmetric about 0 per image so positive and negative weights show."""
    plt = _pyplot()
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[0] != int(np.prod(shape)):
        raise ValueError(f"weights must be (in, units) with in = {int(np.prod(shape))} for images of shape "
                         f"{tuple(shape)}, got {weights.shape}")
    count = weights.shape[1]
    columns = columns or min(count, 10)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            image = weights[:, i].reshape(shape)
            limit = float(np.abs(image).max()) or 1.0
            ax.imshow(image, cmap=cmap, vmin=-limit, vmax=limit)
            ax.set_title(str(i), fontsize=7)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[str] | None = None) -> Figure:
    """Counts of (true class, predicted class); y_pred may be class indices or per-class scores."""
    plt = _pyplot()
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim == 2:
        y_true = y_true.argmax(axis=1)
    if y_pred.ndim == 2:
        y_pred = y_pred.argmax(axis=1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same number of samples, got {y_true.shape} "
                         f"and {y_pred.shape}")
    k = int(max(y_true.max(), y_pred.max())) + 1
    if labels is not None:
        if len(labels) < k:
            raise ValueError(f"labels has {len(labels)} names but the classes go up to {k - 1}")
        k = len(labels)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    fig, ax = plt.subplots(figsize=(0.6 * k + 2, 0.6 * k + 1.5))
    ax.imshow(counts, cmap="Blues")
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = counts.max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if counts[i, j] > threshold else "black")
    fig.counts = counts
    fig.tight_layout()
    return fig
