"""Test doubles for driving PerceptionPipeline deterministically: a scripted detector and a tiny model.

The model is real arithmetic on the crops (no canned outputs): the embedding is the crop's mean
brightness and darkness, the head a softmax of the window mean, so a face that turns bright is seen
as "bright" once enough bright frames fill its window.
"""
from __future__ import annotations

import numpy as np

from dfer_ros.perception.model_interface import AffectModel, CropSpec, FrameEncoder, TemporalHead
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import FaceDetector
from dfer_ros.perception.pipeline import PerceptionPipeline
from dfer_ros.perception.types import AffectEstimate, Detection

LABELS = ("dark", "bright")


class ScriptedDetector(FaceDetector):
    """Returns ``self.next`` (a list of Detection) for every frame; counts its calls."""

    def __init__(self):
        super().__init__(min_score=0.0, min_face_size=1, max_side=10_000)
        self.next: list[Detection] = []
        self.calls = 0

    def _detect_small(self, image):
        self.calls += 1
        return list(self.next)

    def detect_regions(self, frame_bgr, regions):
        """One call: per region, the scripted faces whose centre lies in it (still in frame pixels), as a
        real detector finds the faces inside a region it is shown."""
        self.calls += 1
        def inside(det, region):
            cx, cy = det.box[0] + det.box[2] / 2, det.box[1] + det.box[3] / 2
            return region.x <= cx < region.x + region.w and region.y <= cy < region.y + region.h
        return [[d for d in self.next if inside(d, region)] for region in regions]


class BrightnessEncoder(FrameEncoder):
    """Embedding = (mean darkness, mean brightness) of the crop, both in [0, 1]."""

    crop_spec = CropSpec(16, 1.0, "gray")
    embedding_dim = 2

    def encode(self, crops):
        m = crops.astype(np.float32).mean(axis=tuple(range(1, crops.ndim))) / 255.0
        return np.stack([1.0 - m, m], 1)


class SoftmaxHead(TemporalHead):
    """Softmax of 8 x the window mean."""

    min_frames = 2
    max_frames = 6

    def predict(self, windows):
        out = []
        for w in windows:
            p = np.exp(8.0 * w.mean(0))
            out.append(AffectEstimate(LABELS, (p / p.sum()).astype(np.float32)))
        return out


def fake_pipeline(config: PipelineConfig | None = None):
    """(pipeline, scripted detector) with the brightness model.

    Quality abstention is off: the flat test frames have no sharpness, so every face would read "unknown".
    """
    config = config or PipelineConfig()
    config.quality.abstain = False
    detector = ScriptedDetector()
    model = AffectModel(BrightnessEncoder(), SoftmaxHead(), "fake", "numpy")
    return PerceptionPipeline(config, model, detector=detector), detector


def face(x: float, y: float, size: float = 40.0, score: float = 0.9) -> Detection:
    return Detection(box=np.array([x, y, size, size], np.float32), score=score)
