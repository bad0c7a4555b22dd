"""Prediction records: one JSON object per face per processed frame, in JSON Lines files.

The same records come out of ``dfer-eval --video`` and bag evaluation, so metrics, plots and
comparisons read one format. Fields: frame, stamp, face_id, bbox [x, y, w, h], detection_score,
expression (published label after hysteresis), expression_probs {label: p}, valence, arousal
(null when the model gives none), action_units {AU: p}, window_frames, warmed_up, estimate_age and
action_units_age (seconds since the model last updated that part of the face's estimate; null when never); plus
``frame_expression`` (that frame's own top label, null when the face was not encoded) and
``detected``. Readers get a clear error naming the file and line for a bad record.
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
    }


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

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, allow_nan=False) + "\n")
        self.count += 1

    def write_all(self, records) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        self._handle.close()

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
