"""Prediction records: one JSON object per face per processed frame, in JSON Lines files.

The same records come out of ``dfer eval video`` and bag evaluation, so metrics, plots and
comparisons read one format. Fields: frame, stamp, face_id, person_id (re-identification: "p1", ...; "" while
unknown or when it is off), bbox [x, y, w, h], detection_score,
expression (published label after hysteresis), expression_probs {label: p}, valence, arousal
(null when the model gives none), action_units {AU: p}, window_frames, warmed_up, estimate_age and
action_units_age (seconds since the model last updated that part of the face's estimate; null when never); plus
``frame_expression`` (that frame's own top label, null when the face was not encoded) and
``detected``, ``abstained`` / ``abstain_reason`` (expression withheld for face quality) and ``quality``
(yaw, pitch, roll in degrees, sharpness, face_size, visible_fraction, cut_by_border, looking_at_camera,
attention; null when quality is off), ``relative_expression`` / ``relative_expression_probs`` (expression
relative to the person's own resting face, ``baseline.enabled``; "" / null while off or not ready). Readers get a clear error naming the file and line for a bad record.

Expression events (episode onsets and offsets, ``perception.events``) go to a sibling file
``<name>.events.jsonl`` (``events_path``), one JSON object per event: kind, face_id, label, episode,
stamp (the frame that produced it), onset, apex, offset (null for an onset), duration, peak_probability,
mean_intensity, end_reason.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from dfer_ros.perception.types import FaceResult, FrameResult

REQUIRED_FIELDS = ("frame", "stamp", "face_id", "bbox", "detection_score", "expression", "expression_probs",
                   "valence", "arousal", "action_units", "window_frames", "warmed_up")


class PredictionFormatError(ValueError):
    """A predictions file has a malformed line; the message names the file and line."""


def _finite_or_none(value: float) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def face_record(frame: int, face: FaceResult) -> dict[str, Any]:
    """The JSON-ready record of one face in one frame."""
    est = face.estimate
    return {
        "frame": int(frame),
        "stamp": round(float(face.stamp), 6),
        "face_id": face.face_id,
        "person_id": face.person_id,
        "bbox": [round(float(v), 2) for v in face.box],
        "detection_score": round(float(face.detection_score), 4),
        "detected": bool(face.detected),
        "expression": face.expression,
        "expression_confidence": round(float(face.expression_confidence), 5),
        "expression_probs": {k: round(float(p), 5) for k, p in zip(est.expression_labels, est.expression_probs)},
        "frame_expression": face.frame_estimate.top_expression if face.frame_estimate is not None else None,
        "valence": _finite_or_none(est.valence),
        "arousal": _finite_or_none(est.arousal),
        "action_units": {k: round(float(p), 5) for k, p in zip(est.au_names, est.au_probs)
                         if math.isfinite(float(p))},
        "window_frames": int(face.window_frames),
        "window_seconds": round(float(face.window_seconds), 4),
        "warmed_up": bool(face.warmed_up),
        "estimate_age": round(float(face.estimate_age), 4) if math.isfinite(face.estimate_age) else None,
        "action_units_age": (round(float(face.action_units_age), 4) if math.isfinite(face.action_units_age)
                             else None),
        "abstained": bool(face.abstain_reason),
        "abstain_reason": face.abstain_reason,
        "quality": quality_record(face.quality),
        "relative_expression": face.relative_expression,
        "relative_expression_probs": (None if face.relative_expression_probs is None else
                                      {k: round(float(p), 5) for k, p in zip(est.expression_labels,
                                                                             face.relative_expression_probs)}),
    }


def quality_record(quality) -> Optional[dict[str, Any]]:
    """The JSON-ready ``quality.FaceQuality`` of one face (None when quality is off)."""
    if quality is None:
        return None
    pose = quality.head_pose
    return {"yaw": None if pose is None else round(pose.yaw, 2), "pitch": None if pose is None else round(pose.pitch, 2),
            "roll": None if pose is None else round(pose.roll, 2), "sharpness": round(float(quality.sharpness), 1),
            "face_size": round(float(quality.face_size), 1), "visible_fraction": round(float(quality.visible_fraction), 3),
            "cut_by_border": bool(quality.cut_by_border), "looking_at_camera": bool(quality.looking_at_camera),
            "attention": round(float(quality.attention), 3)}


def event_record(event) -> dict[str, Any]:
    """The JSON-ready ``events.ExpressionEvent``."""
    return {"kind": event.kind, "face_id": event.face_id, "person_id": event.person_id, "label": event.label,
            "episode": int(event.episode), "stamp": round(float(event.stamp), 6),
            "onset": round(float(event.onset_stamp), 6), "apex": round(float(event.apex_stamp), 6),
            "offset": None if event.offset_stamp is None else round(float(event.offset_stamp), 6),
            "duration": round(float(event.duration), 4), "peak_probability": round(float(event.peak_probability), 4),
            "mean_intensity": round(float(event.mean_intensity), 4), "end_reason": event.end_reason}


def events_path(predictions: Union[str, Path]) -> Path:
    """Where the events of a predictions file go: ``preds.jsonl`` -> ``preds.events.jsonl``."""
    path = Path(predictions)
    return path.with_name(path.name[: -len(path.suffix)] + ".events.jsonl" if path.suffix else path.name + ".events.jsonl")


def read_events(path: Union[str, Path]) -> list[dict[str, Any]]:
    """The event records of an events file (``events_path``); [] when there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def frame_records(frame: int, result: FrameResult) -> list[dict[str, Any]]:
    """Records of all faces of one pipeline result (none for a skipped frame)."""
    return [face_record(frame, face) for face in result.faces]


class PredictionWriter:
    """Writes records as JSON Lines; use as a context manager. Creates the parent folder."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8")
        self.count = 0
        self.events_path = events_path(self.path)
        self._events = open(self.events_path, "w", encoding="utf-8")  # written even when empty: "no events"
        self.event_count = 0

    def write_event(self, record: dict[str, Any]) -> None:
        self._events.write(json.dumps(record, allow_nan=False) + "\n")
        self.event_count += 1

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, allow_nan=False) + "\n")
        self.count += 1

    def write_all(self, records) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        self._handle.close()
        self._events.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_predictions(path: Union[str, Path]) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSON Lines predictions file, checking the required fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PredictionFormatError(f"{path}:{number}: not valid JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise PredictionFormatError(f"{path}:{number}: expected a JSON object")
            missing = [f for f in REQUIRED_FIELDS if f not in record]
            if missing:
                raise PredictionFormatError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            yield record
