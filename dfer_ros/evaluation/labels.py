"""Ground-truth labels for a recording, and matching them to per-face predictions by time.

Two sources:
  * the Aff-Wild2 (ABAW) layout: one text file per task and video (VA: ``valence,arousal``; EXPR:
    the 8 class names then one class id per line; AU: ``AU1,...,AU26`` then 12 x 0/1 per line; -5 / -1
    = ignore). Line i+1 labels frame i of the video, i.e. the i-th image message of the bag's image
    topic (or, for a video file, stamp = i / fps). Parsing is ``dfer_ros.datasets.affwild2``'s.
  * a CSV with a header: ``stamp`` (seconds, required), optional ``face`` (a face/track id; empty =
    the most prominent face), ``expression`` (class name or index into ``--label-classes``),
    ``valence``, ``arousal`` and any ``AU<n>`` columns (0/1, -1 ignore). Empty cells are ignored.

A label is matched to the prediction of the same face (or the largest face when it names none) whose
stamp is nearest, within ``tolerance`` seconds. Labels that find no prediction are counted, not scored.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dfer_ros.datasets.common import DatasetError, labelled_rows
from dfer_ros.vocabulary import ABAW_AU12, ABAW_EXPR8, canonical_expression

log = logging.getLogger(__name__)


class LabelError(ValueError):
    """Labels that cannot be read or used; the message names the file (and line) and the reason."""


@dataclass
class LabelSet:
    """Per-frame (per-face) labels keyed by time. Arrays have one row per label row."""

    stamps: np.ndarray  # (N,) float64 seconds
    faces: list[Optional[str]]  # face/track id per row, None = the most prominent face
    expr: Optional[np.ndarray] = None  # (N,) int64 into expr_classes, -1 ignore
    expr_classes: list[str] = field(default_factory=lambda: list(ABAW_EXPR8))
    va: Optional[np.ndarray] = None  # (N, 2) float64, NaN ignore
    au: Optional[np.ndarray] = None  # (N, A) float64 in {0, 1}, -1 ignore
    au_names: list[str] = field(default_factory=lambda: list(ABAW_AU12))
    source: str = ""

    def __len__(self) -> int:
        return len(self.stamps)

    def labelled(self) -> np.ndarray:
        """(N,) bool: rows with at least one label that is not "ignore" (padding and -1/-5 rows are not)."""
        return labelled_rows(len(self.stamps), self.expr, self.va, self.au)


# ------------------------------------------------------------------------------------ Aff-Wild2
def read_affwild2_labels(frame_stamps: Sequence[float], va: Optional[Path] = None, expr: Optional[Path] = None,
                         au: Optional[Path] = None) -> LabelSet:
    """Labels from Aff-Wild2 annotation files; row i belongs to the frame with stamp ``frame_stamps[i]``.

    Files longer than the recording are cut (with a warning), shorter ones leave the rest unlabelled.
    """
    from dfer_ros.datasets.affwild2 import parse_au, parse_expr, parse_va

    if va is None and expr is None and au is None:
        raise LabelError("no Aff-Wild2 annotation file given (VA, EXPR or AU)")
    stamps = np.asarray(frame_stamps, np.float64)
    n = len(stamps)
    out = LabelSet(stamps=stamps, faces=[None] * n, source=", ".join(str(p) for p in (va, expr, au) if p))

    def fit(arr: np.ndarray, fill, path: Path) -> np.ndarray:
        if len(arr) > n:
            log.warning("%s: %d label lines for %d frames; the extra lines are ignored", path, len(arr), n)
            return arr[:n]
        if len(arr) < n:
            log.warning("%s: %d label lines for %d frames; the last frames are unlabelled", path, len(arr), n)
            return np.concatenate([arr, np.full((n - len(arr),) + arr.shape[1:], fill, arr.dtype)])
        return arr

    try:
        if va is not None:
            out.va = fit(parse_va(Path(va)).astype(np.float64), np.nan, va)
        if expr is not None:
            out.expr = fit(parse_expr(Path(expr)), -1, expr)
        if au is not None:
            out.au = fit(parse_au(Path(au)).astype(np.float64), -1.0, au)
    except DatasetError as exc:
        raise LabelError(str(exc)) from exc
    except OSError as exc:
        raise LabelError(f"cannot read label file: {exc}") from exc
    return out


# ------------------------------------------------------------------------------------------ CSV
def read_csv_labels(path: Path, expr_classes: Sequence[str] = ABAW_EXPR8) -> LabelSet:
    """Labels from a CSV (see the module docstring for the columns)."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: label file not found")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise LabelError(f"{path}:1: empty file (a header with a 'stamp' column is required)")
        cols = [c.strip() for c in reader.fieldnames]
        reader.fieldnames = cols
        if "stamp" not in cols:
            raise LabelError(f"{path}:1: no 'stamp' column in the header {cols}")
        au_cols = [c for c in cols if c.upper().startswith("AU") and c[2:].isdigit()]
        has_expr, has_va = "expression" in cols, ("valence" in cols or "arousal" in cols)
        face_col = "face" if "face" in cols else ("track" if "track" in cols else None)
        if not (has_expr or has_va or au_cols):
            raise LabelError(f"{path}:1: no label column (expression, valence/arousal or AU<n>) in {cols}")
        classes = [canonical_expression(c) for c in expr_classes]
        stamps, faces, expr, va, au = [], [], [], [], []
        for lineno, row in enumerate(reader, start=2):
            try:
                stamp = float(row["stamp"])
            except (TypeError, ValueError):
                raise LabelError(f"{path}:{lineno}: stamp {row.get('stamp')!r} is not a number") from None
            if not math.isfinite(stamp):
                raise LabelError(f"{path}:{lineno}: stamp {stamp} is not finite")
            stamps.append(stamp)
            face = (row.get(face_col) or "").strip() if face_col else ""
            faces.append(face or None)
            if has_expr:
                expr.append(_expr_index((row.get("expression") or "").strip(), classes, path, lineno))
            if has_va:
                va.append([_float_or_nan(row.get(k), path, lineno, k, -5.0) for k in ("valence", "arousal")])
            if au_cols:
                au.append([_au_value(row.get(k), path, lineno, k) for k in au_cols])
    if not stamps:
        raise LabelError(f"{path}: no label rows after the header")
    return LabelSet(stamps=np.asarray(stamps, np.float64), faces=faces,
                    expr=np.asarray(expr, np.int64) if has_expr else None, expr_classes=list(expr_classes),
                    va=np.asarray(va, np.float64) if has_va else None,
                    au=np.asarray(au, np.float64) if au_cols else None,
                    au_names=[c.upper() for c in au_cols] if au_cols else list(ABAW_AU12), source=str(path))


