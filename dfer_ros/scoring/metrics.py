"""Benchmark metrics for expression, valence-arousal and action units, in plain numpy.

Kept free of torch so the same functions score offline training runs, video evaluation and
recorded-bag evaluation. Definitions follow the public benchmarks (DFEW/FERV39k/MAFW report
WAR and UAR, ABAW reports macro F1 for expressions, CCC for valence-arousal and mean F1 for AUs).
Ignored entries (expression label < 0, non-finite VA, AU label < 0) are left out before scoring.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"targets {t.shape} and predictions {p.shape} differ in length")
    keep = t >= 0
    return t[keep], p[keep]


def confusion_matrix(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class; targets < 0 are ignored."""
    t, p = _labels(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if len(t) and (p.min() < 0 or p.max() >= num_classes or t.max() >= num_classes):
        raise ValueError(f"labels outside 0..{num_classes - 1}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def war(y_true, y_pred) -> float:
    """Weighted average recall = plain accuracy over the non-ignored samples (NaN when none)."""
    t, p = _labels(y_true, y_pred)
    return float(np.mean(t == p)) if len(t) else float("nan")


def per_class_recall(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    """Recall of each class; NaN for a class absent from the targets."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def uar(y_true, y_pred, num_classes: Optional[int] = None) -> float:
    """Unweighted average recall: the mean recall over classes PRESENT in the targets.

    A class absent from the targets has no defined recall and is left out (the benchmark
    convention); constant predictions give 1/(number of present classes).
    """
    rec = per_class_recall(y_true, y_pred, num_classes)
    rec = rec[np.isfinite(rec)]
    return float(rec.mean()) if len(rec) else float("nan")


def per_class_f1(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    """F1 of each class; a class with no targets and no predictions gets NaN, otherwise 0 when undefined."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def macro_f1(y_true, y_pred, num_classes: Optional[int] = None) -> float:
    """Macro F1 over the classes (ABAW EXPR metric).

    A class that appears in neither targets nor predictions has no defined F1 and is left out;
    a class predicted but never true (or true but never predicted) scores 0 and counts.
    """
    f1 = per_class_f1(y_true, y_pred, num_classes)
    f1 = f1[np.isfinite(f1)]
    return float(f1.mean()) if len(f1) else float("nan")


def ccc(x, y) -> float:
    """Concordance correlation coefficient 2cov/(var x + var y + (mean x - mean y)^2).

    Population (biased) moments as in the ABAW evaluation; pairs with a non-finite value are
    ignored. Two identical constant series give 1; otherwise a zero denominator gives 0.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"series of lengths {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return float("nan")
    ma, mb = a.mean(), b.mean()
    cov = np.mean((a - ma) * (b - mb))
    denom = a.var() + b.var() + (ma - mb) ** 2
    if denom <= 0:
        return 1.0
    return float(2 * cov / denom)


def va_ccc(va_true, va_pred) -> dict[str, float]:
    """CCC of valence, arousal and their mean for (N, 2) arrays."""
    t = np.asarray(va_true, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(va_pred, dtype=np.float64).reshape(-1, 2)
    v, a = ccc(t[:, 0], p[:, 0]), ccc(t[:, 1], p[:, 1])
    return {"ccc_valence": v, "ccc_arousal": a, "ccc_mean": float(np.nanmean([v, a])) if np.isfinite([v, a]).any()
            else float("nan")}


def _binary_f1(t: np.ndarray, p: np.ndarray) -> float:
    tp = float(np.sum((t == 1) & (p == 1)))
    fp = float(np.sum((t == 0) & (p == 1)))
    fn = float(np.sum((t == 1) & (p == 0)))
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom > 0 else 0.0


def au_f1_per_au(au_true, au_prob, thresholds=0.5) -> np.ndarray:
    """F1 of each AU for (N, A) targets in {0, 1} (-1 = ignore) and probabilities in [0, 1]."""
    t = np.asarray(au_true, dtype=np.float64)
    s = np.asarray(au_prob, dtype=np.float64)
    if t.ndim != 2 or t.shape != s.shape:
        raise ValueError(f"AU targets {t.shape} and scores {s.shape} must both be (N, A)")
    th = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (t.shape[1],))
    out = np.zeros(t.shape[1])
    for j in range(t.shape[1]):
        keep = t[:, j] >= 0
        out[j] = _binary_f1(t[keep, j].astype(np.int64), (s[keep, j] >= th[j]).astype(np.int64)) if keep.any() \
            else np.nan
    return out


def au_f1(au_true, au_prob, thresholds=0.5) -> float:
    """Mean F1 over the AUs (ABAW AU metric); thresholds: one value or one per AU."""
    f1 = au_f1_per_au(au_true, au_prob, thresholds)
    f1 = f1[np.isfinite(f1)]
    return float(f1.mean()) if len(f1) else float("nan")


def tune_au_thresholds(au_true, au_prob, grid: Optional[Sequence[float]] = None) -> np.ndarray:
    """Per-AU threshold maximising F1 on a validation set (ties -> the value closest to 0.5).

    Used on validation predictions only; the tuned thresholds are then applied unchanged to test.
    """
    t = np.asarray(au_true, dtype=np.float64)
    s = np.asarray(au_prob, dtype=np.float64)
    grid = np.asarray(grid if grid is not None else np.round(np.arange(0.05, 0.951, 0.05), 2), dtype=np.float64)
    order = np.argsort(np.abs(grid - 0.5), kind="stable")
    best = np.full(t.shape[1], 0.5)
    for j in range(t.shape[1]):
        keep = t[:, j] >= 0
        if not keep.any():
            continue
        tj, sj = t[keep, j].astype(np.int64), s[keep, j]
        scores = np.array([_binary_f1(tj, (sj >= g).astype(np.int64)) for g in grid])
        best[j] = grid[order[np.argmax(scores[order])]]
    return best


def per_class_table(y_true, y_pred, labels: Sequence[str]) -> list[dict]:
    """One row per class: name, support, predicted count, recall, precision, F1 (NaN where undefined)."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    rows = []
    for i, name in enumerate(labels):
        rec = tp[i] / support[i] if support[i] else float("nan")
        prec = tp[i] / predicted[i] if predicted[i] else float("nan")
        denom = support[i] + predicted[i]
        f1 = 2 * tp[i] / denom if denom else float("nan")
        rows.append({"class": name, "support": int(support[i]), "predicted": int(predicted[i]),
                     "recall": float(rec), "precision": float(prec), "f1": float(f1)})
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text (markdown) rendering of per_class_table rows."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def expression_metrics(y_true, y_pred, num_classes: int) -> dict[str, float]:
    """WAR, UAR and macro F1 together (the numbers every expression benchmark reports)."""
    return {"war": war(y_true, y_pred), "uar": uar(y_true, y_pred, num_classes),
            "macro_f1": macro_f1(y_true, y_pred, num_classes)}
