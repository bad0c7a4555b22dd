"""How PerceptionPipeline treats stamps that repeat, step back a little or jump back (FrameResult.stamp_event)."""
import logging

import numpy as np
import pytest

from dfer_ros.perception.config import ConfigError, PipelineConfig
from dfer_ros.perception.types import CLOCK_JUMP_RESET, DUPLICATE_STAMP, LATE_FRAME_DROPPED
from dfer_ros.ros.parameters import pipeline_parameter_specs
from perception_fakes import face, fake_pipeline

DARK = np.full((200, 200, 3), 30, np.uint8)
BRIGHT = np.full((200, 200, 3), 230, np.uint8)


def test_repeated_stamps_keep_the_output_flowing(caplog):
    """40 frames with one stamp after the face changed: the published label must follow the face (every frame
    encoded: a uniformly brighter face is no view change, by design, so a period would only slow the test down)."""
    pipe, det = every_frame_pipeline()
    det.next = [face(80, 80)]
    for i in range(10):
        r = pipe.process(DARK, 1.0 + i * 0.04)
    assert r.faces[0].expression == "dark" and r.stamp_event is None
    face_id = r.faces[0].face_id
    stuck = 1.0 + 9 * 0.04
    with caplog.at_level(logging.INFO, logger="dfer_ros.perception.pipeline"):
        results = [pipe.process(BRIGHT, stuck) for _ in range(40)]
    assert all(r.stamp_event == DUPLICATE_STAMP and r.skipped_reason is None for r in results)
    assert all([f.face_id for f in r.faces] == [face_id] for r in results)
    assert all(r.stamp == stuck and r.faces[0].stamp == stuck for r in results)  # the source stamp is reported
    last = results[-1].faces[0]
    assert last.expression == "bright" and last.expression_confidence > 0.9
    assert last.window_frames == 6  # the window moved on to the new frames instead of replacing one slot
    assert "duplicate stamp" in caplog.text
    after = pipe.process(BRIGHT, stuck + 0.04)  # time resumes: normal frame, same face
    assert after.stamp_event is None and [f.face_id for f in after.faces] == [face_id]


def every_frame_pipeline():
    """The fake pipeline encoding every face on every frame (no freshness period): the window grows by one a frame."""
    cfg = PipelineConfig()
    cfg.compute.expression_period = 0.0
    return fake_pipeline(cfg)


def test_small_reorder_drops_the_late_frame_and_keeps_the_state(caplog):
    pipe, det = every_frame_pipeline()
    det.next = [face(80, 80)]
    for i in range(5):
        r = pipe.process(DARK, 2.0 + i * 0.04)
    face_id, frames = r.faces[0].face_id, r.faces[0].window_frames
    calls = det.calls
    with caplog.at_level(logging.WARNING, logger="dfer_ros.perception.pipeline"):
        late = pipe.process(DARK, 2.0 + 4 * 0.04 - 0.01)  # 10 ms older than the previous frame
    assert late.stamp_event == LATE_FRAME_DROPPED and late.faces == []
    assert "late frame dropped" in late.skipped_reason and "stamp_reorder_tolerance" in late.skipped_reason
    assert det.calls == calls  # not even detected
    assert "late frame dropped" in caplog.text
    nxt = pipe.process(DARK, 2.0 + 5 * 0.04)
    assert nxt.stamp_event is None and [f.face_id for f in nxt.faces] == [face_id]
    assert nxt.faces[0].window_frames == min(frames + 1, 6)  # nothing was reset


def test_jump_back_beyond_the_tolerance_resets_and_processes_the_frame(caplog):
    cfg = PipelineConfig(stamp_reorder_tolerance=0.1)
    pipe, det = fake_pipeline(cfg)
    det.next = [face(80, 80)]
    for i in range(5):
        r = pipe.process(DARK, 100.0 + i * 0.04)
    old_id = r.faces[0].face_id
    with caplog.at_level(logging.WARNING, logger="dfer_ros.perception.pipeline"):
        jump = pipe.process(DARK, 100.16 - 0.5)  # a bag loop
    assert jump.stamp_event == CLOCK_JUMP_RESET and jump.skipped_reason is None
    assert jump.faces == []  # the face is tentative again after the reset
    assert "backwards" in caplog.text and "resetting" in caplog.text
    again = pipe.process(DARK, 100.16 - 0.46)
    assert again.stamp_event is None
    assert [f.face_id for f in again.faces] == [f"f{int(old_id[1:]) + 1}"] and again.faces[0].window_frames == 1


def test_zero_tolerance_treats_any_step_back_as_a_clock_jump():
    pipe, det = fake_pipeline(PipelineConfig(stamp_reorder_tolerance=0.0))
    det.next = [face(80, 80)]
    pipe.process(DARK, 1.0)
    assert pipe.process(DARK, 0.999).stamp_event == CLOCK_JUMP_RESET


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf")])
def test_tolerance_is_validated(bad):
    with pytest.raises(ConfigError, match="stamp_reorder_tolerance"):
        PipelineConfig(stamp_reorder_tolerance=bad).validate()


def test_tolerance_is_a_node_parameter_with_its_range():
    spec = {s.name: s for s in pipeline_parameter_specs()}["stamp_reorder_tolerance"]
    assert spec.default == 0.1 and spec.low == 0.0 and "late" in spec.description
    assert PipelineConfig.from_flat({"stamp_reorder_tolerance": 0.25}).stamp_reorder_tolerance == 0.25


def test_a_rebuilt_pipeline_continues_the_face_ids():
    seen = []
    for _ in range(3):  # configure -> cleanup -> configure ...: a new pipeline each time
        pipe, det = fake_pipeline()
        det.next = [face(20, 20), face(120, 120)]
        for i in range(3):
            r = pipe.process(DARK, i * 0.04)
        seen += [f.face_id for f in r.faces]
        pipe.reset()
        r = [pipe.process(DARK, 1.0 + i * 0.04) for i in range(3)][-1]
        seen += [f.face_id for f in r.faces]
    assert len(seen) == 12 and len(set(seen)) == 12, seen
