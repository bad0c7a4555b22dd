"""The engagement state machine (perception.engagement) with driven stamps: levels, both hystereses, settings."""
from __future__ import annotations

import pytest

from dfer_ros.perception.config import ConfigError, EngagementConfig, PipelineConfig
from dfer_ros.perception.engagement import Engagement, EngagementState, Level, is_looking, off_axis_degrees, step

CONFIG = EngagementConfig(engage_max_degrees=20.0, disengage_min_degrees=30.0, engage_seconds=1.0,
                          disengage_seconds=0.5)


def run(angles, dt=0.1, config=CONFIG):
    """Levels after each image, ``angles`` degrees off axis at stamps 0, dt, 2 dt, ..."""
    state, out = EngagementState(), []
    for i, angle in enumerate(angles):
        state = step(state, angle, round(i * dt, 6), config)
        out.append(state.level)
    return out


def test_a_face_that_turns_to_the_camera_and_away_walks_the_five_levels():
    # 10 images facing (0 deg), then 10 turned (60 deg), 0.1 s apart
    levels = run([0.0] * 15 + [60.0] * 10)
    assert levels[0] == Level.ENGAGING  # first look
    assert levels[:10] == [Level.ENGAGING] * 10  # 0.0 .. 0.9 s: not yet engage_seconds
    assert levels[10:15] == [Level.ENGAGED] * 5  # 1.0 s of looking
    assert levels[15:20] == [Level.DISENGAGING] * 5  # turned at 1.5 s, for less than 0.5 s
    assert levels[20:] == [Level.DISENGAGED] * 5  # 2.0 s: 0.5 s turned away


def test_first_image_turned_away_is_disengaged_and_unknown_pose_keeps_the_state():
    assert run([60.0])[0] == Level.DISENGAGED
    assert step(EngagementState(), None, 0.0, CONFIG).level == Level.UNKNOWN
    engaged = EngagementState(Level.ENGAGED, True, 0.0)
    assert step(engaged, None, 5.0, CONFIG) == engaged
    assert step(engaged, float("nan"), 5.0, CONFIG) == engaged


def test_angle_hysteresis_a_head_between_the_thresholds_keeps_its_state():
    assert is_looking(False, 25.0, CONFIG) is False  # not yet looking: needs <= 20
    assert is_looking(True, 25.0, CONFIG) is True  # looking: stops only beyond 30
    assert is_looking(True, 31.0, CONFIG) is False
    # engaged, then wavering at 25 deg for 2 s: stays engaged
    assert run([0.0] * 11 + [25.0] * 20)[-1] == Level.ENGAGED
    # turned away, then wavering at 25 deg: stays disengaged
    assert set(run([60.0] * 3 + [25.0] * 20)) == {Level.DISENGAGED}


def test_time_hysteresis_short_glances_do_not_change_the_level():
    # engaged; a 0.3 s glance away (< disengage_seconds) goes DISENGAGING and back to ENGAGED at once
    levels = run([0.0] * 11 + [60.0] * 3 + [0.0] * 2)
    assert levels[10] == Level.ENGAGED and levels[11:14] == [Level.DISENGAGING] * 3
    assert levels[14:] == [Level.ENGAGED] * 2
    # a 0.5 s look (< engage_seconds) then away: ENGAGING back to DISENGAGED at once, never ENGAGED
    levels = run([60.0] + [0.0] * 5 + [60.0] * 2)
    assert Level.ENGAGED not in levels and levels[1:6] == [Level.ENGAGING] * 5 and levels[6:] == [Level.DISENGAGED] * 2


def test_durations_are_stamp_time_not_image_count():
    slow = run([0.0] * 3, dt=0.6)  # 0, 0.6, 1.2 s
    assert slow == [Level.ENGAGING, Level.ENGAGING, Level.ENGAGED]
    fast = run([0.0] * 30, dt=0.01)  # 0.29 s of images
    assert set(fast) == {Level.ENGAGING}


def test_zero_durations_skip_the_transitional_levels_after_the_first_image():
    config = EngagementConfig(engage_seconds=0.0, disengage_seconds=0.0)
    assert run([0.0, 0.0, 60.0, 60.0], config=config) == [Level.ENGAGING, Level.ENGAGED, Level.DISENGAGED,
                                                           Level.DISENGAGED]


def test_engagement_keeps_one_state_per_key_and_forgets_ended_ones():
    e = Engagement(CONFIG)
    for i in range(12):
        e.update("p1", i * 0.1, 0.0)
        e.update("p2", i * 0.1, 70.0)
    assert e.level("p1") == Level.ENGAGED and e.level("p2") == Level.DISENGAGED
    e.end("p1")
    assert e.keys() == ["p2"] and e.level("p1") == Level.UNKNOWN
    assert e.update("p1", 2.0, 0.0) == Level.ENGAGING  # back: a fresh start


def test_off_axis_angle_combines_yaw_and_pitch():
    assert off_axis_degrees(0.0, 0.0) == pytest.approx(0.0)
    assert off_axis_degrees(30.0, 0.0) == pytest.approx(30.0)
    assert off_axis_degrees(0.0, -25.0) == pytest.approx(25.0)
    assert off_axis_degrees(30.0, 30.0) == pytest.approx(41.41, abs=0.01)


def test_levels_match_the_hri_msgs_constants_and_settings_are_checked():
    assert [int(level) for level in Level] == [0, 1, 2, 3, 4]  # hri_msgs/EngagementLevel UNKNOWN .. DISENGAGING
    with pytest.raises(ConfigError, match="engagement.disengage_min_degrees"):
        PipelineConfig.from_dict({"engagement": {"engage_max_degrees": 40.0, "disengage_min_degrees": 30.0}})
    with pytest.raises(ConfigError, match="engage_seconds"):
        PipelineConfig.from_dict({"engagement": {"engage_seconds": -1.0}})
