"""Tracking under what a loaded robot sees: uneven frame intervals, partial detections, crowds.

Deterministic: synthetic detections of still (few-pixel jitter) or slowly moving faces, a seeded
random generator, stamps driven by the test. Each detection is tagged with the person it belongs to,
so the tests count ids per person and swaps (one id seen on two people).
"""
import logging

import numpy as np
import pytest

from dfer_ros.perception.config import PipelineConfig, TrackingConfig
from dfer_ros.perception.tracking import FaceTracker
from dfer_ros.perception.types import Detection
from perception_fakes import fake_pipeline

UNEVEN = (0.05, 0.05, 0.9)  # what a loaded node hands the tracker
REGULAR = (0.05,)


def crowd(n, size=48.0, cols=5, spacing=1.6):
    """Top-left corners of n faces on a grid, ``spacing`` face sizes apart."""
    return [(20 + spacing * size * (k % cols), 20 + spacing * size * (k // cols)) for k in range(n)]


def run_schedule(n=25, frames=60, intervals=UNEVEN, jitter=3.0, miss=0.0, size=48.0, cols=5, speed=0.0, seed=0,
                 config=None):
    """Drive a tracker; returns (ids per person, swaps, absences longer than lost_seconds per person)."""
    rng = np.random.default_rng(seed)
    config = config or TrackingConfig()
    tracker = FaceTracker(config)
    grid = crowd(n, size, cols)
    ids = {k: set() for k in range(n)}
    owner = {}
    last_seen = {}
    long_absences = {k: 0 for k in range(n)}
    t = 0.0
    for i in range(frames):
        dets, people = [], []
        for k, (x, y) in enumerate(grid):
            if miss and rng.random() < miss:
                continue
            s = size + rng.normal(0, 1.0)
            box = [x + speed * t + rng.normal(0, jitter), y + rng.normal(0, jitter), s, s]
            dets.append(Detection(box=np.array(box, np.float32), score=0.9))
            people.append(k)
            if k in last_seen and t - last_seen[k] > config.lost_seconds:
                long_absences[k] += 1
            last_seen[k] = t
        for track in tracker.update(dets, t):
            if track.detected_now:
                person = people[next(j for j, d in enumerate(dets) if d is track.detection)]
                ids[person].add(track.face_id)
                owner.setdefault(track.face_id, set()).add(person)
        t += intervals[i % len(intervals)]
    swaps = sum(len(people) - 1 for people in owner.values())
    return ids, swaps, long_absences


@pytest.mark.parametrize("intervals", [UNEVEN, REGULAR], ids=["uneven", "regular"])
def test_25_still_faces_keep_25_ids(intervals):
    ids, swaps, _ = run_schedule(intervals=intervals)
    assert swaps == 0
    assert all(len(v) == 1 for v in ids.values()), {k: v for k, v in ids.items() if len(v) != 1}
    assert len(set().union(*ids.values())) == 25


def test_25_faces_with_more_jitter_and_slow_drift_under_uneven_intervals():
    ids, swaps, _ = run_schedule(jitter=5.0, speed=8.0, frames=90, seed=3)
    assert swaps == 0 and len(set().union(*ids.values())) == 25


def test_50_faces_keep_50_ids():
    ids, swaps, _ = run_schedule(n=50, cols=10, size=40.0, frames=60, seed=1)
    assert swaps == 0 and len(set().union(*ids.values())) == 50


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_detections_give_at_most_one_id_per_person(seed):
    """~20 % of the faces missing in each frame, regular intervals: never a second id, never a swap."""
    ids, swaps, _ = run_schedule(intervals=REGULAR, miss=0.2, frames=80, seed=seed)
    assert swaps == 0 and all(len(v) == 1 for v in ids.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_detections_under_uneven_intervals_renew_ids_only_after_lost_seconds(seed):
    """With 0.9 s gaps a face missed twice in a row is unseen > lost_seconds: only then a new id."""
    ids, swaps, long_absences = run_schedule(miss=0.2, frames=60, seed=seed)
    assert swaps == 0
    for person, person_ids in ids.items():
        assert len(person_ids) <= 1 + long_absences[person], (person, person_ids, long_absences[person])
    assert sum(len(v) for v in ids.values()) <= 25 + sum(long_absences.values())


def test_a_neighbours_detection_is_not_taken_when_a_face_is_missed():
    """Face A missed after a long gap must not grab face B's detection (B's own track keeps it)."""
    tracker = FaceTracker(TrackingConfig())
    a, b = np.array([100, 100, 48, 48], np.float32), np.array([160, 100, 48, 48], np.float32)
    for i, t in enumerate([0.0, 0.05, 0.1]):
        tracks = tracker.update([Detection(a + i, 0.9), Detection(b - i, 0.9)], t)
    before = {round(float(tr.box[0])): tr.face_id for tr in tracks}
    tracks = tracker.update([Detection(b + 2, 0.9)], 1.0)  # only B, after 0.9 s
    (seen,) = [tr for tr in tracks if tr.detected_now]
    assert seen.face_id == before[round(float(b[0]) - 2)]


def jittered_crowd_frames(n, frames, seed=0):
    rng = np.random.default_rng(seed)
    grid = crowd(n, 40.0, 5)
    for _ in range(frames):
        yield [Detection(np.array([x + rng.normal(0, 2), y + rng.normal(0, 2), s, s], np.float32), 0.9)
               for (x, y), s in zip(grid, 40.0 + rng.normal(0, 2.0, n))]


def test_reported_faces_stay_the_same_when_faces_exceed_max_faces():
    cfg = PipelineConfig()
    cfg.detection.max_faces = 8
    pipe, det = fake_pipeline(cfg)
    frame = np.full((480, 640, 3), 90, np.uint8)
    reported = []
    for i, dets in enumerate(jittered_crowd_frames(25, 40)):
        det.next = dets
        result = pipe.process(frame, i * 0.05 + (0.8 if i % 3 == 2 else 0.0) + (i // 3) * 0.8)
        reported.append(frozenset(f.face_id for f in result.faces))
    assert all(len(r) == 8 for r in reported[1:])
    assert len(set(reported[1:])) == 1, "the reported faces changed between frames"
    widths = [f.box[2] for f in result.faces]
    assert widths == sorted(widths, reverse=True)  # still reported largest first


def test_a_new_face_gets_a_free_place_and_old_ones_keep_theirs():
    cfg = PipelineConfig()
    cfg.detection.max_faces = 3
    pipe, det = fake_pipeline(cfg)
    frame = np.full((480, 640, 3), 90, np.uint8)
    faces = [Detection(np.array([20 + 80 * k, 20, 40, 40], np.float32), 0.9) for k in range(2)]
    for i in range(3):
        det.next = faces
        first = pipe.process(frame, i * 0.05)
    big = Detection(np.array([300, 200, 120, 120], np.float32), 0.9)
    small = Detection(np.array([20, 300, 30, 30], np.float32), 0.9)
    frame = frame.copy()
    frame[200:320, 300:420] = 200  # the newcomers are in the image (scans wait while it stays the same)
    frame[300:330, 20:50] = 200
    for i in range(3, 3 + 3 * cfg.detection.scan_every):  # whole-frame scans alternate with tiles at 640x480
        det.next = faces + [big, small]
        result = pipe.process(frame, i * 0.05)
    old = {f.face_id for f in first.faces}
    now = {f.face_id for f in result.faces}
    assert old < now and len(now) == 3
    assert result.faces[0].box[2] == pytest.approx(120)  # the big newcomer took the free place


def test_detector_runs_further_apart_than_lost_seconds_are_warned_about(caplog):
    cfg = PipelineConfig()
    cfg.detection.every = 100
    pipe, det = fake_pipeline(cfg)
    det.next = [Detection(np.array([50, 50, 40, 40], np.float32), 0.9)]
    frame = np.full((200, 200, 3), 90, np.uint8)
    with caplog.at_level(logging.WARNING, logger="dfer_ros.perception.front_end"):
        for i in range(201):
            pipe.process(frame, i / 30)
    warnings = [r for r in caplog.records if "lost_seconds" in r.getMessage()]
    assert len(warnings) == 1 and "detection.every = 100" in warnings[0].getMessage()
