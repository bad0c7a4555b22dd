"""Metrics of matched labels/predictions: computed with ``metrics``, printed as tables, saved as JSON.

Expression: WAR, UAR, macro F1 and a per-class table (label classes plus any model class the labels
lack, so predicting a class that never occurs counts as an error). Valence-arousal: CCC of each and
their mean. Action units: F1 per AU (threshold 0.5) and their mean, over the AUs the model outputs.
A task without labels (or without predictions) is reported as ``null`` rather than a made-up score.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dfer_ros.scoring import metrics as M
from dfer_ros.evaluation.labels import Matched


def compute_report(m: Matched, au_threshold: float = 0.5) -> dict[str, Any]:
    """All metrics of one evaluation as a JSON-ready dict."""
    out: dict[str, Any] = {"labels": m.n_labels, "matched": m.n_matched, "expression": None,
                           "valence_arousal": None, "action_units": None}
    keep = (m.expr_true >= 0) & (m.expr_pred >= 0)
    if keep.any():
        t, p, n = m.expr_true[keep], m.expr_pred[keep], len(m.classes)
        out["expression"] = {
            "frames": int(keep.sum()), "classes": list(m.classes), **M.expression_metrics(t, p, n),
            "per_class": M.per_class_table(t, p, m.classes),
            "confusion_matrix": M.confusion_matrix(t, p, n).tolist()}
    va_keep = np.isfinite(m.va_true).any(axis=1) & np.isfinite(m.va_pred).all(axis=1)
    if va_keep.any():
        out["valence_arousal"] = {"frames": int(va_keep.sum()), **M.va_ccc(m.va_true[va_keep], m.va_pred[va_keep])}
    have = [j for j in range(len(m.au_names)) if np.isfinite(m.au_pred[:, j]).all() and (m.au_true[:, j] >= 0).any()]
    if have:
        t, s = m.au_true[:, have], m.au_pred[:, have]
        per = M.au_f1_per_au(t, s, au_threshold)
        out["action_units"] = {"threshold": au_threshold, "aus": [m.au_names[j] for j in have],
                               "f1_mean": M.au_f1(t, s, au_threshold),
                               "per_au": {m.au_names[j]: float(f) for j, f in zip(have, per)},
                               "frames": int((t >= 0).any(axis=1).sum())}
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables: a summary line per task, then per-class and per-AU tables."""
    lines = [f"labels: {report['labels']}, matched to predictions: {report['matched']}", "",
             "| task | metric | value | frames |", "|---|---|---|---|"]
    e, va, au = report["expression"], report["valence_arousal"], report["action_units"]
    if e:
        for k in ("war", "uar", "macro_f1"):
            name = k.upper() if k != "macro_f1" else "macro F1"
            lines.append(f"| expression | {name} | {_fmt(e[k])} | {e['frames']} |")
    else:
        lines.append("| expression | - | no labelled frames | 0 |")
    if va:
        for k, name in (("ccc_valence", "CCC valence"), ("ccc_arousal", "CCC arousal"), ("ccc_mean", "CCC mean")):
            lines.append(f"| valence-arousal | {name} | {_fmt(va[k])} | {va['frames']} |")
    else:
        lines.append("| valence-arousal | - | no labelled frames | 0 |")
    if au:
        lines.append(f"| action units | mean F1 (th {au['threshold']}) | {_fmt(au['f1_mean'])} | {au['frames']} |")
    else:
        lines.append("| action units | - | no labelled frames or no AU output | 0 |")
    if e:
        lines += ["", "per class (expression):", M.format_table(e["per_class"])]
    if au:
        lines += ["", "| AU | F1 |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in au["per_au"].items()]
    return "\n".join(lines)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def save_report(report: dict[str, Any], path, extra: Optional[dict] = None) -> Path:
    """Write the report (plus ``extra``, e.g. the bag and model) as JSON; NaN becomes null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable({**(extra or {}), **report}), indent=2) + "\n")
    return path