def _expr_index(value: str, classes: list[str], path: Path, lineno: int) -> int:
    if value == "" or value == "-1":
        return -1
    if value.lstrip("-").isdigit():
        idx = int(value)
        if not 0 <= idx < len(classes):
            raise LabelError(f"{path}:{lineno}: expression index {idx} outside 0..{len(classes) - 1}")
        return idx
    name = canonical_expression(value)
    if name not in classes:
        raise LabelError(f"{path}:{lineno}: unknown expression {value!r}; classes: {', '.join(classes)}")
    return classes.index(name)


def _float_or_nan(value, path: Path, lineno: int, column: str, ignore: float) -> float:
    if value is None or str(value).strip() == "":
        return float("nan")
    try:
        v = float(value)
    except ValueError:
        raise LabelError(f"{path}:{lineno}: {column} {value!r} is not a number") from None
    if v == ignore:
        return float("nan")
    if not -1.0 <= v <= 1.0:
        raise LabelError(f"{path}:{lineno}: {column} {v} outside [-1, 1] (and not the ignore value {ignore:g})")
    return v


def _au_value(value, path: Path, lineno: int, column: str) -> float:
    v = (value or "").strip()
    if v == "":
        return -1.0
    if v not in ("0", "1", "-1"):
        raise LabelError(f"{path}:{lineno}: {column} value {v!r} is not 0, 1 or -1")
    return float(v)


# ------------------------------------------------------------------------------------- matching
@dataclass
class Matched:
    """Label rows paired with predictions (index i of each array = one pair)."""

    expr_true: np.ndarray  # (M,) into classes, -1 ignore
    expr_pred: np.ndarray  # (M,) into classes, -1 where the prediction had no expression
    classes: list[str]
    va_true: np.ndarray  # (M, 2)
    va_pred: np.ndarray  # (M, 2)
    au_true: np.ndarray  # (M, A)
    au_pred: np.ndarray  # (M, A) probabilities, NaN where the model has no such AU
    au_names: list[str]
    n_labels: int  # rows with at least one label that is not "ignore"
    n_matched: int
    pairs: list[tuple[int, int]]  # (label row, prediction index)


def _stamp(p: dict) -> float:
    return float(p["stamp"])


def _area(p: dict) -> float:
    box = p.get("bbox") or p.get("box") or [0, 0, 0, 0]
    return float(box[2]) * float(box[3])


def _expr_probs(p: dict) -> tuple[list[str], list[float]]:
    """(labels, probabilities) of a record: ``expression_probs`` as {label: p} (the JSONL format) or
    ``expression_labels`` + a list."""
    probs = p.get("expression_probs")
    if isinstance(probs, dict):
        return list(probs), [float(v) for v in probs.values()]
    return list(p.get("expression_labels") or []), [float(v) for v in (probs or [])]


