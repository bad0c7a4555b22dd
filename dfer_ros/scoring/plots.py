"""Evaluation figures and tables written next to the metrics (matplotlib, Agg backend, no display).

Each function stands alone (takes arrays, writes one file), so other tools can add their own
plots here without touching these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dfer_ros.scoring.metrics import format_table


def _save(fig, plt, path) -> Path:
    """Lay out ``fig``, write it to ``path`` (creating the folder), close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], path, normalize: bool = True,
                          title: Optional[str] = None) -> Path:
    """Confusion matrix PNG (rows = true class). Normalised rows show per-class recall on the diagonal;
    the raw counts are printed in each cell either way."""
    plt = _pyplot()
    cm = np.asarray(cm, np.float64)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.7 * n), dpi=100)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            txt = f"{shown[i, j]:.2f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > 0.5 * (1 if normalize else shown.max()) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return _save(fig, plt, path)


def write_per_class_table(rows: list[dict], path) -> Path:
    """The per_class_table rows as a markdown table file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_table(rows) + "\n")
    return path


def plot_training_curves(history: list[dict], path, keys: Optional[Sequence[str]] = None) -> Path:
    """One line per metric over epochs from the trainer's per-epoch records."""
    plt = _pyplot()
    keys = list(keys) if keys else sorted({k for h in history for k, v in h.items()
                                          if k != "epoch" and isinstance(v, (int, float))})
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    epochs = [h.get("epoch", i) for i, h in enumerate(history)]
    for k in keys:
        ax.plot(epochs, [h.get(k, np.nan) for h in history], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)
