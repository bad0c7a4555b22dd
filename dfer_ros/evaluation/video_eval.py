"""Offline evaluation on a video file: frames -> pipeline -> prediction records.

Split into reusable pieces so bag evaluation plugs its own frame source into the same loop:
  ``video_frames``  a frame source: (index, stamp, BGR frame) from cv2.VideoCapture, stamps = index / fps
  ``run_source``    any frame source through a ``PerceptionPipeline``, records to a writer, with a
                    progress bar, returning an ``EvalSummary``
  ``evaluate_video`` the two together, as ``dfer eval video`` uses them
"""
from __future__ import annotations

import copy
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import cv2
import numpy as np

from dfer_ros.evaluation.predictions import PredictionWriter, event_record, frame_records
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.pipeline import PerceptionPipeline
from dfer_ros.perception.quality import UNKNOWN_LABEL

log = logging.getLogger(__name__)

Frame = tuple[int, float, np.ndarray]  # (frame index in the source, stamp in seconds, image)


class VideoError(RuntimeError):
    """A video cannot be opened or read; the message names the file."""


def video_info(path: Union[str, Path]) -> tuple[float, int, int, int]:
    """(fps, frame count, width, height) of a video; VideoError if it cannot be opened."""
    cap = _open(path)
    try:
        return (float(cap.get(cv2.CAP_PROP_FPS)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def _open(path: Union[str, Path]) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"cannot open video {path} (not a video, or a codec OpenCV lacks)")
    return cap


STILL_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})


def is_still_image(path: Union[str, Path]) -> bool:
    """A single picture rather than a video: by its suffix (OpenCV reports no usable frame count for some)."""
    return Path(path).suffix.lower() in STILL_IMAGE_SUFFIXES


def still_image_config(config: PipelineConfig) -> PipelineConfig:
    """The pipeline settings for a one-frame source: a face must get its id from its only detection.

    With ``tracking.min_hits`` > 1 a new face is confirmed on its second detection, which a still image never
    has, so it would report no face at all. Everything else (aggregation on or off, thresholds) stays.
    """
    if config.tracking.min_hits <= 1:
        return config
    still = copy.deepcopy(config)
    still.tracking.min_hits = 1
    return still.validate()


