"""The pipeline's behaviour-ready outputs per face: quality, abstention, attention and expression events.

Kept out of ``pipeline.py`` so the pipeline only calls it at four points of a frame:

1. ``end_tracks`` / ``end_all`` when tracks end (or the pipeline resets): their open episodes get offsets;
2. ``assess`` after tracking: the quality of every face detected in this frame (a face the tracker only
   predicted keeps its last detection's quality, the one that decided its last estimate);
3. ``withheld(face_id)`` before encoding: a face below the quality thresholds is not encoded, so its
   profile view never enters the temporal window, the smoothing or the events;
4. ``feed`` with each face's smoothed estimate when it got a new one, and ``expire`` once per frame.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from dfer_ros.perception.config import EventConfig, QualityConfig
from dfer_ros.perception.events import ExpressionEvent, ExpressionEvents
from dfer_ros.perception.quality import FaceQuality, assess
from dfer_ros.perception.types import AffectEstimate


class BehaviourOutputs:
    """Quality per face and the expression-event state of all faces."""

    def __init__(self, quality: QualityConfig, events: EventConfig, detector: str = "centerface"):
        self.quality_config = quality
        self.detector = detector  # the head-pose face model follows the detector's landmark layout
        self.events = ExpressionEvents(events)
        self._quality: dict[str, FaceQuality] = {}
        self._person: dict[str, str] = {}  # face id -> person id (re-identification), stamped on its events

    def _with_person(self, events: list[ExpressionEvent]) -> list[ExpressionEvent]:
        for e in events:
            e.person_id = e.person_id or self._person.get(e.face_id, "")
        return events

    def end_tracks(self, face_ids: Iterable[str], stamp: float) -> list[ExpressionEvent]:
        out: list[ExpressionEvent] = []
        for face_id in face_ids:
            self._quality.pop(face_id, None)
            out += self._with_person(self.events.end_track(face_id, stamp))
            self._person.pop(face_id, None)
        return out

    def end_all(self, stamp: Optional[float]) -> list[ExpressionEvent]:
        self._quality.clear()
        out = self._with_person(self.events.end_all(stamp))
        self._person.clear()
        return out

    def assess(self, frame_bgr: np.ndarray, tracks) -> None:
        """Measure the faces detected in this frame (tracks with ``detected_now``)."""
        if not self.quality_config.enabled:
            return
        for tr in tracks:
            if tr.detected_now and tr.detection is not None:
                det = tr.detection
                self._quality[tr.face_id] = assess(frame_bgr, det.box, det.score, det.landmarks, self.quality_config,
                                                   self.detector)

    def quality(self, face_id: str) -> Optional[FaceQuality]:
        return self._quality.get(face_id)

    def withheld(self, face_id: str) -> str:
        """Why the face's expression is withheld now ("" when it is not)."""
        q = self._quality.get(face_id)
        return q.abstain_reason if q is not None else ""

    def feed(self, face_id: str, stamp: float, smoothed: AffectEstimate, person_id: str = "") -> list[ExpressionEvent]:
        if person_id:
            self._person[face_id] = person_id
        return self._with_person(self.events.update(face_id, stamp, smoothed.expression_labels,
                                                    smoothed.expression_probs))

    def expire(self, stamp: float) -> list[ExpressionEvent]:
        return self._with_person(self.events.expire(stamp))
