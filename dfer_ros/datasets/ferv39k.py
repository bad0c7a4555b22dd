"""FERV39k reader: face-crop clips grouped by scene, one train and one test list.

Expected layout (the public release):
  <root>/2_ClipsforFaceCrop/<scene>/<sub-scene>/<clip>/<frames>.jpg
  <root>/4_setups/All_scenes/train_All.csv and test_All.csv
Each list line: ``<scene>/<sub-scene>/<clip> <label>`` (space or comma separated; an optional
header line is skipped). Labels are 0-based ids in FERV39K_CLASSES order, or class names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.datasets.common import (ClipRecord, DatasetError, DatasetSplit, list_frames, parse_class,
                                               read_text_lines, split_fields)

# Alphabetical, the order of the released label ids (0..6).
FERV39K_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
CLIP_DIR = "2_ClipsforFaceCrop"


def read_ferv39k(root, split: str = "train", list_file: Optional[str] = None,
                 classes: Sequence[str] = FERV39K_CLASSES) -> DatasetSplit:
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"FERV39k split must be 'train' or 'test', not {split!r}")
    path = Path(list_file) if list_file else root / "4_setups" / "All_scenes" / f"{split}_All.csv"
    lines = read_text_lines(path, "FERV39k list file")
    records: list[ClipRecord] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        fields = split_fields(raw)
        if lineno == 1 and len(fields) == 2 and not fields[1].isdigit() and "/" not in fields[0]:
            continue  # header
        if len(fields) != 2:
            raise DatasetError(path, f"expected 2 fields (clip path, label), got {len(fields)}", lineno)
        rel, label = fields
        label_idx = parse_class(label, classes, path, lineno, one_based=False)
        folder = root / CLIP_DIR / rel
        try:
            frames = list_frames(folder, f"clip folder of {rel!r}")
        except DatasetError as exc:
            raise DatasetError(path, f"{exc.reason}: {folder}", lineno) from exc
        records.append(ClipRecord(clip_id=rel, frames=frames, num_frames=len(frames), expression=label_idx))
    if not records:
        raise DatasetError(path, "list file names no clips")
    return DatasetSplit(name=f"ferv39k/{split}", records=records, expression_labels=list(classes), source=str(path))
