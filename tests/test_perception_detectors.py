"""The default CenterFace detector on real faces: landmarks, tight face crops, memory over many calls, names.

Tight crops are cut from the London face set (DeBruine & Jones 2017, Face Research Lab London Set,
doi:10.6084/m9.figshare.5047666.v5, CC BY 4.0) around the face box YuNet finds at full resolution.
"""
import cv2
import numpy as np
import pytest
import skimage.data

from dfer_ros.bench.detector_bench import LONDON, rss_mb, tight_crop
from dfer_ros.perception.config import DETECTORS, ConfigError, PipelineConfig
from dfer_ros.perception.detection import (CenterFaceDetector, DetectorError, FaceDetector, YuNetDetector,
                                           create_detector)
from dfer_ros.ros.parameters import pipeline_parameter_specs


@pytest.fixture(scope="module")
def astronaut_bgr():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def centerface():
    return CenterFaceDetector(min_score=0.5, max_side=320)


@pytest.fixture(scope="module")
def london_faces():
    """Every 4th London still with its full-resolution face box (51 people/expressions)."""
    paths = sorted(LONDON.glob("*/*.jpg"))[::4]
    if not paths:
        pytest.skip(f"London face set not found under {LONDON}")
    reference = YuNetDetector(min_score=0.5, max_side=10_000)
    out = []
    for path in paths:
        image = cv2.imread(str(path))
        (face, *_) = reference.detect(image)
        out.append((image, face.box))
    return out


def test_centerface_finds_the_astronaut_with_landmarks_in_the_documented_order(centerface, astronaut_bgr):
    (d,) = centerface.detect(astronaut_bgr)
    x, y, w, h = d.box
    assert 0.8 < d.score <= 1.0
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 160 and 60 < w < 140
    lm = d.landmarks
    assert lm.shape == (5, 2)
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # subject's right eye/mouth on the image's left
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above nose above mouth
    assert np.all((lm[:, 0] > x) & (lm[:, 0] < x + w) & (lm[:, 1] > y) & (lm[:, 1] < y + h))


def test_centerface_agrees_with_yunet_and_maps_downscaled_boxes_back(centerface, astronaut_bgr):
    yunet = YuNetDetector(max_side=512).detect(astronaut_bgr)[0]
    big = cv2.resize(astronaut_bgr, (1024, 1024))
    scaled = centerface.detect(big)[0]
    np.testing.assert_allclose(scaled.landmarks / 2, yunet.landmarks, atol=10)
    cx = scaled.box[:2] / 2 + scaled.box[2:] / 4
    np.testing.assert_allclose(cx, yunet.box[:2] + yunet.box[2:] / 2, atol=12)


def test_no_face_in_blank_or_noise_frames(centerface):
    rng = np.random.default_rng(0)
    assert centerface.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert centerface.detect(np.full((48, 48, 3), 127, np.uint8)) == []
    assert centerface.detect(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) == []


@pytest.mark.parametrize("size, grey", [(48, True), (48, False), (100, False), (200, False), (400, False),
                                        (600, False), (100, True)])
def test_faces_filling_small_tight_crops_are_found(london_faces, size, grey):
    """The face fills the frame (no surroundings), from 48 px grey to 600 px colour: every one is found."""
    detector = create_detector("centerface", min_score=0.3, min_face_size=24)  # the pipeline's defaults
    missed = []
    for k, (image, box) in enumerate(london_faces):
        crop = tight_crop(image, box, size, grey)
        found = detector.detect(crop)
        if not found:
            missed.append(k)
            continue
        cx, cy = found[0].box[:2] + found[0].box[2:] / 2
        assert 0.25 * size < cx < 0.75 * size and 0.2 * size < cy < 0.8 * size  # on the face, in crop pixels
    assert missed == [], f"no face in {len(missed)} of {len(london_faces)} {size}px crops: {missed}"


def test_the_padded_retry_maps_boxes_back_to_frame_pixels(london_faces):
    image, box = london_faces[0]
    crop = tight_crop(image, box * np.float32([1, 1, 0.85, 0.85]) + np.float32([0.075, 0.075, 0, 0]) * box[[2, 3, 2, 3]],
                      64, grey=True)
    detector = create_detector("centerface", min_score=0.3, min_face_size=8)
    (retried,) = detector.detect_regions(crop, [detector._fill_retry_region(64, 64)])
    assert retried, "the canvas pass finds the face that fills a 64 px frame"
    x, y, w, h = retried[0].box
    assert -0.25 * 64 < x < 0.25 * 64 and -0.25 * 64 < y < 0.25 * 64 and 0.7 * 64 < w < 1.5 * 64
    lm = retried[0].landmarks
    assert np.all((lm > 0) & (lm < 64))


def test_rss_stays_flat_over_thousands_of_calls(astronaut_bgr):
    """No memory kept per call (yuface's YuNet keeps ~36 KiB: +100 MiB over 3,000 calls)."""
    detector = CenterFaceDetector(min_score=0.5, max_side=96)
    frame = cv2.resize(astronaut_bgr, (128, 128))
    blank = np.full_like(frame, 127)  # no face: also runs the padded retry
    for i in range(300):
        detector.detect(frame if i % 2 else blank)
    warm = rss_mb()
    for i in range(3000):
        detector.detect(frame if i % 2 else blank)
    assert rss_mb() - warm < 5.0  # YuNet would be about +105 MiB here


def test_detector_names_have_one_source():
    assert PipelineConfig().detection.detector == DETECTORS[0] == "centerface"
    spec = {s.name: s for s in pipeline_parameter_specs()}["detection.detector"]
    assert tuple(spec.choices) == DETECTORS and spec.default == "centerface"
    for name in DETECTORS:
        assert isinstance(create_detector(name), FaceDetector)
    with pytest.raises(DetectorError, match="centerface, haar"):
        create_detector("blazeface")
    with pytest.raises(ConfigError, match="'centerface', 'haar'"):
        PipelineConfig.from_dict({"detection": {"detector": "nope"}})


def test_yunet_is_not_selectable_because_it_leaks():
    """yuface keeps each call's result buffer (~36 KiB); a long-running node must not be able to pick it."""
    with pytest.raises(ConfigError, match="detection.detector"):
        PipelineConfig.from_dict({"detection": {"detector": "yunet"}})
    with pytest.raises(DetectorError, match="not selectable.*leaks"):
        create_detector("yunet")


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        CenterFaceDetector(model_path=str(tmp_path / "centerface.onnx"))