def match_predictions(labels: LabelSet, predictions: Sequence[dict], tolerance: float = 0.02) -> Matched:
    """Pair each label row with the nearest-in-time prediction of its face (within ``tolerance`` s).

    ``predictions`` are the JSONL records of ``evaluation.predictions``: ``stamp``, ``face_id``, ``bbox`` (to
    pick the most prominent face), ``expression`` (the published label; the arg-max of
    ``expression_probs`` when empty), ``valence``/``arousal`` and ``action_units`` {AU: p}.
    Raises LabelError when no label row
    finds a prediction (wrong bag, wrong time base, or a tolerance too small), naming both time ranges.
    """
    preds = [p for p in predictions if p.get("face_id") is not None]
    if not len(labels):
        raise LabelError(f"{labels.source}: no label rows")
    if not preds:
        raise LabelError(f"{labels.source}: there are no face predictions to match the labels to")
    by_stamp: dict[float, list[int]] = {}
    for i, p in enumerate(preds):
        by_stamp.setdefault(_stamp(p), []).append(i)
    times = np.array(sorted(by_stamp), np.float64)
    classes = [canonical_expression(c) for c in labels.expr_classes]  # matched by canonical name
    shown = list(labels.expr_classes)  # reported with the label file's names
    for p in preds:  # extend with model classes missing from the label set (predicting them is an error)
        for name in _expr_probs(p)[0] or ([p["expression"]] if p.get("expression") else []):
            if canonical_expression(name) not in classes:
                classes.append(canonical_expression(name))
                shown.append(name)
    pairs: list[tuple[int, int]] = []
    rows_with_labels = np.flatnonzero(labels.labelled())
    if not len(rows_with_labels):
        raise LabelError(f"{labels.source}: every label row says 'ignore' (-1 / -5 / empty)")
    for row in rows_with_labels:
        t = labels.stamps[row]
        k = int(np.searchsorted(times, t))
        best = None
        for j in (k - 1, k):
            if 0 <= j < len(times) and abs(times[j] - t) <= tolerance + 1e-9:
                if best is None or abs(times[j] - t) < abs(best - t):
                    best = times[j]
        if best is None:
            continue
        candidates = by_stamp[float(best)]
        face = labels.faces[row]
        if face is not None:
            candidates = [i for i in candidates if str(preds[i]["face_id"]) == face]
        if not candidates:
            continue
        pairs.append((row, max(candidates, key=lambda i: _area(preds[i]))))
    if not pairs:
        lab = labels.stamps[rows_with_labels]
        raise LabelError(
            f"{labels.source}: the labels cover no predicted frame (label stamps {lab.min():.3f}.."
            f"{lab.max():.3f} s, predicted faces at {times.min():.3f}..{times.max():.3f} s, "
            f"tolerance {tolerance} s)")
    rows = np.array([r for r, _ in pairs])
    m = len(pairs)
    expr_true = labels.expr[rows] if labels.expr is not None else np.full(m, -1, np.int64)
    expr_pred = np.array([_pred_class(preds[i], classes) for _, i in pairs], np.int64)
    va_true = labels.va[rows] if labels.va is not None else np.full((m, 2), np.nan)
    va_pred = np.array([[_num(preds[i].get("valence")), _num(preds[i].get("arousal"))] for _, i in pairs],
                       np.float64).reshape(m, 2)
    names = list(labels.au_names)
    au_true = labels.au[rows] if labels.au is not None else np.full((m, len(names)), -1.0)
    au_pred = np.array([_au_probs(preds[i], names) for _, i in pairs], np.float64).reshape(m, len(names))
    return Matched(expr_true, expr_pred, shown, va_true, va_pred, au_true, au_pred, names, len(rows_with_labels), m,
                   pairs)


def _num(v) -> float:
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _pred_class(p: dict, classes: list[str]) -> int:
    """The published label (after hysteresis); the arg-max of the probabilities when there is none."""
    labels, probs = _expr_probs(p)
    name = p.get("expression") or ""
    if not name and labels and probs is not None and len(probs) == len(labels) and len(probs):
        name = labels[int(np.argmax(probs))]
    name = canonical_expression(name) if name else ""
    return classes.index(name) if name in classes else -1


def _au_probs(p: dict, names: list[str]) -> list[float]:
    aus = p.get("action_units")
    if isinstance(aus, dict):
        have = {str(k).upper(): v for k, v in aus.items()}
    else:
        have = dict(zip([str(n).upper() for n in p.get("au_names") or []], p.get("au_probs") or []))
    return [float(have[n.upper()]) if n.upper() in have else float("nan") for n in names]
