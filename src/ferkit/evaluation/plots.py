"""The papers' figures as PNG files: confusion matrices, learning curves, per-class F1,
reliability diagrams, image galleries and model-comparison charts."""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ferkit.fileio import atomic_output

DPI = 110


def _save(fig, path: Path) -> Path:
    """Write atomically, then close the figure (figures are large; never keep them around)."""
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)
    return Path(path)


def _matrix(
    ax, cm: np.ndarray, names: list[str], normalize: bool, title: str, columns: list[str] | None = None
) -> None:
    """Rows = true ``names``; columns = predicted ``columns`` (default the same names)."""
    columns = names if columns is None else columns
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, shown.max()))
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = shown.max() if shown.size else 1
    for i in range(len(names)):
        for j in range(len(columns)):
            text = f"{shown[i, j]:.2f}" if normalize else str(int(shown[i, j]))
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > 0.6 * top else "black")  # fmt: skip


def confusion_png(
    cm: list[list[int]], names: list[str], path: Path, normalize: bool, title: str = "",
    columns: list[str] | None = None,
) -> Path:  # fmt: skip
    """Confusion matrix; ``columns`` (predicted) may hold more classes than the true rows ``names``."""
    width = len(names if columns is None else columns)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * width, 0.8 + 0.7 * len(names)))
    label = "row-normalised (recall per class)" if normalize else "counts"
    _matrix(ax, np.asarray(cm), names, normalize, title or f"Confusion matrix — {label}", columns)
    return _save(fig, path)


def confusions_side_by_side(
    items: list[tuple[str, list[list[int]]]], names: list[str], path: Path, columns: list[str] | None = None
) -> Path:
    width = len(names if columns is None else columns)
    fig, axes = plt.subplots(1, len(items), figsize=(0.8 + 0.7 * width * len(items), 1 + 0.7 * len(names)))
    for ax, (title, cm) in zip(np.atleast_1d(axes), items, strict=True):
        _matrix(ax, np.asarray(cm), names, True, title, columns)
    return _save(fig, path)


def read_history(metrics_csv: Path) -> list[dict]:
    with open(metrics_csv) as fh:
        return [{k: (v if k == "stage" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)]


def learning_curves_png(runs: list[tuple[str, list[dict]]], path: Path) -> Path:
    """Loss and accuracy per epoch, train dashed vs val solid; stage boundaries dotted."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, rows) in enumerate(runs):
        color = f"C{i}"
        epochs = [r["epoch"] for r in rows]
        prefix = f"{name} " if len(runs) > 1 else ""
        for ax, key in ((loss_ax, "loss"), (acc_ax, "acc")):
            ax.plot(epochs, [r[f"train_{key}"] for r in rows], "--", color=color, label=f"{prefix}train")
            ax.plot(
                epochs, [r[f"val_{key}"] for r in rows], "-", marker=".", color=color, label=f"{prefix}val"
            )
        for a, b in pairwise(rows):
            if a["stage"] != b["stage"]:
                for ax in (loss_ax, acc_ax):
                    ax.axvline(a["epoch"] + 0.5, color=color, linestyle=":", alpha=0.7)
    for ax, title in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.set_title(f"Learning curves — {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def bars_png(labels: list[str], values: list[float], title: str, ylabel: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels) + 2), 3.6))
    bars = ax.bar(labels, values, color=[f"C{i % 10}" for i in range(len(labels))])
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8)
    ax.set_ylim(0, max(1.0, max(values, default=0) * 1.12))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    return _save(fig, path)


def reliability_png(bins: dict[str, list[float]], ece: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    lows, widths = np.array(bins["lower"]), np.diff([*bins["lower"], bins["upper"][-1]])
    filled = np.array(bins["count"]) > 0
    ax.bar(lows[filled], np.array(bins["accuracy"])[filled], width=widths[filled], align="edge",
           edgecolor="black", color="C0", label="accuracy")  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability diagram (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def gallery_png(
    images: list[np.ndarray], titles: list[str], path: Path, cols: int = 6, suptitle: str = ""
) -> Path:
    """A grid of uint8 images (HxW, HxWx1 or HxWx3) with a caption under each."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles, strict=False):
        img = img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


def explanation_png(
    face: np.ndarray, overlay: np.ndarray, names: list[str], probs: np.ndarray, path: Path
) -> Path:
    """Input face, Grad-CAM overlay for the predicted class, and the class probabilities."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    a.imshow(face)
    a.set_title("input")
    b.imshow(overlay)
    b.set_title(f"Grad-CAM: {names[int(probs.argmax())]}")
    for ax in (a, b):
        ax.axis("off")
    order = np.arange(len(names))[::-1]
    c.barh(
        [names[i] for i in order], probs[order], color=["C3" if i == probs.argmax() else "C0" for i in order]
    )
    c.set_xlim(0, 1)
    c.set_xlabel("probability")
    c.set_title("class probabilities")
    return _save(fig, path)
