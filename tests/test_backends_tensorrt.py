"""TensorRT backend on a real GPU: engine build from the exported tiny model, FP32 and FP16 parity
with ONNX Runtime, engine cache reuse, the dfer build-engine CLI. Skipped (with the reason) where
TensorRT or a CUDA GPU is missing."""
from __future__ import annotations

import numpy as np
import pytest

from dfer_ros.backends.tensorrt_backend import tensorrt_status

USABLE, REASON = tensorrt_status()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"TensorRT tests need TensorRT 10 and a CUDA GPU: {REASON}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from clip_helpers import export_tiny, tiny_tokenizer_dir

    tmp = tmp_path_factory.mktemp("trt")
    assert export_tiny(tmp / "tiny", tiny_tokenizer_dir(tmp), ["--no-text"]) == 0
    return tmp / "tiny"


@pytest.mark.parametrize("fp16,atol", [(False, 1e-3), (True, 5e-2)])
def test_tensorrt_matches_onnxruntime(exported, tmp_path, fp16, atol):
    from clip_helpers import random_crops
    from dfer_ros.estimators.clip_model import load_clip_model

    ort = load_clip_model(exported, backend="onnxruntime")
    trt = load_clip_model(exported, backend="tensorrt", fp16=fp16, max_faces=4, cache_dir=tmp_path / "engines")
    crops = random_crops(6, seed=2)  # 6 > max_faces: the encoder must chunk by the profile's max batch
    e_ort, e_trt = ort.encoder.encode(crops), trt.encoder.encode(crops)
    np.testing.assert_allclose(e_trt, e_ort, atol=atol)
    windows = [e_ort[:1], e_ort[:4], e_ort]
    for a, b in zip(ort.head.predict(windows), trt.head.predict(windows)):
        np.testing.assert_allclose(b.expression_probs, a.expression_probs, atol=atol)
        np.testing.assert_allclose(b.au_probs, a.au_probs, atol=atol)


def test_engine_cache_is_reused_and_keyed(exported, tmp_path):
    from dfer_ros.backends.tensorrt_backend import engine_for

    onnx = exported / "temporal_head.onnx"
    first = engine_for(onnx, tmp_path, fp16=True, max_batch=2)
    stamp = first.stat().st_mtime_ns
    assert engine_for(onnx, tmp_path, fp16=True, max_batch=2) == first and first.stat().st_mtime_ns == stamp
    assert engine_for(onnx, tmp_path, fp16=True, max_batch=3) != first


def test_build_engine_cli(exported, tmp_path):
    from dfer_ros.cli.build_engine import main

    assert main([str(exported), "--fp16", "--max-faces", "2", "--cache-dir", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.engine"))) == 2
