"""What every dataset reader returns, and the checks they share.

A reader turns one public layout into a ``DatasetSplit``: a list of ``ClipRecord`` (one per clip
or video) with labels in the dataset's own class order, plus that order. Clip-level datasets
(DFEW, FERV39k, MAFW, manifests) label a whole clip; Aff-Wild2 labels every frame, so its records
carry per-frame arrays and training samples windows out of them.

Ignored labels are normalised here once: expression -1, valence/arousal NaN, AU -1. Readers raise
``DatasetError`` naming the file and line of anything malformed, so a bad download is found before
hours of training, not during them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dfer_ros import vocabulary

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")

# The class orders of the public benchmarks live in dfer_ros.vocabulary; lists here for the readers.
BASIC7 = list(vocabulary.BASIC7)
MAFW11 = list(vocabulary.MAFW11)
ABAW_EXPR8 = list(vocabulary.ABAW_EXPR8)
ABAW_AU12 = list(vocabulary.ABAW_AU12)
canonical_expression = vocabulary.canonical_expression


class DatasetError(ValueError):
    """A dataset on disk does not match its documented layout; the message names file and line."""

    def __init__(self, path, reason: str, line: Optional[int] = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {reason}")
        self.path = Path(path)
        self.line = line
        self.reason = reason


def label_mapping(source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Index array m with m[i] = position of source class i among target classes (by canonical name)."""
    tgt = {canonical_expression(n): i for i, n in enumerate(target)}
    missing = [n for n in source if canonical_expression(n) not in tgt]
    if missing:
        raise ValueError(f"classes {missing} of the dataset are not among the model's classes {list(target)}")
    return np.array([tgt[canonical_expression(n)] for n in source], dtype=np.int64)


def labelled_rows(n: int, expression: Optional[np.ndarray], va: Optional[np.ndarray],
                  aus: Optional[np.ndarray]) -> np.ndarray:
    """(n,) bool: rows with at least one label that is not "ignore" (expression -1, VA NaN, AU -1).

    Shared by the per-frame training windows and the bag evaluation's label sets; any of the three
    label arrays may be None (that task is not labelled).
    """
    mask = np.zeros(n, bool)
    if expression is not None:
        mask |= expression >= 0
    if va is not None:
        mask |= np.isfinite(va).any(axis=1)
    if aus is not None:
        mask |= (aus >= 0).any(axis=1)
    return mask


@dataclass
class ClipRecord:
    """One clip (clip-level labels) or one video (per-frame labels) of a dataset."""

    clip_id: str
    frames: list[Path] = field(default_factory=list)  # frame images, oldest first (empty when `video` is set)
    video: Optional[Path] = None  # a video file decoded with OpenCV instead of frame images
    num_frames: int = 0
    expression: int = -1  # clip label in the split's class order, -1 = none
    valence: float = float("nan")
    arousal: float = float("nan")
    aus: Optional[np.ndarray] = None  # (A,) float32 in {0, 1}, -1 = ignore
    # per-frame labels (Aff-Wild2); each has num_frames rows
    frame_expression: Optional[np.ndarray] = None  # (F,) int64, -1 ignore
    frame_va: Optional[np.ndarray] = None  # (F, 2) float32, NaN ignore
    frame_aus: Optional[np.ndarray] = None  # (F, A) float32, -1 ignore
    frame_present: Optional[np.ndarray] = None  # (F,) bool: the frame image exists

    @property
    def per_frame(self) -> bool:
        return self.frame_expression is not None or self.frame_va is not None or self.frame_aus is not None


@dataclass
class DatasetSplit:
    """The records of one split with the class order their labels refer to."""

    name: str
    records: list[ClipRecord]
    expression_labels: list[str]
    au_names: list[str] = field(default_factory=list)
    has_va: bool = False
    source: str = ""

    @property
    def per_frame(self) -> bool:
        return any(r.per_frame for r in self.records)

    def clip_expressions(self) -> np.ndarray:
        return np.array([r.expression for r in self.records], dtype=np.int64)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path, what: str = "frame folder") -> list[Path]:
    """The image files of a frame folder in natural order (2.jpg before 10.jpg)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(folder, f"{what} does not exist")
    frames = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not frames:
        raise DatasetError(folder, f"{what} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return frames


def video_frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(path, "video cannot be opened")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if n <= 0:
        raise DatasetError(path, "video reports no frames")
    return n


def read_text_lines(path: Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, f"{what} not found")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"{what} is not UTF-8 text ({exc})") from exc


def split_fields(line: str) -> list[str]:
    """Fields of a split-file line: comma separated if it has commas, else whitespace separated."""
    return [f.strip() for f in line.split(",")] if "," in line else line.split()


def parse_class(token: str, classes: Sequence[str], path: Path, line: int, one_based: bool) -> int:
    """A label given as a class id (0- or 1-based as the dataset defines) or a class name."""
    tok = token.strip()
    if re.fullmatch(r"-?\d+", tok):
        idx = int(tok) - (1 if one_based else 0)
        if 0 <= idx < len(classes):
            return idx
        raise DatasetError(path, f"unknown label {tok!r} (expected {'1' if one_based else '0'}.."
                                 f"{len(classes) - (0 if one_based else 1)})", line)
    canon = {canonical_expression(c): i for i, c in enumerate(classes)}
    key = canonical_expression(tok)
    if key in canon:
        return canon[key]
    raise DatasetError(path, f"unknown label {tok!r} (classes: {', '.join(classes)})", line)
