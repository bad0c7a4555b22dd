"""The face front-end: detect (every k-th frame) -> track -> pick the faces -> align them at a ``CropSpec``.

Shared by the runtime pipeline (``pipeline.PerceptionPipeline``) and the training crop extraction
(``training.preprocess``), so the crops a model is trained on are cut exactly as the node cuts them at run
time: same detector thresholds, same tracker, same largest-first cap, same 5-point alignment.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dfer_ros.perception.alignment import align_faces
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import FaceDetector, create_detector
from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.perception.tracking import FaceTracker, Track
from dfer_ros.perception.types import Detection
from dfer_ros.typed_config import iter_settings

# Settings read only when the pipeline is built (``read_only`` in their metadata): changing them needs a
# new pipeline (a node restart), so ``reconfigure`` leaves them alone.
BUILD_TIME_FIELDS = tuple(info.name for info in iter_settings(PipelineConfig) if info.setting.read_only)


def build_detector(config: PipelineConfig) -> FaceDetector:
    """The detector ``config.detection`` describes; tracks are fed with scores down to ``low_score_threshold``."""
    d = config.detection
    return create_detector(d.detector, min_score=d.low_score_threshold, min_face_size=d.min_face_size,
                           max_side=d.max_side, max_faces=d.max_faces, threads=d.threads)


@dataclass
class FrontEndStep:
    """One frame through the front-end: the visible tracks (largest first, capped) and the stage times."""

    tracks: list[Track]
    detected: bool  # whether the detector ran on this frame
    ended_ids: list[str] = field(default_factory=list)  # confirmed face ids that ended on this frame
    timings_ms: dict[str, float] = field(default_factory=dict)  # "detect", "track"


class FaceFrontEnd:
    """Detector + tracker driven by stamps; ``step`` per frame, ``crops`` for the faces to encode."""

    def __init__(self, config: PipelineConfig, detector: Optional[FaceDetector] = None):
        self.config = config
        self.detector = detector or build_detector(config)
        self.tracker = FaceTracker(config.tracking, high_score=config.detection.score_threshold)
        self._frames_since_reset = 0

    def reset(self) -> None:
        """Forget all tracks (face ids keep counting up); the next frame runs the detector."""
        self.tracker.reset()
        self._frames_since_reset = 0

    def step(self, bgr: np.ndarray, stamp: float) -> FrontEndStep:
        """Detect (on every ``detection.every``-th frame since the reset) and track at ``stamp``."""
        run_detector = self._frames_since_reset % self.config.detection.every == 0
        self._frames_since_reset += 1
        t = time.perf_counter()
        detections: list[Detection] = self.detector.detect(bgr) if run_detector else []
        detect_ms = _ms(t)
        t = time.perf_counter()
        tracks = self.tracker.update(detections, stamp) if run_detector else self.tracker.predict(stamp)
        visible = [tr for tr in tracks if tr.visible]
        visible.sort(key=lambda tr: -float(tr.box[2] * tr.box[3]))
        visible = visible[: self.config.detection.max_faces]
        return FrontEndStep(visible, run_detector, list(self.tracker.ended_ids),
                            {"detect": detect_ms, "track": _ms(t)})

    def to_encode(self, tracks: list[Track]) -> list[Track]:
        """The tracks whose crop is encoded: detected on this frame (or predicted, with ``encode_predicted``)."""
        return [tr for tr in tracks if tr.detected_now or self.config.encode_predicted]

    @staticmethod
    def crops(bgr: np.ndarray, tracks: list[Track], spec: CropSpec) -> np.ndarray:
        """(N, S, S, 3) crops of ``tracks``: aligned on the detection's landmarks, else on the predicted box."""
        faces = [tr.detection if tr.detected_now else tr.box for tr in tracks]
        return align_faces(bgr, faces, spec)

    def reconfigure(self, new: PipelineConfig) -> list[str]:
        """Copy the run-time-changeable detection and tracking fields of ``new`` into the running
        front-end (between two frames); returns the changed dotted names. Build-time fields are skipped."""
        changed = copy_sections(self.config, new, ("detection", "tracking"))
        d = self.config.detection
        self.detector.min_score = float(d.low_score_threshold)
        self.detector.min_face_size = int(d.min_face_size)
        self.detector.max_faces = int(d.max_faces)
        self.tracker.high_score = float(d.score_threshold)
        return changed


def copy_sections(cfg: PipelineConfig, new: PipelineConfig, sections: tuple[str, ...]) -> list[str]:
    """Set ``cfg``'s fields of ``sections`` to ``new``'s in place (the stages hold references to the
    section objects, so they see the change); build-time fields are left alone."""
    changed = []
    for section in sections:
        old_sec, new_sec = getattr(cfg, section), getattr(new, section)
        for f in dataclasses.fields(old_sec):
            name = f"{section}.{f.name}"
            if name in BUILD_TIME_FIELDS:
                continue
            if getattr(old_sec, f.name) != getattr(new_sec, f.name):
                setattr(old_sec, f.name, getattr(new_sec, f.name))
                changed.append(name)
    return changed


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
