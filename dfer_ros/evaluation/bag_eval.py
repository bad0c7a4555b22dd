"""Offline evaluation of a rosbag2 bag: its images fed straight to the pipeline, keyed by bag time.

Every image message of the chosen topic is processed, in bag order, with its header stamp as the
pipeline's time (the bag's receive time when the header stamp is zero). Nothing depends on the CPU
speed: a slow machine gives the same records as a fast one, and the records equal those of
``dfer eval video`` on the same frames. It reuses ``video_eval.run_source`` loop and
``predictions`` records; optionally the results are also written as the node's output topics into a
new bag (``ResultsBagWriter``: ``ros.conversions`` + rclpy serialization, imported only then).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from dfer_ros.bag_io import BagError, BagImage, bag_info, choose_image_topic, image_stamps, read_images
from dfer_ros.evaluation.predictions import PredictionWriter
from dfer_ros.evaluation.video_eval import EvalSummary, run_source
from dfer_ros.perception.frames import FrameError, to_bgr8
from dfer_ros.vocabulary import ABAW_EXPR8

log = logging.getLogger(__name__)


@dataclass
class BagFrames:
    """Frame source over a bag's image topic, for ``run_source``; remembers each frame's bag data."""

    bag: Path
    image_topic: Optional[str] = None
    limit: Optional[int] = None
    every: int = 1
    stamps: list[float] = field(default_factory=list)  # stamps of the frames yielded (for labels)
    current: Optional[BagImage] = None
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (message index, reason) of unusable images

    def __post_init__(self):
        self.info = bag_info(self.bag)
        self.topic = choose_image_topic(self.info, self.image_topic)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")

    @property
    def total(self) -> int:
        n = (self.info.topics[self.topic][1] + self.every - 1) // self.every
        return min(n, self.limit) if self.limit is not None else n

    def _skip(self, index: int, reason: str) -> None:
        if index % self.every == 0:  # a message the run would have used
            self.skipped.append((index, reason))

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        yielded = 0
        for item in read_images(self.bag, self.topic, on_skip=self._skip):
            if item.index % self.every:
                continue
            if self.limit is not None and yielded >= self.limit:
                break
            try:
                image = to_bgr8(item.image, item.encoding)
            except FrameError as exc:
                log.warning("%s topic %s message %d skipped: %s", self.bag, self.topic, item.index, exc)
                self.skipped.append((item.index, str(exc)))
                continue
            self.current = item
            self.stamps.append(item.stamp)
            yielded += 1
            yield item.index, item.stamp, image


class _ResultTap:
    """Pipeline stand-in for ``run_source``: keeps each frame's processing time and hands every
    FrameResult to ``sink`` (the output bag) when there is one. Without a bag source (a video) the
    output messages get frame_id "camera" and bag time = stamp."""

    def __init__(self, pipeline, frames: Optional[BagFrames], sink=None):
        self.pipeline, self.frames, self.sink = pipeline, frames, sink
        self.latencies_ms: list[float] = []

    def process(self, frame, stamp: float, encoding: str = "bgr8"):
        result = self.pipeline.process(frame, stamp, encoding)
        if "total" in result.timings_ms:
            self.latencies_ms.append(float(result.timings_ms["total"]))
        if self.sink is not None:
            cur = self.frames.current if self.frames is not None else None
            self.sink.write(result, cur.frame_id if cur else "camera",
                            cur.bag_time_ns if cur else int(round(stamp * 1e9)))
        return result

    def end_of_stream(self) -> list:
        return self.pipeline.end_of_stream()


@dataclass
class BagRun:
    """Outcome of one bag evaluation (offline or live)."""

    summary: EvalSummary
    topic: str
    frame_stamps: list[float]  # stamps of ALL image messages of the topic, in order (Aff-Wild2 line i+1)
    latencies_ms: list[float]  # offline: pipeline time per frame; live: image stamp -> output, per message
    latency_kind: str = "offline processing time per frame"


def evaluate_bag(bag: Union[str, Path], pipeline, out: Optional[Union[str, Path]] = None,
                 image_topic: Optional[str] = None, output_bag: Optional[Union[str, Path]] = None,
                 storage: str = "mcap", max_frames: Optional[int] = None, every: int = 1,
                 progress: bool = True) -> BagRun:
    """Run a bag's images through ``pipeline``; JSONL records to ``out``, node topics to ``output_bag``."""
    frames = BagFrames(Path(bag), image_topic, max_frames, every)
    if frames.info.topics[frames.topic][1] == 0:
        raise BagError(f"{frames.info.path}: topic {frames.topic} has no messages")
    writer = PredictionWriter(out) if out is not None else None
    try:
        if output_bag is not None:
            from dfer_ros.ros.bag_record import ResultsBagWriter

            with ResultsBagWriter(output_bag, storage) as sink:
                tap = _ResultTap(pipeline, frames, sink)
                summary = run_source(frames, tap, writer, str(bag), frames.total, progress)
        else:
            tap = _ResultTap(pipeline, frames)
            summary = run_source(frames, tap, writer, str(bag), frames.total, progress)
    finally:
        if writer is not None:
            writer.close()
    summary.skipped_frames += len(frames.skipped)  # unusable images count as skipped, first or mid-bag
    if summary.frames == 0:
        first = f" (first reason: {frames.skipped[0][1]})" if frames.skipped else ""
        raise BagError(f"{frames.info.path}: no frame of {frames.topic} could be decoded{first}")
    return BagRun(summary, frames.topic, image_stamps(bag, frames.topic), tap.latencies_ms)


