"""Generic CSV manifest: one row per clip, a frame folder or a video file, with any labels.

Columns (header required, order free):
  path        frame folder or video file, relative to the manifest's folder (or absolute)
  split       optional: rows are kept when it equals the requested split
  expression  optional: class name or 0-based id into ``expression_labels``; empty = none
  valence, arousal   optional floats in [-1, 1]; empty = none
  AU<n> ...   optional AU columns (any header starting with "AU"), values 0/1, empty or -1 = ignore
  num_frames  optional: the frames the clip must have (a shorter folder is an error)
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dfer_ros.datasets.common import (VIDEO_SUFFIXES, ClipRecord, DatasetError, DatasetSplit, list_frames,
                                               parse_class, video_frame_count)


def read_manifest(path, split: Optional[str] = None, expression_labels: Optional[Sequence[str]] = None,
                  root: Optional[str] = None) -> DatasetSplit:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "manifest not found")
    base = Path(root) if root else path.parent
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DatasetError(path, "manifest is empty (a header line is required)", 1) from None
        rows = [(i, row) for i, row in enumerate(reader, start=2)]
    if "path" not in header:
        raise DatasetError(path, f"header {header} lacks the required 'path' column", 1)
    col = {h: i for i, h in enumerate(header)}
    au_cols = [h for h in header if h.upper().startswith("AU")]
    has_expr = "expression" in col
    if has_expr and expression_labels is None:
        names = sorted({r[col["expression"]].strip() for _, r in rows
                        if len(r) == len(header) and r[col["expression"]].strip()
                        and not r[col["expression"]].strip().lstrip("-").isdigit()})
        if not names:
            raise DatasetError(path, "numeric expression ids need expression_labels in the dataset config", 1)
        expression_labels = names
    labels = list(expression_labels or [])
    has_va = "valence" in col and "arousal" in col
    records: list[ClipRecord] = []
    for lineno, row in rows:
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DatasetError(path, f"expected {len(header)} fields, got {len(row)}", lineno)
        get = lambda name: row[col[name]].strip() if name in col else ""  # noqa: E731
        if split is not None and "split" in col and get("split") != split:
            continue
        target = Path(get("path"))
        target = target if target.is_absolute() else base / target
        expr = -1
        if has_expr and get("expression") not in ("", "-1"):
            expr = parse_class(get("expression"), labels, path, lineno, one_based=False)
        va = [float("nan"), float("nan")]
        if has_va:
            for k, name in enumerate(("valence", "arousal")):
                if get(name):
                    try:
                        v = float(get(name))
                    except ValueError:
                        raise DatasetError(path, f"{name} {get(name)!r} is not a number", lineno) from None
                    if not -1 <= v <= 1:
                        raise DatasetError(path, f"{name} {v} outside [-1, 1]", lineno)
                    va[k] = v
        aus = None
        if au_cols:
            aus = np.full(len(au_cols), -1, np.float32)
            for k, name in enumerate(au_cols):
                v = get(name)
                if v in ("", "-1"):
                    continue
                if v not in ("0", "1"):
                    raise DatasetError(path, f"{name} value {v!r} is not 0, 1, -1 or empty", lineno)
                aus[k] = float(v)
        try:
            if target.suffix.lower() in VIDEO_SUFFIXES:
                if not target.is_file():
                    raise DatasetError(target, "video file does not exist")
                rec = ClipRecord(clip_id=get("path"), video=target, num_frames=video_frame_count(target))
            else:
                frames = list_frames(target)
                rec = ClipRecord(clip_id=get("path"), frames=frames, num_frames=len(frames))
        except DatasetError as exc:
            raise DatasetError(path, f"{exc.reason}: {exc.path}", lineno) from exc
        if get("num_frames"):
            need = int(get("num_frames"))
            if rec.num_frames < need:
                raise DatasetError(path, f"{target} has {rec.num_frames} frames, fewer than its num_frames {need}",
                                   lineno)
        rec.expression, rec.valence, rec.arousal, rec.aus = expr, va[0], va[1], aus
        records.append(rec)
    if not records:
        raise DatasetError(path, f"no rows{'' if split is None else f' for split {split!r}'}")
    return DatasetSplit(name=f"manifest/{path.stem}" + (f"/{split}" if split else ""), records=records,
                        expression_labels=labels, au_names=au_cols, has_va=has_va, source=str(path))
