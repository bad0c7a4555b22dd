"""face-api's descriptor net: the ONNX conversion from its TF.js weights, its cache, parity with face-api's own
code on TF.js 4.22 (CPU backend, under node), and that it tells people apart on real faces (London set,
DeBruine & Jones 2017, CC BY 4.0)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from dfer_ros import assets
from dfer_ros.estimators import faceapi_descriptor as fd
from dfer_ros.estimators.tfjs_weights import load_weights, weight_count
from dfer_ros.evaluation import verification as ver
from dfer_ros.perception.config import PipelineConfig, ReidConfig
from dfer_ros.perception.detection import create_detector

MANIFEST = assets.cached_file(assets.FACEAPI_RECOGNITION_MANIFEST)
LONDON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "london_faces"


@pytest.fixture(scope="module")
def descriptor():
    return fd.FaceApiDescriptor()


@pytest.fixture(scope="module")
def london_crops(descriptor):
    """Aligned crops of the first 8 people of the London set, neutral then smiling (the pipeline's alignment)."""
    import cv2

    from dfer_ros.perception.alignment import align_faces

    if not LONDON.is_dir():
        pytest.skip(f"the London face set is not at {LONDON}")
    detector = create_detector(PipelineConfig().detection.detector)
    people = [f"{i:03d}" for i in range(1, 9)]
    crops = []
    for condition in ("neutral", "happy"):
        for person in people:
            image = cv2.imread(str(LONDON / condition / f"{person}.jpg"))
            faces = detector.detect(image)
            assert faces, f"no face found in {condition}/{person}.jpg"
            crops.append(align_faces(image, faces[:1], descriptor.crop_spec)[0])
    return people * 2, np.stack(crops)


def test_weights_and_graph(descriptor):
    weights = load_weights(MANIFEST)
    assert set(weights) == set(fd.expected_shapes())
    assert all(tuple(weights[k].shape) == s for k, s in fd.expected_shapes().items())
    assert 5_000_000 < weight_count(weights) < 6_500_000  # dlib's ResNet: about 5.8M
    model = onnx.load(str(descriptor.net.onnx_path))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 150, 150, 3]
    assert [o.name for o in model.graph.output] == ["descriptor"]
    notice = descriptor.net.onnx_path.with_name(descriptor.net.onnx_path.stem + ".LICENSE.txt").read_text()
    assert "MIT License" in notice and "public" in notice and assets.FACEAPI_PACKAGE in notice


def test_batch_invariant_and_input_checked(descriptor, london_crops):
    _, crops = london_crops
    batch = descriptor.describe(crops[:4])
    single = np.concatenate([descriptor.describe(crops[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert batch.shape == (4, 128) and batch.dtype == np.float32
    assert descriptor.describe(crops[:0]).shape == (0, 128)
    with pytest.raises(ValueError, match="150"):
        descriptor.describe(np.zeros((1, 112, 112, 3), np.uint8))


def test_wrong_weights_are_refused(tmp_path):
    shutil.copy(MANIFEST.with_name("face_recognition_model.bin"), tmp_path / "face_recognition_model.bin")
    groups = json.loads(MANIFEST.read_text())
    groups[0]["weights"][0]["name"] = "conv32_down/conv/kernel"
    (tmp_path / "m.json").write_text(json.dumps(groups))
    with pytest.raises(fd.DescriptorConversionError, match="missing .*conv32_down/conv/filters"):
        fd.converted_model_path(tmp_path / "m.json", cache=tmp_path / "cache")


def test_same_person_closer_than_others(descriptor, london_crops):
    people, crops = london_crops
    result = ver.verification(people, list(descriptor.describe(crops)))
    assert len(result.genuine) == 8 and len(result.impostor) == 16 * 15 // 2 - 8
    # every neutral face is nearest to the same person's smiling face, and the default threshold splits them
    print(result.text())
    assert result.genuine.max() < ReidConfig().max_distance <= result.impostor.min()


def test_matches_tfjs_running_faceapis_own_code(descriptor, london_crops, tmp_path):
    from test_faceapi_conversion import run_faceapi_net_tfjs  # the shared TF.js 4.22 + face-api runner

    _, crops = london_crops
    rng = np.random.default_rng(5)
    inputs = np.concatenate([crops[:3], rng.integers(0, 256, (1, 150, 150, 3)).astype(np.uint8)])
    tfjs, out = run_faceapi_net_tfjs("FaceRecognitionNet", MANIFEST, inputs, tmp_path)
    ours = descriptor.describe(inputs)
    diff = np.abs(ours - tfjs).max()
    print(f"ONNX vs TF.js {out['tfjs']} ({out['backend']} backend, face-api's FaceRecognitionNet): "
          f"max |diff| {diff:.2e} over {len(inputs)} inputs (descriptor entries up to {np.abs(tfjs).max():.2f})")
    assert diff < 1e-4


def test_missing_weights_disable_reid_with_the_reason(tmp_path, monkeypatch):
    from dfer_ros.estimators.loader import load_reid_descriptor
    from dfer_ros.perception.config import PipelineConfig

    monkeypatch.setenv("DFER_CACHE_DIR", str(tmp_path / "empty"))
    descriptor, reason = load_reid_descriptor(PipelineConfig())
    assert descriptor is None
    assert reason.startswith("reid: descriptor model unavailable") and "face_recognition_model" in reason
    off = PipelineConfig()
    off.reid.enabled = False
    assert load_reid_descriptor(off) == (None, "")  # switched off: nothing is loaded, nothing is missing
