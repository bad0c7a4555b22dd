"""MAFW reader: 11-class single-label protocol, 5 folds.

Expected layout (the public release):
  <root>/data/frames/<clip id>/<frames>.png|jpg       (frames extracted from data/clips/<id>.mp4)
  <root>/Train & Test Set/single/no_caption/set_<k>/train.txt and test.txt
Each list line: ``<clip id>[.mp4] <label>`` (space or comma separated), the label a class name or
a 1-based id in MAFW11 order. When a clip has no frame folder but ``data/clips/<id>.mp4`` exists,
the video is decoded instead.
"""
from __future__ import annotations

from pathlib import Path

from dfer_ros.datasets.common import (MAFW11, VIDEO_SUFFIXES, ClipRecord, DatasetError, DatasetSplit,
                                               list_frames, parse_class, read_text_lines, split_fields,
                                               video_frame_count)

SPLIT_DIR = Path("Train & Test Set") / "single" / "no_caption"


def split_file(root: Path, fold: int, split: str) -> Path:
    if split not in ("train", "test"):
        raise ValueError(f"MAFW split must be 'train' or 'test', not {split!r}")
    if not 1 <= int(fold) <= 5:
        raise ValueError(f"MAFW fold must be 1..5, not {fold}")
    return Path(root) / SPLIT_DIR / f"set_{int(fold)}" / f"{split}.txt"


def read_mafw(root, fold: int = 1, split: str = "train") -> DatasetSplit:
    root = Path(root)
    path = split_file(root, fold, split)
    lines = read_text_lines(path, "MAFW split file")
    records: list[ClipRecord] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        fields = split_fields(raw)
        if len(fields) != 2:
            raise DatasetError(path, f"expected 2 fields (clip, label), got {len(fields)}", lineno)
        name, label = fields
        clip_id = name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in VIDEO_SUFFIXES else name
        label_idx = parse_class(label, MAFW11, path, lineno, one_based=True)
        folder = root / "data" / "frames" / clip_id
        video = root / "data" / "clips" / f"{clip_id}.mp4"
        try:
            if folder.exists() or not video.is_file():
                frames = list_frames(folder, f"frame folder of {clip_id!r}")
                rec = ClipRecord(clip_id=clip_id, frames=frames, num_frames=len(frames), expression=label_idx)
            else:
                rec = ClipRecord(clip_id=clip_id, video=video, num_frames=video_frame_count(video),
                                 expression=label_idx)
        except DatasetError as exc:
            raise DatasetError(path, f"{exc.reason}: {exc.path}", lineno) from exc
        records.append(rec)
    if not records:
        raise DatasetError(path, "split file lists no clips")
    return DatasetSplit(name=f"mafw/fold{fold}/{split}", records=records, expression_labels=list(MAFW11),
                        source=str(path))
