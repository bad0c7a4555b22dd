"""Face quality per face and frame, and when the pipeline should abstain from an expression estimate.

A behaviour node must not act on a confident label read from a profile view, a blurred face or half a
face at the image border. This module measures, from what the detector already gives (box, score and
the 5 landmarks), without running any model:

* head pose: yaw, pitch, roll in degrees (``head_pose``, method below);
* sharpness: variance of the Laplacian of the face region resized to 64x64 grey, about the resolution
  the expression model sees (so a small upscaled face reads as blurred, as it is for the model);
* face size: the shorter side of the detection box in pixels (the detector's own ``min_face_size`` unit);
* detection score, and the visible fraction of the face (``cut_by_border`` when more than 2 % of it is
  outside the image). Detectors shrink their box to the part of a face inside the image (YuNet's box of a
  face half out of frame stays inside it), so with landmarks the face's full extent is predicted from them
  (``expected_face_box``: the mean box-to-landmark geometry of frontal faces) and that box is used.

``assess`` turns these into a ``FaceQuality`` whose ``abstain_reason`` names every threshold that failed
(empty when the face is usable). Thresholds are ``config.QualityConfig`` fields; their defaults were chosen
from the measurements in docs/perception.md (face quality section).

Head pose method (scaled orthographic fit of a generic 5-point face): the five detector landmarks
(right eye, left eye, nose tip, right mouth corner, left mouth corner) are matched to ``FACE_MODEL_3D``, a
mean face in units of the inter-ocular distance. The least-squares 2x3 affine camera mapping the centred
model to the centred landmarks is projected onto the nearest scaled rotation (SVD), its third row
completed by a cross product, and the rotation decomposed as R = Ry(yaw) Rx(pitch) Rz(roll) about the
camera axes (x right, y down, z forward). Yaw and pitch are therefore the azimuth and elevation of the
direction the nose points. Signs: yaw > 0 when the subject turns to their left (the nose moves to the
image's right); pitch > 0 when the subject looks up; roll > 0 when the subject's left eye (image right)
is lower than the right one (the head tilts clockwise on screen). Only one landmark (the nose tip) is out
of the eye-mouth plane, so yaw and pitch rest on where the nose sits between eyes and mouth: individual
nose shapes shift pitch by several degrees, and beyond about 60 degrees of yaw the detector's landmarks
on the hidden side are guesses. Good enough to tell "facing the camera" from "turned away", not a
precise gaze direction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from dfer_ros.perception.config import QualityConfig

__all__ = ["QualityConfig", "FaceQuality", "HeadPose", "assess", "head_pose", "face_model", "UNKNOWN_LABEL"]

# Generic face per detector, one row per landmark (right eye, left eye, nose tip, right mouth corner, left
# mouth corner), x to the image right, y down, z away from the camera, in units of the inter-ocular distance,
# origin between the eyes. x and y: the mean layout of THAT detector's landmarks on frontal studio faces (the
# odd-numbered neutral London faces; the even-numbered ones are held out for checking), roll and scale removed
# and made left-right symmetric, so that a frontal face reads yaw 0 and pitch 0 with the detector in use (the
# common ArcFace alignment template puts the mouth 17 % lower than YuNet does, which read as -10 degrees of
# pitch). z: mean depth of the same points (iris centres 468/473, nose tip 4, mouth corners 61/291) relative to
# the eye centres in MediaPipe Face Landmarker meshes of the 102 neutral London faces: nose -0.623 (sd 0.054),
# mouth corners -0.06 (sd 0.09). Both measured by ``dfer bench quality --model-depths``;
# add a row when a detector is added.
NOSE_DEPTH, MOUTH_DEPTH = -0.623, -0.060
FACE_LAYOUTS = {  # detector -> (nose y, mouth corner |x|, mouth y)
    "centerface": (0.5846, 0.4207, 1.0055),
    "yunet": (0.5805, 0.4430, 0.9868),
}
DEFAULT_DETECTOR = "centerface"


def face_model(detector: str = DEFAULT_DETECTOR) -> np.ndarray:
    """The (5, 3) generic face for a detector's landmarks (an unknown detector gets the default's)."""
    nose_y, mouth_x, mouth_y = FACE_LAYOUTS.get(detector, FACE_LAYOUTS[DEFAULT_DETECTOR])
    return np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, nose_y, NOSE_DEPTH],
                     [-mouth_x, mouth_y, MOUTH_DEPTH], [mouth_x, mouth_y, MOUTH_DEPTH]], dtype=np.float64)


FACE_MODEL_3D = face_model()
# (3, 5) pseudo-inverse of each centred model: the least-squares affine camera is one product per face
_MODEL_PINV = {name: np.linalg.pinv(face_model(name) - face_model(name).mean(0)) for name in FACE_LAYOUTS}

UNKNOWN_LABEL = "unknown"  # the published expression of a face the pipeline abstains on

SHARPNESS_SIZE = 64  # px side the face region is resized to before the Laplacian


@dataclass
class HeadPose:
    """Head rotation relative to the camera, degrees; see the module docstring for axes and signs."""

    yaw: float
    pitch: float
    roll: float

    @property
    def off_axis_degrees(self) -> float:
        """Angle between where the nose points and the line to the camera."""
        c = math.cos(math.radians(self.yaw)) * math.cos(math.radians(self.pitch))
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))


@dataclass
class FaceQuality:
    """What ``assess`` measured about one face in one frame and whether the estimate is to be withheld."""

    head_pose: Optional[HeadPose]  # None without 5 usable landmarks (Haar detector, tracker prediction)
    sharpness: float
    face_size: float  # px, shorter side of the box
    detection_score: float
    visible_fraction: float  # of the face (landmark-predicted extent, else the box) inside the image
    cut_by_border: bool
    looking_at_camera: bool  # head-pose based (false when the pose is unknown)
    attention: float  # 1 facing the camera .. 0 at 90 degrees or more off axis (0 when the pose is unknown)
    abstain_reason: str = ""  # empty: usable; else every failed check, "; "-separated

    @property
    def abstained(self) -> bool:
        return bool(self.abstain_reason)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation_from_pose(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation (model -> camera) for angles in degrees, R = Ry(yaw) Rx(pitch) Rz(roll) with this module's signs."""
    # The nose points along -z of the model; yaw > 0 must swing it to +x (image right): Ry(-yaw) in the
    # right-handed y-down frame. Pitch > 0 must lift it to -y (image up): Rx(-pitch).
    return _rot_y(-math.radians(yaw)) @ _rot_x(-math.radians(pitch)) @ _rot_z(math.radians(roll))