def video_frames(path: Union[str, Path], max_frames: Optional[int] = None, every: int = 1,
                 fps: Optional[float] = None) -> Iterator[Frame]:
    """Decode a video; yield every ``every``-th frame (up to ``max_frames`` yielded) with stamp = index / fps.

    A file whose first frame cannot be decoded raises VideoError; a decode failure later ends the source
    with a logged warning (truncated files keep what was readable).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    cap = _open(path)
    rate = fps or float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
    if not np.isfinite(rate) or rate <= 0:
        log.warning("%s reports no frame rate; assuming 30 fps for the stamps", path)
        rate = 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    try:
        index = yielded = 0
        while max_frames is None or yielded < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                if index == 0:
                    raise VideoError(f"cannot decode any frame of {path}")
                if total and index < total:
                    log.warning("%s: decoding stopped at frame %d of %d", path, index, total)
                break
            if index % every == 0:
                yield index, index / rate, frame
                yielded += 1
            index += 1
    finally:
        cap.release()


@dataclass
class EvalSummary:
    """What a run did: counts, throughput and mean per-stage times."""

    source: str
    frames: int = 0  # frames processed
    skipped_frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0  # records written (one per face per frame)
    tracks: int = 0  # distinct face ids
    people: int = 0  # distinct person ids (re-identification; 0 when it is off)
    wall_seconds: float = 0.0
    fps: float = 0.0
    mean_stage_ms: dict[str, float] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # published label -> records
    abstained: int = 0  # face records whose expression was withheld (face quality)
    label_switches: int = 0  # changes of a face's published label between two real labels (not "", "unknown")
    events: int = 0  # expression episodes (onsets; each is closed by an offset, at the latest at the end)
    first_result_seconds: float = float("nan")  # process start -> the first frame's result (start-up, whole process)

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.mean_stage_ms.items())
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items(), key=lambda kv: -kv[1]))
        return (f"{self.source}: {self.frames} frames ({self.skipped_frames} skipped, {self.frames_with_faces} with "
                f"faces), {self.faces} face records, {self.tracks} track(s), {self.people} person id(s), "
                f"{self.fps:.1f} fps over "
                f"{self.wall_seconds:.1f} s (first result {self.first_result_seconds:.2f} s after the process "
                f"started)\n  mean ms per frame: {stages}\n  labels: {labels or '-'}\n"
                f"  abstained: {self.abstained} of {self.faces} face records "
                f"({100.0 * self.abstained / max(self.faces, 1):.1f} %); expression events: {self.events} "
                f"episode(s) vs {self.label_switches} published label switch(es)")


def process_age_seconds() -> float:
    """Seconds since this process started (Linux /proc; NaN elsewhere): the start-up users wait for, imports and
    model loading included."""
    import os

    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started = int(stat[stat.rindex(")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, uptime - started)
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_source(frames: Iterable[Frame], pipeline: PerceptionPipeline, writer: Optional[PredictionWriter] = None,
               source: str = "", total: Optional[int] = None, progress: bool = True) -> EvalSummary:
    """Run every frame of a source through the pipeline, write its records, return the summary."""
    from tqdm import tqdm

    summary = EvalSummary(source=source)
    stage_sum: dict[str, float] = defaultdict(float)
    ids: set[str] = set()
    people: set[str] = set()
    labels: dict[str, int] = defaultdict(int)
    last_label: dict[str, str] = {}
    start = time.perf_counter()
    last_frame = None

    def write_events(events, frame) -> None:
        for event in events:
            summary.events += event.kind == "onset"
            if writer is not None:
                writer.write_event({"frame": frame, **event_record(event)})

    for index, stamp, image in tqdm(frames, total=total, desc=f"dfer eval {Path(source).name}", unit="frame",
                                    disable=not progress):
        result = pipeline.process(image, stamp)
        if summary.frames == 0:
            summary.first_result_seconds = process_age_seconds()
        summary.frames += 1
        if result.skipped_reason:
            summary.skipped_frames += 1
        for name, ms in result.timings_ms.items():
            stage_sum[name] += ms
        records = frame_records(index, result)
        if records:
            summary.frames_with_faces += 1
        for record in records:
            ids.add(record["face_id"])
            if record["person_id"]:
                people.add(record["person_id"])
            labels[record["expression"] or "-"] += 1
            summary.abstained += bool(record["abstained"])
            label = record["expression"]
            if label and label != UNKNOWN_LABEL:
                before = last_label.get(record["face_id"])
                summary.label_switches += before is not None and before != label
                last_label[record["face_id"]] = label
            if writer is not None:
                writer.write(record)
        summary.faces += len(records)
        write_events(result.events, index)
        last_frame = index
    write_events(pipeline.end_of_stream(), last_frame)  # the source ended: open episodes end with it
    summary.wall_seconds = time.perf_counter() - start
    summary.fps = summary.frames / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
    summary.tracks = len(ids)
    summary.people = len(people)
    summary.labels = dict(labels)
    summary.mean_stage_ms = {k: v / max(summary.frames, 1) for k, v in stage_sum.items()}
    return summary


def evaluate_video(path: Union[str, Path], pipeline: PerceptionPipeline, out: Optional[Union[str, Path]] = None,
                   max_frames: Optional[int] = None, every: int = 1, progress: bool = True) -> EvalSummary:
    """Run a video through the pipeline, writing JSONL records to ``out`` when given."""
    fps, count, _, _ = video_info(path)
    total = (count + every - 1) // every if count > 0 else None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    frames = video_frames(path, max_frames=max_frames, every=every)
    if out is None:
        return run_source(frames, pipeline, None, str(path), total, progress)
    with PredictionWriter(out) as writer:
        return run_source(frames, pipeline, writer, str(path), total, progress)
