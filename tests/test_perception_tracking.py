"""Tracker on synthetic detections, every scenario at 5 fps and at 30 fps (stamp-driven behaviour)."""
import numpy as np
import pytest

from dfer_ros.perception.config import TrackingConfig
from dfer_ros.perception.tracking import FaceTracker, iou_matrix
from dfer_ros.perception.types import Detection

FPS = [5, 30]


def det(x, y, size=60.0, score=0.9):
    return Detection(box=np.array([x, y, size, size], np.float32), score=score)


def run(tracker, fps, seconds, faces_at):
    """faces_at(t) -> list of (name, Detection); returns per frame {name: face_id or None}."""
    history = []
    for i in range(int(round(seconds * fps))):
        t = i / fps
        named = faces_at(t)
        tracker.update([d for _, d in named], t)
        frame = {}
        for name, d in named:
            match = [tr for tr in tracker.confirmed_tracks() if tr.detection is d]
            frame[name] = match[0].face_id if match else None
        history.append(frame)
    return history


@pytest.mark.parametrize("fps", FPS)
def test_two_faces_crossing_keep_their_ids(fps):
    tracker = FaceTracker(TrackingConfig())

    def faces(t):  # A moves right, B moves left, they cross at t = 1.5 s
        return [("A", det(100 + 100 * t, 100)), ("B", det(400 - 100 * t, 110))]

    history = run(tracker, fps, 3.0, faces)
    ids_a = {h["A"] for h in history[2:]}
    ids_b = {h["B"] for h in history[2:]}
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b, (ids_a, ids_b)
    assert None not in ids_a | ids_b


@pytest.mark.parametrize("fps", FPS)
def test_half_second_occlusion_keeps_the_id(fps):
    tracker = FaceTracker(TrackingConfig(lost_seconds=1.0))

    def faces(t):
        if 1.0 <= t < 1.5:
            return []
        return [("A", det(100 + 40 * t, 100))]  # slow drift keeps going while hidden

    history = run(tracker, fps, 2.5, faces)
    before = history[int(0.8 * fps)]["A"]
    after = history[-1]["A"]
    assert before is not None and before == after


@pytest.mark.parametrize("fps", FPS)
def test_leaving_longer_than_lost_seconds_gives_a_new_id(fps):
    tracker = FaceTracker(TrackingConfig(lost_seconds=1.0))

    def faces(t):
        return [] if 1.0 <= t < 2.6 else [("A", det(100, 100))]

    history = run(tracker, fps, 3.5, faces)
    before, after = history[int(0.8 * fps)]["A"], history[-1]["A"]
    assert before is not None and after == f"f{int(before[1:]) + 1}"
    # the first id ended and was reported once, while the face was away
    tracker2 = FaceTracker(TrackingConfig(lost_seconds=1.0))
    ended = []
    for i in range(int(3.5 * fps)):
        t = i / fps
        tracker2.update([d for _, d in faces(t)], t)
        ended += tracker2.ended_ids
    assert len(ended) == 1 and ended[0] not in (before, after)  # ids are process-wide: never issued twice


