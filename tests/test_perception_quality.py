"""Face quality: head pose from 5 landmarks (exact on projected model faces), sharpness, border, abstention."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from dfer_ros.perception.quality import (FACE_MODEL_3D, QualityConfig, abstain_reason, assess, attention, head_pose,
                                         pose_from_rotation, rotation_from_pose, sharpness, visible_fraction)

IOD_PX = 60.0


def project(yaw: float, pitch: float, roll: float, distance_iod: float = 0.0, center=(200.0, 150.0)) -> np.ndarray:
    """The model face rotated and projected: orthographic (distance 0) or pinhole at ``distance_iod`` IODs."""
    model = FACE_MODEL_3D - FACE_MODEL_3D.mean(0)  # the optical axis through the middle of the face
    pts = model @ rotation_from_pose(yaw, pitch, roll).T
    if distance_iod > 0:
        z = distance_iod + pts[:, 2]
        xy = pts[:, :2] * (distance_iod / z)[:, None]
    else:
        xy = pts[:, :2]
    return xy * IOD_PX + np.asarray(center)


def test_rotation_round_trip():
    for yaw, pitch, roll in itertools.product((-70, -30, 0, 15, 60), (-40, 0, 25), (-30, 0, 10)):
        pose = pose_from_rotation(rotation_from_pose(yaw, pitch, roll))
        assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=1e-9)


def test_head_pose_is_exact_on_orthographic_projections_of_the_model():
    for yaw, pitch, roll in itertools.product((-60, -25, 0, 10, 45), (-30, 0, 20), (-20, 0, 15)):
        pose = head_pose(project(yaw, pitch, roll))
        assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=1e-6), (yaw, pitch, roll)


def test_head_pose_under_perspective_at_arm_length_is_within_a_few_degrees():
    # a face 0.6 m away with a 63 mm eye distance: about 9.5 IODs
    for yaw, pitch in itertools.product((-40, 0, 30), (-20, 0, 20)):
        pose = head_pose(project(yaw, pitch, 0.0, distance_iod=9.5))
        assert abs(pose.yaw - yaw) < 4 and abs(pose.pitch - pitch) < 4 and abs(pose.roll) < 4


def test_signs_match_what_the_image_shows():
    frontal = project(0, 0, 0)
    nose_dx = lambda pts: pts[2, 0] - pts[[0, 1, 3, 4], 0].mean()  # noqa: E731
    nose_dy = lambda pts: pts[2, 1] - pts[[0, 1, 3, 4], 1].mean()  # noqa: E731
    assert nose_dx(project(30, 0, 0)) > nose_dx(frontal) + 5  # yaw > 0: nose towards the image right
    assert nose_dy(project(0, 20, 0)) < nose_dy(frontal) - 5  # pitch > 0: nose up (looking up)
    tilted = project(0, 0, 15)
    assert tilted[1, 1] > tilted[0, 1] + 5  # roll > 0: the image-right eye is lower


def test_unusable_landmarks_give_no_pose():
    assert head_pose(None) is None
    assert head_pose(np.zeros((5, 2))) is None
    assert head_pose(np.full((5, 2), np.nan)) is None
    assert head_pose(np.zeros((4, 2))) is None


def test_sharpness_falls_with_blur_and_is_zero_for_an_empty_region():
    import cv2

    rng = np.random.default_rng(1)
    frame = (rng.uniform(0, 255, (200, 200, 3))).astype(np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 1.0)
    box = np.array([50, 50, 100, 100], np.float32)
    sharp = sharpness(frame, box)
    blurred = sharpness(cv2.GaussianBlur(frame, (0, 0), 4.0), box)
    assert sharp > 5 * blurred > 0
    assert sharpness(frame, np.array([300, 300, 50, 50])) == 0.0


def test_visible_fraction():
    assert visible_fraction(np.array([10, 10, 50, 50]), 100, 100) == 1.0
    assert visible_fraction(np.array([-25, 10, 50, 50]), 100, 100) == pytest.approx(0.5)
    assert visible_fraction(np.array([80, 80, 40, 40]), 100, 100) == pytest.approx(0.25)


def test_abstain_reason_names_every_failed_check():
    cfg = QualityConfig()
    pose = head_pose(project(62, 0, 0))
    reason = abstain_reason(pose, size=10, sharp=1.0, score=0.2, visible=0.5, config=cfg)
    for words in ("head turned", "face too small", "blurred", "low detection score", "cut by the image border"):
        assert words in reason
    assert reason.count(";") == 4
    frontal = head_pose(project(0, 0, 0))
    assert abstain_reason(frontal, size=100, sharp=200.0, score=0.9, visible=1.0, config=cfg) == ""
    assert abstain_reason(head_pose(project(0, 50, 0)), 100, 200.0, 0.9, 1.0, cfg).startswith("head tilted")
    # no landmarks -> no pose -> no pose-based abstention; disabled -> never
    assert abstain_reason(None, 100, 200.0, 0.9, 1.0, cfg) == ""
    assert abstain_reason(pose, 10, 1.0, 0.2, 0.5, QualityConfig(enabled=False)) == ""


def test_attention_from_head_pose():
    cfg = QualityConfig(attention_max_yaw_degrees=20, attention_max_pitch_degrees=15)
    assert attention(head_pose(project(10, 5, 0)), cfg)[0] is True
    looking, score = attention(head_pose(project(25, 0, 0)), cfg)
    assert looking is False and score == pytest.approx(1 - 25 / 90)
    assert attention(head_pose(project(0, -20, 0)), cfg)[0] is False
    assert attention(None, cfg) == (False, 0.0)


def test_assess_combines_the_measures():
    import cv2

    rng = np.random.default_rng(2)
    frame = cv2.GaussianBlur(rng.uniform(0, 255, (300, 400, 3)).astype(np.uint8), (0, 0), 1.0)
    q = assess(frame, np.array([170, 110, 80, 90], np.float32), 0.9, project(0, 0, 0), QualityConfig())
    assert q.head_pose is not None and abs(q.head_pose.yaw) < 1e-6
    assert q.face_size == 80 and q.visible_fraction == 1.0 and not q.cut_by_border
    assert q.looking_at_camera and q.attention == pytest.approx(1.0)
    assert q.abstain_reason == "" and not q.abstained
    cut = assess(frame, np.array([360, 110, 80, 90], np.float32), 0.9, None, QualityConfig())
    assert cut.cut_by_border and cut.head_pose is None and "cut by the image border" in cut.abstain_reason
    # a detector box shrunk to the visible half: the landmarks still tell that half the face is outside
    half = project(0, 0, 0, center=(0.0, 150.0))
    shrunk = assess(frame, np.array([0, 100, 40, 90], np.float32), 0.9, half, QualityConfig())
    assert shrunk.visible_fraction == pytest.approx(0.5, abs=0.05) and shrunk.cut_by_border
