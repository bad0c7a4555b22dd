"""The exported CLIP-adapter model inside the perception pipeline on the real webcam face video:
faces get ABAW expression, VA, AU and compound outputs, and each face crop is encoded once per frame."""
from __future__ import annotations

import numpy as np
import pytest

from clip_helpers import export_tiny, tiny_tokenizer_dir

from dfer_ros.perception.model_interface import FrameEncoder


class CountingEncoder(FrameEncoder):
    """Wraps the encoder to count crops: streaming means one encode per face per frame."""

    def __init__(self, inner):
        self.inner, self.crops = inner, 0
        self.crop_spec, self.embedding_dim = inner.crop_spec, inner.embedding_dim

    def encode(self, crops):
        self.crops += len(crops)
        return self.inner.encode(crops)

    def reset(self):
        self.inner.reset()


def test_clip_model_in_pipeline_on_sample_video(tmp_path):
    import cv2

    from dfer_ros import assets
    from dfer_ros.estimators.clip_model import load_clip_model
    from dfer_ros.perception.config import PipelineConfig
    from dfer_ros.perception.pipeline import PerceptionPipeline

    try:
        video = assets.sample_video()
    except Exception as exc:  # noqa: BLE001 - the asset helper names what is missing
        pytest.skip(f"sample video unavailable: {exc}")
    assert export_tiny(tmp_path / "tiny", tiny_tokenizer_dir(tmp_path)) == 0
    model = load_clip_model(tmp_path / "tiny", backend="onnxruntime")
    model.encoder = CountingEncoder(model.encoder)
    pipeline = PerceptionPipeline(PipelineConfig(), model)
    cap = cv2.VideoCapture(str(video))
    results = []
    for i in range(12):
        ok, frame = cap.read()
        assert ok, f"cannot read frame {i} of {video}"
        results.append(pipeline.process(frame, stamp=i / 25.0))
    cap.release()
    faces = [f for r in results for f in r.faces]
    assert faces, "no face found in the sample video"
    encoded = [f for f in faces if f.frame_estimate is not None]
    assert model.encoder.crops == len(encoded)  # one encoder call per face per frame, never a re-encode
    last = encoded[-1]
    assert last.estimate.expression_labels[0] == "Neutral" and len(last.estimate.expression_probs) == 8
    assert np.isfinite(last.estimate.valence) and last.estimate.au_probs.shape == (12,)
    assert len(last.estimate.compound_probs) == 7
    assert max(f.window_frames for f in faces) > 1
