"""DFEW reader: clips as frame folders, 5-fold split files (layout in docs/training.md).

Expected layout (the public release, single-labelled protocol):
  <root>/EmoLabel_DataSplit/train(single-labeled)/set_<k>.csv   header ``video_name,label``
  <root>/EmoLabel_DataSplit/test(single-labeled)/set_<k>.csv
  <root>/Clip/clip_224x224/<video_name zero-padded to 5>/<frames>.jpg
Labels 1..7 = happy, sad, neutral, angry, surprise, disgust, fear.
"""
from __future__ import annotations

from pathlib import Path

from dfer_ros.datasets.common import (BASIC7, ClipRecord, DatasetError, DatasetSplit, list_frames,
                                               parse_class, read_text_lines, split_fields)

DEFAULT_CLIP_DIR = "Clip/clip_224x224"


def split_file(root: Path, fold: int, split: str) -> Path:
    if split not in ("train", "test"):
        raise ValueError(f"DFEW split must be 'train' or 'test', not {split!r}")
    if not 1 <= int(fold) <= 5:
        raise ValueError(f"DFEW fold must be 1..5, not {fold}")
    return Path(root) / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{int(fold)}.csv"


def clip_folder(clips: Path, name: str) -> Path:
    """Clip folders are zero-padded to 5 digits; split files may or may not pad the name."""
    direct = clips / name
    if direct.is_dir() or not name.isdigit():
        return direct
    padded = clips / f"{int(name):05d}"
    return padded if padded.is_dir() else direct


def read_dfew(root, fold: int = 1, split: str = "train", clip_dir: str = DEFAULT_CLIP_DIR) -> DatasetSplit:
    root = Path(root)
    path = split_file(root, fold, split)
    lines = read_text_lines(path, "DFEW split file")
    clips = root / clip_dir
    records: list[ClipRecord] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        fields = split_fields(raw)
        if lineno == 1 and not fields[0].isdigit():
            continue  # header (clip names are numbers)
        if len(fields) != 2:
            raise DatasetError(path, f"expected 2 fields (video_name,label), got {len(fields)}", lineno)
        name, label = fields
        label_idx = parse_class(label, BASIC7, path, lineno, one_based=True)
        folder = clip_folder(clips, name)
        try:
            frames = list_frames(folder, f"clip folder of {name!r}")
        except DatasetError as exc:
            raise DatasetError(path, f"{exc.reason}: {folder}", lineno) from exc
        records.append(ClipRecord(clip_id=name, frames=frames, num_frames=len(frames), expression=label_idx))
    if not records:
        raise DatasetError(path, "split file lists no clips")
    return DatasetSplit(name=f"dfew/fold{fold}/{split}", records=records, expression_labels=list(BASIC7),
                        source=str(path))
