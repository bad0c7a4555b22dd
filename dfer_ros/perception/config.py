"""Typed configuration of the perception pipeline, loadable from ``config/pipeline.yaml``.

The field names are plain (``detect_every``, ``lost_seconds``, ...) because the ROS node maps its
parameters one-to-one onto them. Every field is checked by ``validate()`` so a bad YAML value or ROS
parameter fails at start-up with the field's name and the allowed range, not later in a callback.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from dfer_ros.typed_config import build_dataclass, read_yaml_mapping


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the field."""


@dataclass
class DetectionConfig:
    """Face detector settings."""

    detector: str = "yunet"  # "yunet" (boxes + 5 landmarks) or "haar" (boxes only)
    score_threshold: float = 0.6  # detections below this are dropped (YuNet scores are in [0, 1])
    low_score_threshold: float = 0.3  # detections in [low, score) only extend existing tracks (ByteTrack pass 2)
    min_face_size: int = 24  # pixels, on the full-resolution frame
    max_faces: int = 8  # largest faces first
    max_side: int = 320  # frames larger than this are downscaled for detection; boxes map back to full size
    every: int = 1  # run the detector on every k-th frame; the tracker predicts in between
    threads: int = 1  # OpenMP threads for YuNet (more than 1 is much slower on busy small CPUs)


@dataclass
class TrackingConfig:
    """ByteTrack-style tracker settings; times are in seconds of the image stamps."""

    iou_threshold: float = 0.3  # minimum IoU for a detection to match a track
    min_hits: int = 2  # detections needed before a tentative track is confirmed
    lost_seconds: float = 1.0  # a track without detections for longer than this ends


@dataclass
class BufferConfig:
    """Per-track embedding buffer settings."""

    window_frames: int = 16  # most embeddings kept per track (also capped by the head's max_frames)
    window_seconds: float = 2.0  # embeddings older than this (relative to the newest) are dropped; 0 = no limit
    gap_reset_seconds: float = 0.5  # a gap between embeddings above this empties the buffer first


@dataclass
class AggregationConfig:
    """Temporal smoothing of the per-face outputs."""

    enabled: bool = True
    half_life_seconds: float = 0.4  # exponential weighting half-life, driven by the stamps
    switch_margin: float = 0.1  # a new top label must beat the current one's smoothed prob by this much
    switch_min_seconds: float = 0.2  # ... and for at least this long, before the published label switches


@dataclass
class ComputeConfig:
    """How model work is scheduled per frame (``perception.scheduler``) and threaded.

    Detection and tracking run on every frame for every face; the model stages run on the faces the
    scheduler picks, within ``budget_ms`` per frame and lane, each face refreshed at least every
    ``expression_max_age`` / ``action_units_max_age`` seconds (the floor wins over the budget).
    """

    budget_ms: float = 8.0  # model milliseconds started per frame and lane; 0 = budget off (every face, every frame)
    expression_max_age: float = 0.5  # refresh floor of the stages that feed expression and valence-arousal
    action_units_max_age: float = 2.0  # refresh floor of the stages that feed action units only
    overlap: bool = True  # run stages that release the GIL (the landmarker) on one worker thread
    opencv_threads: int = 1  # cv2.setNumThreads for the process: the 2 lanes already fill 2 cores


