"""Face alignment: cut each face into the square crop its encoder expects (``CropSpec``).

With 5 landmarks a similarity transform (rotation, uniform scale, translation; Umeyama least
squares) maps them onto a canonical template, so eyes and mouth land at the same pixels in every
crop whatever the head roll. Without landmarks (Haar, tracker predictions) a square crop around the
box stands in. Faces at the image border are padded (replicated border), never skipped: dropping
them would leave holes in the track's temporal buffer.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import cv2
import numpy as np

from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.perception.types import Detection

# The widely used 5-point template for 112x112 face crops (ArcFace / InsightFace), in the order of
# types.Detection.landmarks: right eye, left eye, nose, right mouth corner, left mouth corner (the
# subject's right appears on the image's left).
TEMPLATE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)

BORDER_MODES = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


def template_for(spec: CropSpec) -> np.ndarray:
    """The 5-point template in a ``spec.size`` crop; ``face_scale`` > 1 shrinks it about the centre (more context)."""
    unit = TEMPLATE_112 / 112.0
    return ((unit - 0.5) / float(spec.face_scale) + 0.5) * float(spec.size)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform (Umeyama 1991, no reflection) mapping src points onto dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("degenerate landmarks (all points coincide)")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign)) / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def box_transform(box: np.ndarray, spec: CropSpec) -> np.ndarray:
    """2x3 transform cutting a square of side max(w, h) * face_scale centred on the box."""
    x, y, w, h = [float(v) for v in box]
    side = max(w, h, 1.0) * float(spec.face_scale)
    scale = spec.size / side
    cx, cy = x + w / 2.0, y + h / 2.0
    return np.array([[scale, 0.0, spec.size / 2.0 - scale * cx],
                     [0.0, scale, spec.size / 2.0 - scale * cy]])


def _landmarks_usable(landmarks: Optional[np.ndarray]) -> bool:
    if landmarks is None:
        return False
    pts = np.asarray(landmarks, np.float64)
    return pts.shape == (5, 2) and bool(np.all(np.isfinite(pts))) and float(np.ptp(pts[:, 0])) > 1.0


def align_face(frame_bgr: np.ndarray, face: Union[Detection, np.ndarray], spec: CropSpec,
               border: str = "replicate") -> np.ndarray:
    """One aligned (S, S, 3) uint8 crop in ``spec.color`` order (gray is replicated to 3 channels)."""
    if isinstance(face, Detection):
        box, landmarks = face.box, face.landmarks
    else:
        box, landmarks = np.asarray(face, np.float32), None
    matrix = None
    if _landmarks_usable(landmarks):
        try:
            matrix = similarity_transform(landmarks, template_for(spec))
        except ValueError:
            matrix = None
    if matrix is None:
        matrix = box_transform(box, spec)
    crop = cv2.warpAffine(frame_bgr, matrix, (spec.size, spec.size), flags=cv2.INTER_LINEAR,
                          borderMode=BORDER_MODES[border], borderValue=(0, 0, 0))
    return _convert_color(crop, spec.color)


def align_faces(frame_bgr: np.ndarray, faces: Sequence[Union[Detection, np.ndarray]], spec: CropSpec,
                border: str = "replicate") -> np.ndarray:
    """All faces of one frame as one (N, S, S, 3) uint8 batch, ready for ``FrameEncoder.encode``."""
    if border not in BORDER_MODES:
        raise ValueError(f"border must be one of {sorted(BORDER_MODES)}, got {border!r}")
    out = np.empty((len(faces), spec.size, spec.size, 3), np.uint8)
    for i, face in enumerate(faces):
        out[i] = align_face(frame_bgr, face, spec, border)
    return out


def _convert_color(crop_bgr: np.ndarray, color: str) -> np.ndarray:
    if color == "bgr":
        return crop_bgr
    if color == "rgb":
        return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
    if color == "gray":
        return cv2.cvtColor(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    raise ValueError(f"CropSpec.color must be 'bgr', 'rgb' or 'gray', got {color!r}")