def match_tolerance(stamps: list[float], given: Optional[float] = None) -> float:
    """Seconds a label and a prediction may differ and still match: ``given``, else half the median frame gap."""
    if given is not None:
        return float(given)
    if len(stamps) > 1:
        gaps = np.diff(np.asarray(stamps, np.float64))
        gaps = gaps[gaps > 0]
        if len(gaps):
            return float(np.median(gaps)) / 2
    return 0.02


def evaluate_video_run(video: Union[str, Path], pipeline, out: Optional[Union[str, Path]] = None,
                       output_bag: Optional[Union[str, Path]] = None, storage: str = "mcap",
                       max_frames: Optional[int] = None, every: int = 1, progress: bool = True) -> BagRun:
    """A video through the pipeline (``video_eval.evaluate_video``) as a ``BagRun``: per-frame times, the
    stamps of all frames (for Aff-Wild2 labels) and optionally the node's output topics in a new bag."""
    from dfer_ros.evaluation.video_eval import evaluate_video, video_info

    fps, count, _, _ = video_info(video)
    rate = fps if fps and np.isfinite(fps) and fps > 0 else 30.0

    def run(sink=None) -> BagRun:
        tap = _ResultTap(pipeline, None, sink)
        summary = evaluate_video(video, tap, out, max_frames, every, progress=progress)
        return BagRun(summary, "", [i / rate for i in range(count)], tap.latencies_ms)

    if output_bag is None:
        return run()
    from dfer_ros.ros.bag_record import ResultsBagWriter

    with ResultsBagWriter(output_bag, storage) as sink:
        return run(sink)


def read_labels(run: BagRun, labels_csv: Optional[Path] = None, labels_va: Optional[Path] = None,
                labels_expr: Optional[Path] = None, labels_au: Optional[Path] = None,
                classes: Optional[list[str]] = None):
    """The labels of a run: a CSV file, or Aff-Wild2 files aligned to the run's frame stamps."""
    from dfer_ros.evaluation.labels import read_affwild2_labels, read_csv_labels

    classes = list(classes) if classes is not None else list(ABAW_EXPR8)
    if labels_csv is not None:
        if any(p is not None for p in (labels_va, labels_expr, labels_au)):
            raise ValueError("give labels either as a CSV file or as Aff-Wild2 files (VA/EXPR/AU), not both")
        return read_csv_labels(labels_csv, classes)
    labels = read_affwild2_labels(run.frame_stamps, labels_va, labels_expr, labels_au)
    labels.expr_classes = classes
    return labels


def write_plots(folder: Path, records: list[dict], run: BagRun, report: Optional[dict], labels=None,
                events: Sequence[dict] = ()) -> list[Path]:
    """VA trajectory, expression timeline (with the expression episodes of ``events``), latency histogram, and
    the confusion matrix when scored."""
    from dfer_ros.evaluation.affect_plots import plot_expression_timeline, plot_latency_histogram, plot_va_trajectory
    from dfer_ros.scoring.plots import plot_confusion_matrix

    folder = Path(folder)
    paths = [plot_va_trajectory(records, folder / "va_trajectory.png")]
    truth = None
    if labels is not None and labels.expr is not None:
        truth = (labels.stamps, labels.expr, list(labels.expr_classes))
    paths.append(plot_expression_timeline(records, folder / "expression_timeline.png", truth, events=events))
    paths.append(plot_latency_histogram(run.latencies_ms, folder / "latency_histogram.png",
                                        f"{run.latency_kind} ({len(run.latencies_ms)} frames)"))
    if report and report.get("expression"):
        e = report["expression"]
        paths.append(plot_confusion_matrix(np.asarray(e["confusion_matrix"]), e["classes"],
                                           folder / "confusion_matrix.png",
                                           title=f"WAR {e['war']:.3f}  UAR {e['uar']:.3f}  F1 {e['macro_f1']:.3f}"))
    return paths
