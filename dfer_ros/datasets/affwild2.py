"""Aff-Wild2 (ABAW) reader: per-frame VA, EXPR and AU annotations of whole videos.

Expected layout (the ABAW release; task folder names of ABAW3..ABAW8 are all accepted):
  <root>/cropped_aligned/<video>/00001.jpg, 00002.jpg, ...   (frame i of the video = line i+1 of its file)
  <root>/annotations/VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt
      header ``valence,arousal`` then one ``v,a`` line per frame; -5 = ignore
  <root>/annotations/EXPR_Recognition_Challenge/{Train_Set,Validation_Set}/<video>.txt
      header of the 8 class names then one class id per frame (ABAW_EXPR8 order); -1 = ignore
  <root>/annotations/AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt
      header ``AU1,AU2,...,AU26`` (12 names) then 12 comma-separated 0/1 per frame; -1 = ignore
A video is listed when any requested task annotates it; a task that does not annotate it leaves
those labels ignored. cropped_aligned of the real release lacks frames where no face was found:
``missing_frames="mask"`` ignores the labels of such frames, the default ``"error"`` refuses them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dfer_ros.datasets.common import (ABAW_AU12, ABAW_EXPR8, ClipRecord, DatasetError, DatasetSplit,
                                               read_text_lines)

TASK_DIRS = {
    "VA": ("VA_Estimation_Challenge", "VA_Set"),
    "EXPR": ("EXPR_Recognition_Challenge", "EXPR_Classification_Challenge", "EXPR_Set"),
    "AU": ("AU_Detection_Challenge", "AU_Set"),
}
SPLIT_DIRS = {"train": "Train_Set", "validation": "Validation_Set", "val": "Validation_Set"}
VA_IGNORE = -5.0
LABEL_IGNORE = -1


def task_folder(annotations: Path, task: str, split: str) -> Path:
    if task not in TASK_DIRS:
        raise ValueError(f"Aff-Wild2 task must be one of {sorted(TASK_DIRS)}, not {task!r}")
    if split not in SPLIT_DIRS:
        raise ValueError(f"Aff-Wild2 split must be one of {sorted(SPLIT_DIRS)}, not {split!r}")
    for name in TASK_DIRS[task]:
        folder = annotations / name / SPLIT_DIRS[split]
        if folder.is_dir():
            return folder
    raise DatasetError(annotations / TASK_DIRS[task][0] / SPLIT_DIRS[split],
                       f"annotation folder for {task} missing (tried {', '.join(TASK_DIRS[task])})")


def _rows(path: Path, expected: int, header_names: Optional[Sequence[str]] = None) -> list[tuple[int, list[str]]]:
    lines = read_text_lines(path, "annotation file")
    if not lines:
        raise DatasetError(path, "annotation file is empty (a header line is required)", 1)
    header = [h.strip() for h in lines[0].split(",")]
    if header_names is not None and [h.lower() for h in header] != [h.lower() for h in header_names]:
        raise DatasetError(path, f"header {lines[0]!r} does not match {','.join(header_names)}", 1)
    rows = []
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            if lineno == len(lines):  # tolerate a trailing empty line
                continue
            raise DatasetError(path, "empty line inside the annotations", lineno)
        fields = [f.strip() for f in raw.split(",")]
        if len(fields) != expected:
            raise DatasetError(path, f"expected {expected} field(s), got {len(fields)}", lineno)
        rows.append((lineno, fields))
    return rows


def parse_va(path: Path) -> np.ndarray:
    """(F, 2) float32, NaN where the file says -5."""
    rows = _rows(path, 2)
    out = np.full((len(rows), 2), np.nan, np.float32)
    for i, (lineno, fields) in enumerate(rows):
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            raise DatasetError(path, f"valence/arousal {fields} are not numbers", lineno) from None
        for k, v in enumerate(vals):
            if v == VA_IGNORE:
                continue
            if not -1.0 <= v <= 1.0:
                raise DatasetError(path, f"value {v} outside [-1, 1] (and not the ignore value -5)", lineno)
            out[i, k] = v
    return out


def parse_expr(path: Path, num_classes: int = len(ABAW_EXPR8)) -> np.ndarray:
    """(F,) int64, -1 ignore."""
    rows = _rows(path, 1)
    out = np.full(len(rows), LABEL_IGNORE, np.int64)
    for i, (lineno, fields) in enumerate(rows):
        try:
            v = int(fields[0])
        except ValueError:
            raise DatasetError(path, f"unknown label {fields[0]!r}", lineno) from None
        if v != LABEL_IGNORE and not 0 <= v < num_classes:
            raise DatasetError(path, f"unknown label {v} (expected 0..{num_classes - 1} or -1)", lineno)
        out[i] = v
    return out


def parse_au(path: Path, au_names: Sequence[str] = ABAW_AU12) -> np.ndarray:
    """(F, A) float32 in {0, 1}, -1 ignore."""
    rows = _rows(path, len(au_names), header_names=au_names)
    out = np.full((len(rows), len(au_names)), LABEL_IGNORE, np.float32)
    for i, (lineno, fields) in enumerate(rows):
        for k, f in enumerate(fields):
            if f not in ("0", "1", "-1"):
                raise DatasetError(path, f"AU value {f!r} for {au_names[k]} is not 0, 1 or -1", lineno)
            out[i, k] = float(f)
    return out


def _pad(arr: Optional[np.ndarray], n: int, fill) -> Optional[np.ndarray]:
    if arr is None or len(arr) >= n:
        return arr
    pad = np.full((n - len(arr),) + arr.shape[1:], fill, arr.dtype)
    return np.concatenate([arr, pad])


def read_affwild2(root, split: str = "train", tasks: Sequence[str] = ("VA", "EXPR", "AU"),
                  annotations_dir: str = "annotations", frames_dir: str = "cropped_aligned",
                  missing_frames: str = "error", frame_suffix: str = ".jpg") -> DatasetSplit:
    if missing_frames not in ("error", "mask"):
        raise ValueError(f"missing_frames must be 'error' or 'mask', not {missing_frames!r}")
    root = Path(root)
    annotations = root / annotations_dir
    files: dict[str, dict[str, Path]] = {}
    for task in tasks:
        for p in sorted(task_folder(annotations, task, split).glob("*.txt")):
            files.setdefault(p.stem, {})[task] = p
    if not files:
        raise DatasetError(annotations, f"no annotation files for tasks {list(tasks)} in split {split!r}")
    records: list[ClipRecord] = []
    for video, by_task in sorted(files.items()):
        va = parse_va(by_task["VA"]) if "VA" in by_task else None
        expr = parse_expr(by_task["EXPR"]) if "EXPR" in by_task else None
        aus = parse_au(by_task["AU"]) if "AU" in by_task else None
        n = max(len(a) for a in (va, expr, aus) if a is not None)
        va, expr, aus = _pad(va, n, np.nan), _pad(expr, n, LABEL_IGNORE), _pad(aus, n, LABEL_IGNORE)
        folder = root / frames_dir / video
        if not folder.is_dir():
            raise DatasetError(next(iter(by_task.values())), f"frame folder {folder} does not exist")
        names = {p.name for p in folder.iterdir()}
        frames = [folder / f"{i + 1:05d}{frame_suffix}" for i in range(n)]
        present = np.array([f.name in names for f in frames], dtype=bool)
        labelled = np.zeros(n, bool)
        if va is not None:
            labelled |= np.isfinite(va).any(axis=1)
        if expr is not None:
            labelled |= expr >= 0
        if aus is not None:
            labelled |= (aus >= 0).any(axis=1)
        lacking = np.flatnonzero(labelled & ~present)
        if len(lacking):
            if missing_frames == "error":
                i = int(lacking[0])
                task, path = next(iter(by_task.items()))
                raise DatasetError(path, f"frame folder {folder} is shorter than its annotations: no image "
                                         f"{frames[i].name} for this annotated frame ({len(lacking)} such frames; "
                                         f"use missing_frames: mask to ignore them)", i + 2)
            if va is not None:
                va[~present] = np.nan
            if expr is not None:
                expr[~present] = LABEL_IGNORE
            if aus is not None:
                aus[~present] = LABEL_IGNORE
        records.append(ClipRecord(clip_id=video, frames=frames, num_frames=n, frame_expression=expr, frame_va=va,
                                  frame_aus=aus, frame_present=present))
    return DatasetSplit(name=f"affwild2/{split}", records=records,
                        expression_labels=list(ABAW_EXPR8) if "EXPR" in tasks else [],
                        au_names=list(ABAW_AU12) if "AU" in tasks else [], has_va="VA" in tasks,
                        source=str(annotations))