@dataclass
class PipelineConfig:
    """Everything the perception pipeline needs besides the model."""

    detection: DetectionConfig = field(default_factory=DetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    max_frame_side: int = 4096  # frames with a larger side are rejected as corrupt (skipped_reason)
    encode_predicted: bool = False  # also encode faces whose box is only a tracker prediction
    # seconds: a frame stamped at most this much older than the previous one is a late (reordered) frame and
    # is dropped; older by more is a clock jump (bag loop, clock reset) and resets tracks, buffers, smoothing
    stamp_reorder_tolerance: float = 0.1

    def validate(self) -> "PipelineConfig":
        """Raise ConfigError naming the first out-of-range field; returns self for chaining."""
        d, t, b, a, c = self.detection, self.tracking, self.buffer, self.aggregation, self.compute
        checks = [
            ("detection.detector", d.detector in ("yunet", "haar"), "must be 'yunet' or 'haar'"),
            ("detection.score_threshold", 0.0 <= d.score_threshold <= 1.0, "must be in [0, 1]"),
            ("detection.low_score_threshold", 0.0 <= d.low_score_threshold <= d.score_threshold,
             "must be in [0, detection.score_threshold]"),
            ("detection.min_face_size", d.min_face_size >= 1, "must be >= 1"),
            ("detection.max_faces", d.max_faces >= 1, "must be >= 1"),
            ("detection.max_side", d.max_side >= 32, "must be >= 32"),
            ("detection.every", d.every >= 1, "must be >= 1"),
            ("detection.threads", d.threads >= 1, "must be >= 1"),
            ("tracking.iou_threshold", 0.0 < t.iou_threshold < 1.0, "must be in (0, 1)"),
            ("tracking.min_hits", t.min_hits >= 1, "must be >= 1"),
            ("tracking.lost_seconds", t.lost_seconds > 0, "must be > 0"),
            ("buffer.window_frames", b.window_frames >= 1, "must be >= 1"),
            ("buffer.window_seconds", b.window_seconds >= 0, "must be >= 0 (0 = no time limit)"),
            ("buffer.gap_reset_seconds", b.gap_reset_seconds > 0, "must be > 0"),
            ("aggregation.half_life_seconds", a.half_life_seconds > 0, "must be > 0"),
            ("aggregation.switch_margin", 0.0 <= a.switch_margin < 1.0, "must be in [0, 1)"),
            ("aggregation.switch_min_seconds", a.switch_min_seconds >= 0, "must be >= 0"),
            ("compute.budget_ms", c.budget_ms >= 0, "must be >= 0 (0 = budget off)"),
            ("compute.expression_max_age", c.expression_max_age > 0, "must be > 0"),
            ("compute.action_units_max_age", c.action_units_max_age > 0, "must be > 0"),
            ("compute.opencv_threads", c.opencv_threads >= 1, "must be >= 1"),
            ("max_frame_side", self.max_frame_side >= 64, "must be >= 64"),
            ("stamp_reorder_tolerance", math.isfinite(self.stamp_reorder_tolerance)
             and self.stamp_reorder_tolerance >= 0, "must be a finite number >= 0 (seconds)"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ConfigError(f"pipeline config: {name} = {_get(self, name)!r} {why}")
        return self

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]], source: str = "<dict>") -> "PipelineConfig":
        """Build from nested dicts (YAML); unknown keys and wrong types are errors naming ``source``."""
        return build_dataclass(cls, data or {}, source, ConfigError).validate()

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "PipelineConfig":
        data = read_yaml_mapping(path, "pipeline config file", ConfigError)
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_flat(self) -> dict[str, Any]:
        """Dotted names -> values ("detection.every": 1, ...): the ROS parameter names of the node."""
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}{key}.", sub)
            else:
                flat[prefix[:-1]] = value

        walk("", self.to_dict())
        return flat

    @classmethod
    def from_flat(cls, values: dict[str, Any], source: str = "<parameters>") -> "PipelineConfig":
        """Build from dotted names ("tracking.lost_seconds": 2.0); same checks and errors as ``from_dict``."""
        nested: dict[str, Any] = {}
        for dotted, value in values.items():
            *parents, leaf = dotted.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{source}: {dotted} conflicts with a value set for {part}")
            node[leaf] = value
        return cls.from_dict(nested, source)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def load_pipeline_config(path: Union[str, Path, None] = None) -> PipelineConfig:
    """The pipeline YAML at ``path``, or the validated built-in defaults when there is none."""
    return PipelineConfig.from_yaml(path) if path is not None else PipelineConfig().validate()
