"""Engagement of a face with the camera (robot): five levels from head pose and how long it has lasted.

The levels are those of REP-155's ``hri_msgs/EngagementLevel`` (UNKNOWN, DISENGAGED, ENGAGING, ENGAGED,
DISENGAGING; the same numbers), computed here without ROS from what ``quality.py`` already measures per image:
the head pose's off-axis angle, the angle between the direction the nose points and the camera ray
(``HeadPose.off_axis_degrees``; head pose, not eye gaze).

Two hystereses keep the level from flickering:

* angle: a face starts *looking* when its off-axis angle is at most ``engage_max_degrees`` and stops only when it
  exceeds ``disengage_min_degrees`` (larger), so a head wavering between the two keeps its state;
* time: looking must last ``engage_seconds`` (ENGAGING) before ENGAGED, and looking away ``disengage_seconds``
  (DISENGAGING) before DISENGAGED; looking back while DISENGAGING returns to ENGAGED at once, looking away while
  ENGAGING returns to DISENGAGED at once.

A face whose pose is unknown (no landmarks, e.g. the Haar detector) stays UNKNOWN until a pose arrives; an image
without a pose later keeps the current state (no evidence either way). Times are the image stamps, so the result
is the same live, from a bag and in tests that drive the stamps themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Hashable, Optional

from dfer_ros.perception.config import EngagementConfig


class Level(IntEnum):
    """The five levels, numbered as ``hri_msgs/EngagementLevel``'s constants."""

    UNKNOWN = 0
    DISENGAGED = 1
    ENGAGING = 2
    ENGAGED = 3
    DISENGAGING = 4


def off_axis_degrees(yaw: float, pitch: float) -> float:
    """Angle in degrees between the nose direction (yaw, pitch) and the camera ray (``HeadPose.off_axis_degrees``)."""
    c = math.cos(math.radians(yaw)) * math.cos(math.radians(pitch))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


@dataclass(frozen=True)
class EngagementState:
    """One face's engagement: its level, whether it looks now, and since when (stamp) the current run lasts."""

    level: Level = Level.UNKNOWN
    looking: bool = False
    since: float = 0.0  # stamp at which the current looking / not-looking run began


def is_looking(was_looking: bool, off_axis: float, config: EngagementConfig) -> bool:
    """Whether the face looks at the camera now, with the angle hysteresis (see the module docstring)."""
    if was_looking:
        return off_axis <= config.disengage_min_degrees
    return off_axis <= config.engage_max_degrees


def step(state: EngagementState, off_axis: Optional[float], stamp: float,
         config: EngagementConfig) -> EngagementState:
    """The state after one image at ``stamp`` whose face is ``off_axis`` degrees off the camera (None: unknown)."""
    if off_axis is None or not math.isfinite(off_axis):
        return state
    looking = is_looking(state.looking and state.level != Level.UNKNOWN, off_axis, config)
    if state.level == Level.UNKNOWN:
        return EngagementState(Level.ENGAGING if looking else Level.DISENGAGED, looking, stamp)
    if looking != state.looking:  # a new run begins
        state = replace(state, looking=looking, since=stamp)
    lasted = stamp - state.since
    level = state.level
    if level == Level.DISENGAGED and looking:
        level = Level.ENGAGING
    elif level == Level.ENGAGING and not looking:
        level = Level.DISENGAGED
    elif level == Level.ENGAGED and not looking:
        level = Level.DISENGAGING
    elif level == Level.DISENGAGING and looking:
        level = Level.ENGAGED
    if level == Level.ENGAGING and lasted >= config.engage_seconds:
        level = Level.ENGAGED
    elif level == Level.DISENGAGING and lasted >= config.disengage_seconds:
        level = Level.DISENGAGED
    return replace(state, level=level)


class Engagement:
    """The engagement state of every face (or person) by key; ``update`` once per image, ``end`` when it goes."""

    def __init__(self, config: Optional[EngagementConfig] = None):
        self.config = config or EngagementConfig()
        self._states: dict[Hashable, EngagementState] = {}

    def update(self, key: Hashable, stamp: float, off_axis: Optional[float]) -> Level:
        state = step(self._states.get(key, EngagementState()), off_axis, stamp, self.config)
        self._states[key] = state
        return state.level

    def level(self, key: Hashable) -> Level:
        state = self._states.get(key)
        return state.level if state is not None else Level.UNKNOWN

    def end(self, key: Hashable) -> None:
        self._states.pop(key, None)

    def keys(self) -> list:
        return list(self._states)
