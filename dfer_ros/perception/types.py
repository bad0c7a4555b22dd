"""Plain data passed between the perception stages, the models and the ROS layer.

Kept free of ROS and torch so the same results feed the node, offline evaluation and tests.
Coordinates are pixels of the source image; boxes are (x, y, w, h) with (x, y) the top-left corner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # plain data here; the producers import cv2
    from dfer_ros.perception.events import ExpressionEvent
    from dfer_ros.perception.quality import FaceQuality


@dataclass
class Detection:
    """One face found by a detector in one image."""

    box: np.ndarray  # (4,) float32 x, y, w, h
    score: float  # detector confidence in [0, 1]
    landmarks: Optional[np.ndarray] = None  # (5, 2) float32: right eye, left eye, nose, right mouth, left mouth


@dataclass
class AffectEstimate:
    """What a model says about one face: expression, valence-arousal and action units.

    Any part a model does not produce is left empty (no labels, NaN valence, no AU names)
    rather than filled with made-up values.
    """

    expression_labels: tuple[str, ...]
    expression_probs: np.ndarray  # (C,) float32, sums to 1
    valence: float = float("nan")  # [-1, 1]
    arousal: float = float("nan")  # [-1, 1]
    va_confidence: float = 0.0  # [0, 1]
    au_names: tuple[str, ...] = ()
    au_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (A,) in [0, 1]
    compound_labels: tuple[str, ...] = ()
    compound_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def top_expression(self) -> str:
        return self.expression_labels[int(np.argmax(self.expression_probs))] if len(self.expression_probs) else ""

    @property
    def has_va(self) -> bool:
        return bool(np.isfinite(self.valence) and np.isfinite(self.arousal))


@dataclass
class FaceResult:
    """Everything the pipeline reports about one tracked face in one processed frame."""

    face_id: str
    stamp: float  # seconds, the source image's stamp
    box: np.ndarray  # (4,) x, y, w, h, clipped to the image
    detection_score: float  # 0 when the box is a tracker prediction without a detection
    detected: bool
    landmarks: Optional[np.ndarray]  # (5, 2) or None
    frame_estimate: Optional[AffectEstimate]  # this frame alone (None when the face was not encoded)
    estimate: AffectEstimate  # temporally aggregated: what gets published
    expression: str  # top label after hysteresis
    expression_confidence: float
    window_frames: int
    window_seconds: float
    warmed_up: bool
    # seconds of stamp time since a model stage last updated this face's expression (and valence-arousal),
    # and its action units; inf when never. The compute scheduler refreshes faces at a guaranteed minimum
    # rate rather than on every frame, so a consumer can see how fresh each estimate is.
    estimate_age: float = float("inf")
    action_units_age: float = float("inf")
    # face quality of the latest detection of this face (quality.FaceQuality; None when quality is off), and
    # why the expression is withheld in this frame ("" = not withheld; then expression is "unknown")
    quality: Optional["FaceQuality"] = None
    abstain_reason: str = ""
    # the person this face belongs to (REP-155 person id, "p1", "p2", ...; perception.reid): kept across tracks,
    # "" until the face's first descriptor is in or when re-identification is off
    person_id: str = ""
    # expression relative to the person's own resting face (perception.baseline; baseline.enabled), in the
    # order of estimate.expression_labels; None while off or while the baseline is not ready
    relative_expression_probs: Optional[np.ndarray] = None

    @property
    def relative_expression(self) -> str:
        """Top label of relative_expression_probs ("" when there are none)."""
        p = self.relative_expression_probs
        return self.estimate.expression_labels[int(np.argmax(p))] if p is not None and p.size else ""

    @property
    def abstained(self) -> bool:
        return bool(self.abstain_reason)


@dataclass
class FrameResult:
    """Output of the pipeline for one input frame."""

    stamp: float
    frame_index: int
    faces: list[FaceResult]
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage: detect, align, track, model, aggregate
    skipped_reason: Optional[str] = None  # set when the frame was rejected (bad input), faces is then empty
    # what the stamp did relative to the previous frame's, None when nothing unusual (see STAMP_EVENTS)
    stamp_event: Optional[str] = None
    # expression episode onsets/offsets this frame produced (events.ExpressionEvent), usually none
    events: list["ExpressionEvent"] = field(default_factory=list)
    # person ids of the faces in this frame, sorted (perception.reid); empty when re-identification is off
    people_in_view: list[str] = field(default_factory=list)
    # every person the gallery knows now, in view or not, sorted (REP-155 /humans/persons/known)
    people_known: list[str] = field(default_factory=list)
    # the work this frame started: "detector_calls" (on the pipeline's thread), "regions" (the detector looked at,
    # background scans included) and "<stage>_faces" per model stage; where the CPU goes, for benchmarks
    work: dict[str, int] = field(default_factory=dict)


# FrameResult.stamp_event values:
DUPLICATE_STAMP = "duplicate_stamp"  # same stamp as the previous frame: processed, output keeps flowing
LATE_FRAME_DROPPED = "late_frame_dropped"  # older by <= stamp_reorder_tolerance: dropped, nothing reset
CLOCK_JUMP_RESET = "clock_jump_reset"  # older by more (bag loop, clock reset): state reset, frame processed
STAMP_EVENTS = (DUPLICATE_STAMP, LATE_FRAME_DROPPED, CLOCK_JUMP_RESET)
