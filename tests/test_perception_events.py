"""Expression episodes from synthetic probability sequences: exact stamps, minimum duration, hysteresis."""
from __future__ import annotations

import numpy as np
import pytest

from dfer_ros.perception.events import (END_GAP, END_RELAXED, END_TRACK, OFFSET, ONSET, EventConfig,
                                        ExpressionEvents)

LABELS = ("neutral", "happy", "surprise")
DT = 0.04  # 25 fps


def feed(events: ExpressionEvents, happy: list[float], face: str = "f1", t0: float = 100.0, dt: float = DT):
    """Feed p(happy) per frame (the rest to neutral); returns all events and the stamps used."""
    out, stamps = [], []
    for i, p in enumerate(happy):
        stamp = round(t0 + i * dt, 6)
        stamps.append(stamp)
        out += events.update(face, stamp, LABELS, np.array([1.0 - p, p, 0.0]))
    return out, stamps


def test_onset_apex_offset_stamps_are_exact():
    ev = ExpressionEvents(EventConfig(onset_threshold=0.5, offset_threshold=0.35, min_duration_seconds=0.4))
    happy = [0.1] * 5 + [0.55, 0.7, 0.8] + [0.9] + [0.85] * 11 + [0.4, 0.2] + [0.1] * 5
    events, stamps = feed(ev, happy)
    assert [e.kind for e in events] == [ONSET, OFFSET]
    onset, offset = events
    assert onset.label == offset.label == "happy" and onset.episode == offset.episode == 1
    assert onset.onset_stamp == stamps[5]  # first frame >= 0.5
    assert onset.stamp == stamps[15]  # first frame with stamp - onset >= 0.4 s (10 frames later)
    assert onset.duration == pytest.approx(0.4)
    assert offset.apex_stamp == stamps[8] and offset.peak_probability == pytest.approx(0.9)
    assert offset.offset_stamp == offset.stamp == stamps[21]  # 0.4 stays above 0.35; 0.2 ends it
    assert offset.duration == pytest.approx(stamps[21] - stamps[5])
    assert offset.end_reason == END_RELAXED
    episode = happy[5:21]
    assert offset.mean_intensity == pytest.approx(float(np.mean(episode)))
    assert onset.mean_intensity == pytest.approx(float(np.mean(happy[5:16])))


def test_nothing_shorter_than_the_minimum():
    ev = ExpressionEvents(EventConfig(min_duration_seconds=0.4))
    # 10 frames above threshold = 0.36 s from onset to the last frame above: never confirmed
    events, _ = feed(ev, [0.1] * 3 + [0.9] * 10 + [0.1] * 5)
    assert events == []
    # 11 frames: the 11th frame is exactly 0.4 s after the onset -> confirmed, then relaxed
    events, stamps = feed(ev, [0.1] * 3 + [0.9] * 11 + [0.1] * 5, t0=200.0)
    assert [e.kind for e in events] == [ONSET, OFFSET]
    assert all(e.duration >= 0.4 - 1e-9 for e in events)


def test_alternating_noise_gives_no_event():
    ev = ExpressionEvents(EventConfig(min_duration_seconds=0.2))
    rng = np.random.default_rng(0)
    noise = [0.8 if i % 2 == 0 else 0.1 for i in range(200)]  # flips every frame
    events, _ = feed(ev, noise)
    assert events == []
    flicker = list(rng.uniform(0.0, 0.7, 500))  # crosses both thresholds at random, never for long
    assert sum(p >= 0.5 for p in flicker) > 100
    events, _ = feed(ExpressionEvents(EventConfig()), flicker, face="f2")
    assert events == []


def test_hysteresis_keeps_one_episode_through_a_dip_above_the_offset_threshold():
    ev = ExpressionEvents(EventConfig(onset_threshold=0.5, offset_threshold=0.35, min_duration_seconds=0.2))
    happy = [0.9] * 10 + [0.4, 0.36, 0.45] + [0.9] * 10 + [0.1]
    events, stamps = feed(ev, happy)
    assert [e.kind for e in events] == [ONSET, OFFSET]
    assert events[1].onset_stamp == stamps[0] and events[1].offset_stamp == stamps[-1]


def test_track_end_closes_open_episodes_at_the_last_frame():
    ev = ExpressionEvents(EventConfig(min_duration_seconds=0.2))
    events, stamps = feed(ev, [0.9] * 20)
    assert [e.kind for e in events] == [ONSET]
    closed = ev.end_track("f1", now=stamps[-1] + 1.0)
    assert len(closed) == 1 and closed[0].kind == OFFSET and closed[0].end_reason == END_TRACK
    assert closed[0].offset_stamp == stamps[-1] and closed[0].stamp == stamps[-1] + 1.0
    assert closed[0].duration == pytest.approx(stamps[-1] - stamps[0])
    assert len(ev) == 0 and ev.end_track("f1") == []
    # an unconfirmed episode ends silently with its track
    feed(ev, [0.9] * 3, face="f3")
    assert ev.end_track("f3") == []


def test_gap_closes_episode_when_the_face_is_no_longer_fed():
    ev = ExpressionEvents(EventConfig(min_duration_seconds=0.2, max_gap_seconds=1.0))
    events, stamps = feed(ev, [0.9] * 10)
    assert [e.kind for e in events] == [ONSET]
    assert ev.expire(stamps[-1] + 1.0) == []  # exactly max_gap: still open
    closed = ev.expire(stamps[-1] + 1.04)
    assert [(e.kind, e.end_reason, e.offset_stamp) for e in closed] == [(OFFSET, END_GAP, stamps[-1])]
    assert ev.open_labels("f1") == []
    # a gap noticed by the next fed frame also closes it, and a new episode starts there
    ev2 = ExpressionEvents(EventConfig(min_duration_seconds=0.2, max_gap_seconds=1.0))
    feed(ev2, [0.9] * 10)
    later = ev2.update("f1", 105.0, LABELS, np.array([0.1, 0.9, 0.0]))
    assert [(e.kind, e.end_reason) for e in later] == [(OFFSET, END_GAP)]
    assert ev2.open_labels("f1") == []  # the new one is not confirmed yet


def test_episodes_are_numbered_over_confirmed_ones_only():
    ev = ExpressionEvents(EventConfig(min_duration_seconds=0.2))
    events, _ = feed(ev, [0.9] * 2 + [0.1] * 3 + [0.9] * 10 + [0.1] * 2 + [0.9] * 10 + [0.1])
    assert [(e.kind, e.episode) for e in events] == [(ONSET, 1), (OFFSET, 1), (ONSET, 2), (OFFSET, 2)]


def test_faces_and_labels_are_independent_and_neutral_is_excluded():
    ev = ExpressionEvents(EventConfig(min_duration_seconds=0.2))
    out = []
    for i in range(20):
        t = 10.0 + i * DT
        out += ev.update("f1", t, LABELS, np.array([0.1, 0.9, 0.0]))
        out += ev.update("f2", t, LABELS, np.array([0.9, 0.0, 0.1]))  # neutral only: no episode
    assert {(e.face_id, e.label) for e in out} == {("f1", "happy")}
    assert ev.open_labels("f1") == ["happy"] and ev.open_labels("f2") == []
    ends = ev.end_all(now=20.0)
    assert [(e.face_id, e.kind) for e in ends] == [("f1", OFFSET)]


def test_disabled_produces_nothing():
    ev = ExpressionEvents(EventConfig(enabled=False))
    assert feed(ev, [0.9] * 50)[0] == []