@pytest.mark.parametrize("fps", FPS)
def test_twenty_faces_at_once(fps):
    tracker = FaceTracker(TrackingConfig())
    rng = np.random.default_rng(0)
    grid = [(40 + 90 * (k % 5), 40 + 90 * (k // 5)) for k in range(20)]

    def faces(t):
        return [(k, det(x + rng.normal(0, 1.5), y + rng.normal(0, 1.5))) for k, (x, y) in enumerate(grid)]

    history = run(tracker, fps, 2.0, faces)
    last = history[-1]
    assert len(set(last.values())) == 20 and None not in last.values()
    for k in range(20):
        assert len({h[k] for h in history[2:]}) == 1  # no id switches


@pytest.mark.parametrize("fps", FPS)
def test_detection_every_third_frame_predicts_in_between(fps):
    tracker = FaceTracker(TrackingConfig())
    seen = set()
    for i in range(int(2.0 * fps)):
        t = i / fps
        d = det(100 + 50 * t, 100)
        tracks = tracker.update([d], t) if i % 3 == 0 else tracker.predict(t)
        seen |= {tr.face_id for tr in tracks}
        if tracks and i % 3 != 0:  # prediction follows the motion
            assert abs(float(tracks[0].box[0]) - float(d.box[0])) < 30
    assert len(seen) == 1


def test_low_score_detections_only_extend_tracks():
    tracker = FaceTracker(TrackingConfig(), high_score=0.6)
    assert tracker.update([det(100, 100, score=0.4)], 0.0) == []
    assert tracker.update([det(100, 100, score=0.4)], 0.1) == []  # never starts a track
    tracker.update([det(300, 100)], 0.2)
    tracker.update([det(300, 100)], 0.3)
    tracks = tracker.update([det(301, 100, score=0.4)], 0.4)  # second pass keeps it
    assert len(tracks) == 1 and tracks[0].face_id and tracks[0].detected_now


def test_stamp_going_backwards_resets_and_ids_are_not_reused():
    tracker = FaceTracker(TrackingConfig())
    for i in range(3):
        first = tracker.update([det(100, 100)], i * 0.1)
    old_id = first[0].face_id
    tracker.update([det(100, 100)], 0.0)
    assert tracker.ended_ids == [old_id]
    tracks = tracker.update([det(100, 100)], 0.1)
    assert [t.face_id for t in tracks] == [f"f{int(old_id[1:]) + 1}"]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def _confirmed_ids(tracker, start, faces=((100, 100),)):
    ids = set()
    for i in range(3):
        ids |= {t.face_id for t in tracker.update([det(x, y) for x, y in faces], start + i * 0.1)}
    return ids


def _id_number(face_id: str) -> int:
    """"f10" -> 10: ids compared as numbers ("f9" < "f10"), whatever other tests already issued."""
    return int(face_id[1:])


def test_ids_continue_across_new_trackers_and_resets():
    """A node rebuilds its tracker on cleanup/configure: the new one must not issue "f1" again."""
    seen = []
    for cycle in range(3):
        tracker = FaceTracker(TrackingConfig())
        seen += sorted(_confirmed_ids(tracker, 0.0, faces=((100, 100), (300, 100))), key=_id_number)
        tracker.reset()
        seen += sorted(_confirmed_ids(tracker, 0.0), key=_id_number)
    assert len(seen) == 9 and len(set(seen)) == 9, seen
    numbers = [_id_number(s) for s in seen]
    assert numbers == sorted(numbers)


def test_ids_are_unique_across_threads():
    import threading

    from dfer_ros.perception.tracking import next_face_id

    out = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def work(k):
        start.wait()
        out[k] += [next_face_id() for _ in range(2000)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in out for i in ids]
    assert len(every) == 16000 and len(set(every)) == 16000


def test_matching_is_the_hungarian_optimum_and_never_imports_scipy():
    """Importing scipy.optimize the first time two faces competed stalled one frame by 0.35-1 s and stepped a
    soak's memory up by 11.7 MB (perception/assignment.py); the tracker now matches without it."""
    import subprocess
    import sys

    from scipy.optimize import linear_sum_assignment

    from dfer_ros.perception import tracking

    rng = np.random.default_rng(0)
    for _ in range(200):  # faces apart (each detection near one track) and faces competing for detections
        n = int(rng.integers(1, 6))
        tracks = [tracking.Track(key=k, kf=tracking.KalmanBoxFilter(np.array([k * 60.0, 0, 40, 40])), first_stamp=0.0,
                                 last_stamp=0.0, last_detection_stamp=0.0,
                                 box=np.array([k * 60.0, 0, 40, 40], np.float32),
                                 detected_box=np.array([k * 60.0, 0, 40, 40], np.float32)) for k in range(n)]
        spread = 60.0 if rng.random() < 0.5 else 15.0
        dets = [Detection(box=np.array([k * spread + rng.normal(0, 3), rng.normal(0, 3), 40, 40], np.float32), score=0.9)
                for k in range(int(rng.integers(1, 6)))]
        pairs, _, _ = tracking._match(tracks, dets, 0.3, 0.0)
        score = tracking.association_scores(tracks, dets, 0.0, 0.3)
        rows, cols = linear_sum_assignment(-score)
        best = sum(score[r, c] for r, c in zip(rows, cols) if score[r, c] > 0)
        assert sum(score[r, c] for r, c in pairs) == pytest.approx(best)
    code = ("import sys, numpy as np; from dfer_ros.perception.pipeline import PerceptionPipeline; "
            "from dfer_ros.perception import tracking; from dfer_ros.perception.types import Detection; "
            "box = lambda x: np.array([x, 0, 40, 40], np.float32); "
            "tracks = [tracking.Track(key=k, kf=tracking.KalmanBoxFilter(box(k * 10.0).astype(float)), first_stamp=0.0, "
            "last_stamp=0.0, last_detection_stamp=0.0, box=box(k * 10.0), detected_box=box(k * 10.0)) for k in range(2)]; "
            "pairs, _, _ = tracking._match(tracks, [Detection(box=box(5.0), score=0.9), Detection(box=box(8.0), "
            "score=0.9)], 0.3, 0.0); "
            "print(len(pairs), any(m.startswith('scipy.optimize') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "2 False"
