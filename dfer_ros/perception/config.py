"""Typed configuration of the perception pipeline, loadable from ``config/pipeline.yaml``.

The field names are plain (``detect_every``, ``lost_seconds``, ...) because the ROS node maps its
parameters one-to-one onto them. Every field is checked by ``validate()`` so a bad YAML value or ROS
parameter fails at start-up with the field's name and the allowed range, not later in a callback.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml


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
class PipelineConfig:
    """Everything the perception pipeline needs besides the model."""

    detection: DetectionConfig = field(default_factory=DetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    max_frame_side: int = 4096  # frames with a larger side are rejected as corrupt (skipped_reason)
    encode_predicted: bool = False  # also encode faces whose box is only a tracker prediction

    def validate(self) -> "PipelineConfig":
        """Raise ConfigError naming the first out-of-range field; returns self for chaining."""
        d, t, b, a = self.detection, self.tracking, self.buffer, self.aggregation
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
            ("max_frame_side", self.max_frame_side >= 64, "must be >= 64"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ConfigError(f"pipeline config: {name} = {_get(self, name)!r} {why}")
        return self

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]], source: str = "<dict>") -> "PipelineConfig":
        """Build from nested dicts (YAML); unknown keys and wrong types are errors naming ``source``."""
        return _build(cls, data or {}, source, "").validate()

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "PipelineConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"pipeline config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
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


def _build(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(prefix + u for u in unknown)}; "
                          f"known: {', '.join(prefix + k for k in fields)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        key = prefix + name
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, source, key + ".")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
            kwargs[name] = value
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
            kwargs[name] = type(default)(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
            kwargs[name] = value
        else:
            kwargs[name] = value
    return cls(**kwargs)