def pose_from_rotation(rot) -> HeadPose:
    """Inverse of ``rotation_from_pose`` (plain floats: it runs for every face of every frame)."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = [[float(v) for v in row] for row in rot]
    fx, fy, fz = -r02, -r12, -r22  # where the nose points (the model's -z), in camera axes
    yaw = math.atan2(fx, -fz)
    pitch = math.atan2(-fy, math.hypot(fx, fz))
    # Rz(roll) = Rx(-pitch)^T Ry(-yaw)^T R; only its first column is needed
    cy, sy = math.cos(yaw), -math.sin(yaw)
    cp, sp = math.cos(pitch), -math.sin(pitch)
    rz00 = cy * r00 - sy * r20
    rz10 = cp * r10 + sp * (sy * r00 + cy * r20)
    return HeadPose(yaw=math.degrees(yaw), pitch=math.degrees(pitch), roll=math.degrees(math.atan2(rz10, rz00)))


def head_pose(landmarks: Optional[np.ndarray], detector: str = DEFAULT_DETECTOR) -> Optional[HeadPose]:
    """Yaw, pitch, roll (degrees) from 5 detector landmarks in image pixels; None when they are unusable."""
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
        return None
    image = pts - pts.mean(0)
    if float(np.abs(image).max()) < 1e-6:
        return None
    pinv = _MODEL_PINV.get(detector, _MODEL_PINV[DEFAULT_DETECTOR])
    affine = pinv @ image  # (3, 2): least squares of image ~ centred model @ affine
    u, s, vt = np.linalg.svd(affine.T, full_matrices=False)  # affine.T = (2, 3) = scale * two rotation rows
    if s[-1] <= 1e-9 * max(s[0], 1e-12):
        return None
    (a0, a1, a2), (b0, b1, b2) = (u @ vt).tolist()
    return pose_from_rotation(((a0, a1, a2), (b0, b1, b2), (a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0)))


def sharpness(frame_bgr: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face region (clipped to the image) at 64x64 grey; 0 when empty."""
    height, width = frame_bgr.shape[:2]
    x, y, w, h = [float(v) for v in box]
    x1, y1 = int(max(0.0, math.floor(x))), int(max(0.0, math.floor(y)))
    x2, y2 = int(min(float(width), math.ceil(x + w))), int(min(float(height), math.ceil(y + h)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    region = frame_bgr[y1:y2, x1:x2]
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    shrink = min(gray.shape[:2]) >= SHARPNESS_SIZE  # area averaging to shrink, linear (smooth) to enlarge
    small = cv2.resize(gray, (SHARPNESS_SIZE, SHARPNESS_SIZE),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    _, std = cv2.meanStdDev(cv2.Laplacian(small, cv2.CV_32F))
    return float(std[0, 0]) ** 2


# Face box relative to the 5 landmarks on the calibration half of the London faces, per detector: width and
# height in units of s = max(eye distance, eye-to-mouth distance / mouth_per_eye), centre offset from the
# landmark centroid.
FACE_BOX_FROM_LANDMARKS = {
    "centerface": {"width": 2.20, "height": 2.90, "dx": 0.02, "dy": -0.23, "mouth_per_eye": 1.006},
    "yunet": {"width": 2.08, "height": 2.75, "dx": -0.06, "dy": -0.21, "mouth_per_eye": 0.987},
}
CUT_TOLERANCE = 0.98  # visible fraction below which a face counts as cut by the border


def expected_face_box(landmarks: Optional[np.ndarray], detector: str = DEFAULT_DETECTOR) -> Optional[np.ndarray]:
    """The whole face's (x, y, w, h) predicted from 5 landmarks (also the part outside the image), or None."""
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
        return None
    g = FACE_BOX_FROM_LANDMARKS.get(detector, FACE_BOX_FROM_LANDMARKS[DEFAULT_DETECTOR])
    (rx, ry), (lx, ly), _, (mrx, mry), (mlx, mly) = pts.tolist()
    mouth_eye = math.hypot((mrx + mlx - rx - lx) / 2.0, (mry + mly - ry - ly) / 2.0)
    scale = max(math.hypot(lx - rx, ly - ry), mouth_eye / g["mouth_per_eye"])
    if scale < 1e-6:
        return None
    cx, cy = pts.mean(0).tolist()
    cx, cy = cx + scale * g["dx"], cy + scale * g["dy"]
    w, h = g["width"] * scale, g["height"] * scale
    return np.array([cx - w / 2.0, cy - h / 2.0, w, h])


def visible_fraction(box: np.ndarray, width: int, height: int) -> float:
    """Fraction of the (unclipped) box area inside a ``width`` x ``height`` image."""
    x, y, w, h = [float(v) for v in box]
    if w <= 0 or h <= 0:
        return 0.0
    iw = max(0.0, min(x + w, float(width)) - max(x, 0.0))
    ih = max(0.0, min(y + h, float(height)) - max(y, 0.0))
    return min(1.0, iw * ih / (w * h))


def attention(pose: Optional[HeadPose], config: QualityConfig) -> tuple[bool, float]:
    """(looking_at_camera, attention score in [0, 1]) from head pose alone (not eye gaze)."""
    if pose is None:
        return False, 0.0
    looking = abs(pose.yaw) <= config.attention_max_yaw_degrees and abs(pose.pitch) <= config.attention_max_pitch_degrees
    return looking, max(0.0, 1.0 - pose.off_axis_degrees / 90.0)


def abstain_reason(pose: Optional[HeadPose], size: float, sharp: float, score: float, visible: float,
                   config: QualityConfig) -> str:
    """Every failed check in words ("head turned: yaw 52 deg > 45; blurred: ..."), or "" when usable.

    An unknown head pose (no landmarks) does not abstain by itself: a detector without landmarks would
    otherwise silence every face.
    """
    if not (config.enabled and config.abstain):
        return ""
    reasons = []
    if pose is not None and abs(pose.yaw) > config.max_yaw_degrees:
        reasons.append(f"head turned: |yaw| {abs(pose.yaw):.0f} deg > {config.max_yaw_degrees:g}")
    if pose is not None and abs(pose.pitch) > config.max_pitch_degrees:
        reasons.append(f"head tilted: |pitch| {abs(pose.pitch):.0f} deg > {config.max_pitch_degrees:g}")
    if size < config.min_face_pixels:
        reasons.append(f"face too small: {size:.0f} px < {config.min_face_pixels:g}")
    if sharp < config.min_sharpness:
        reasons.append(f"blurred: sharpness {sharp:.1f} < {config.min_sharpness:g}")
    if score < config.min_detection_score:
        reasons.append(f"low detection score: {score:.2f} < {config.min_detection_score:g}")
    if visible < config.min_visible_fraction:
        reasons.append(f"cut by the image border: {visible:.0%} visible < {config.min_visible_fraction:.0%}")
    return "; ".join(reasons)


def assess(frame_bgr: np.ndarray, box: np.ndarray, score: float, landmarks: Optional[np.ndarray],
           config: QualityConfig, detector: str = DEFAULT_DETECTOR) -> FaceQuality:
    """Quality of one detected face: ``box`` unclipped (x, y, w, h), ``landmarks`` (5, 2) or None."""
    height, width = frame_bgr.shape[:2]
    pose = head_pose(landmarks, detector)
    size = float(min(box[2], box[3]))
    sharp = sharpness(frame_bgr, box)
    extent = expected_face_box(landmarks, detector)
    visible = visible_fraction(box if extent is None else extent, width, height)
    looking, score_att = attention(pose, config)
    return FaceQuality(head_pose=pose, sharpness=sharp, face_size=size, detection_score=float(score),
                       visible_fraction=visible, cut_by_border=visible < CUT_TOLERANCE, looking_at_camera=looking,
                       attention=score_att,
                       abstain_reason=abstain_reason(pose, size, sharp, float(score), visible, config))
