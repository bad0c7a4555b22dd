"""Frame normalisation, detection on a real face, alignment and the pipeline config."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.perception.alignment import align_faces, similarity_transform, template_for
from dfer_ros.perception.config import ConfigError, PipelineConfig
from dfer_ros.perception.detection import HaarDetector, YuNetDetector, create_detector, DetectorError
from dfer_ros.perception.frames import FrameError, to_bgr8
from dfer_ros.perception.types import Detection

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def astronaut_bgr():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


# ---------------------------------------------------------------- frames
@pytest.mark.parametrize("bad, why", [
    (None, "None"), (np.zeros((0, 10, 3), np.uint8), "empty"), (np.zeros((10, 0), np.uint8), "empty"),
    (np.zeros((4, 4, 2), np.uint8), "channels"), (np.zeros((4, 4, 3), np.int32), "dtype"),
    (np.zeros(5, np.uint8), "shape"), ([[1, 2]], "numpy"), (np.full((4, 4), np.nan, np.float32), "NaN"),
])
def test_bad_frames_raise_frame_error(bad, why):
    with pytest.raises(FrameError, match=why):
        to_bgr8(bad)


def test_encodings_and_layouts():
    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB
    assert to_bgr8(rgb, "rgb8")[0, 0].tolist() == [0, 0, 200]
    assert to_bgr8(rgb, "bgr8")[0, 0].tolist() == [200, 0, 0]
    bgra = np.dstack([rgb, np.full((3, 5), 7, np.uint8)])
    assert to_bgr8(bgra, "bgra8").shape == (3, 5, 3)
    assert to_bgr8(bgra, "rgba8")[0, 0].tolist() == [0, 0, 200]
    gray = np.full((7, 9), 50, np.uint8)
    for g in (gray, gray[..., None]):
        out = to_bgr8(g, "mono8")
        assert out.shape == (7, 9, 3) and out.dtype == np.uint8 and (out == 50).all()
    assert to_bgr8(np.full((2, 3), 0.5, np.float32))[0, 0, 0] == 127
    assert to_bgr8(np.full((2, 3), 65535, np.uint16))[0, 0, 0] == 255
    odd = np.zeros((1, 1, 3), np.uint8)  # odd and tiny sizes are fine
    assert to_bgr8(odd).shape == (1, 1, 3)
    with pytest.raises(FrameError, match="expects 3 channels"):
        to_bgr8(bgra, "bgr8")
    with pytest.raises(FrameError, match="maximum side"):
        to_bgr8(np.zeros((10, 5000), np.uint8), max_side=4096)
    with pytest.raises(FrameError, match="unsupported encoding"):
        to_bgr8(rgb, "yuv422")





# ---------------------------------------------------------------- detection on a real face
def test_yunet_finds_the_astronaut_with_landmarks(astronaut_bgr):
    dets = YuNetDetector(max_side=512).detect(astronaut_bgr)
    assert len(dets) == 1
    d = dets[0]
    x, y, w, h = d.box
    assert 0.8 < d.score <= 1.0
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 160 and 60 < w < 140  # her face, upper middle
    lm = d.landmarks
    assert lm.shape == (5, 2)
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # subject's right eye/mouth on the image's left
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above nose above mouth


def test_downscaled_detection_maps_back_to_full_resolution(astronaut_bgr):
    full = YuNetDetector(max_side=512).detect(astronaut_bgr)[0]
    big = cv2.resize(astronaut_bgr, (1024, 1024))
    scaled = YuNetDetector(max_side=320).detect(big)[0]
    np.testing.assert_allclose(scaled.box / 2, full.box, atol=12)
    np.testing.assert_allclose(scaled.landmarks / 2, full.landmarks, atol=8)


def test_haar_finds_the_astronaut_without_landmarks(astronaut_bgr):
    dets = HaarDetector(max_side=512).detect(astronaut_bgr)
    assert len(dets) >= 1
    x, y, w, h = dets[0].box
    assert dets[0].landmarks is None and 0.5 <= dets[0].score <= 1.0
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 170


def test_min_face_size_score_and_no_faces(astronaut_bgr):
    assert YuNetDetector(max_side=512, min_face_size=200).detect(astronaut_bgr) == []
    assert YuNetDetector(max_side=512, min_score=0.99).detect(astronaut_bgr) == []
    assert YuNetDetector().detect(np.zeros((240, 320, 3), np.uint8)) == []
    with pytest.raises(DetectorError, match="unknown detector"):
        create_detector("mtcnn")


# ---------------------------------------------------------------- alignment
def test_similarity_transform_recovers_rotation_scale_translation():
    src = template_for(CropSpec(112))
    angle, scale = np.deg2rad(20), 1.7
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + [30, -5]
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], [30, -5], atol=1e-9)


@pytest.mark.parametrize("spec", [CropSpec(64, 1.0, "gray"), CropSpec(224, 1.3, "rgb"), CropSpec(112)])
def test_align_faces_puts_landmarks_on_the_template(astronaut_bgr, spec):
    det = YuNetDetector(max_side=512).detect(astronaut_bgr)[0]
    crops = align_faces(astronaut_bgr, [det, det.box], spec)
    assert crops.shape == (2, spec.size, spec.size, 3) and crops.dtype == np.uint8
    m = similarity_transform(det.landmarks, template_for(spec))
    mapped = det.landmarks @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(mapped, template_for(spec), atol=0.08 * spec.size)  # 5-point fit residual
    if spec.color == "gray":
        assert (crops[..., 0] == crops[..., 1]).all()
    # rgb crops are the bgr crop with channels swapped
    if spec.color == "rgb":
        bgr = align_faces(astronaut_bgr, [det], CropSpec(spec.size, spec.face_scale, "bgr"))
        np.testing.assert_array_equal(crops[0], bgr[0][..., ::-1])


def test_faces_at_the_border_are_padded_not_skipped(astronaut_bgr):
    det = YuNetDetector(max_side=512).detect(astronaut_bgr)[0]
    shift = int(det.box[0] + det.box[2] * 0.6)  # cut the frame through the face
    frame = np.ascontiguousarray(astronaut_bgr[:, shift:])
    moved = Detection(box=det.box - [shift, 0, 0, 0], score=det.score, landmarks=det.landmarks - [shift, 0])
    crops = align_faces(frame, [moved, moved.box], CropSpec(64))
    assert crops.shape == (2, 64, 64, 3)
    assert crops[:, :, :8].std(axis=2).mean() < 6  # replicated border: each row nearly constant there


def test_empty_batch():
    assert align_faces(np.zeros((10, 10, 3), np.uint8), [], CropSpec(64)).shape == (0, 64, 64, 3)


# ---------------------------------------------------------------- config
def test_yaml_defaults_load_and_match_the_dataclass():
    cfg = PipelineConfig.from_yaml(REPO / "config" / "pipeline.yaml")
    assert cfg == PipelineConfig()


@pytest.mark.parametrize("data, msg", [
    ({"detection": {"every": 0}}, "detection.every"),
    ({"tracking": {"iou_threshold": 1.5}}, "tracking.iou_threshold"),
    ({"detection": {"detector": "mtcnn"}}, "detection.detector"),
    ({"buffer": {"window_frames": 2.5}}, "integer"),
    ({"aggregation": {"enabled": "yes"}}, "true or false"),
    ({"tracking": {"lost_secs": 1}}, "unknown key"),
    ({"detection": 3}, "mapping"),
])
def test_config_errors_name_the_field(data, msg):
    with pytest.raises(ConfigError, match=msg):
        PipelineConfig.from_dict(data)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        PipelineConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("detection: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        PipelineConfig.from_yaml(bad)
    partial = tmp_path / "partial.yaml"
    partial.write_text("detection:\n  every: 3\n")
    assert PipelineConfig.from_yaml(partial).detection.every == 3


def test_flat_dotted_names_round_trip_for_ros_parameters():
    flat = PipelineConfig().to_flat()
    assert flat["detection.every"] == 1 and flat["aggregation.enabled"] is True and "max_frame_side" in flat
    cfg = PipelineConfig.from_flat({"detection.every": 3, "tracking.lost_seconds": 2.5})
    assert cfg.detection.every == 3 and cfg.tracking.lost_seconds == 2.5
    assert PipelineConfig.from_flat(flat) == PipelineConfig()
    with pytest.raises(ConfigError, match="tracking.lost_seconds"):
        PipelineConfig.from_flat({"tracking.lost_seconds": -1})
