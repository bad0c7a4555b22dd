"""ByteTrack-style multi-face tracker driven by image stamps.

* A constant-velocity Kalman filter per face on (cx, cy, w, h); prediction uses the real time step
  between stamps, so a 5 fps and a 30 fps stream of the same motion behave the same. Across a gap longer
  than ``lost_seconds`` the velocity is dropped (a face still after a 6.6 s gap was once predicted
  hundreds of pixels away, missed, and came back with a new id).
* Association by IoU, a maximum-weight matching (``perception.assignment``: the Hungarian method on the groups
  where two tracks compete for a detection or the other way round; elsewhere the candidate pairs are the optimum):
  high-score detections first against the confirmed tracks, then the low-score detections against the
  confirmed tracks still unmatched (ByteTrack's second pass: a face half hidden or blurred keeps its
  track instead of spawning a new one), then leftover high-score detections against tentative tracks.
* New faces start tentative and get an id ("f1", "f2", ...) once confirmed after ``min_hits``
  detections (a tentative face missed by one detector run is dropped); ids are never reused within a
  process: they come from one process-wide counter, so a tracker rebuilt after a reset, a lifecycle
  cleanup/configure or for another stream continues the sequence instead of issuing "f1" again. A
  track without detections for more than ``lost_seconds`` of stamp time ends. The detector may run
  only every k-th frame: ``predict(stamp)`` advances the tracks in between.
"""
from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import AbstractSet, Optional, Sequence

import numpy as np

from dfer_ros.perception.assignment import max_weight_matching
from dfer_ros.perception.config import TrackingConfig
from dfer_ros.perception.types import Detection

log = logging.getLogger(__name__)


class _FaceIdCounter:
    """Issues "f1", "f2", ... once each per process, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1

    def next_id(self) -> str:
        with self._lock:
            number = self._next
            self._next += 1
        return f"f{number}"


_FACE_IDS = _FaceIdCounter()


def next_face_id() -> str:
    """A face id never issued before in this process (shared by every tracker and pipeline)."""
    return _FACE_IDS.next_id()


class KalmanBoxFilter:
    """Constant-velocity Kalman filter on (cx, cy, w, h); noise scales with the face size, time in seconds."""

    POS_STD = 0.05  # measurement noise, fraction of the face height
    PROC_POS_STD = 0.1  # process noise on position, fraction of height per sqrt(second)
    PROC_VEL_STD = 1.0  # process noise on velocity, heights per second per sqrt(second)

    def __init__(self, box_xywh: np.ndarray):
        x, y, w, h = [float(v) for v in box_xywh]
        self.x = np.array([x + w / 2, y + h / 2, w, h, 0, 0, 0, 0], np.float64)
        s = max(h, 1.0)
        self.P = np.diag([(0.1 * s) ** 2] * 4 + [(1.0 * s) ** 2] * 4)
        self.H = np.hstack([np.eye(4), np.zeros((4, 4))])

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        F = np.eye(8)
        F[:4, 4:] = np.eye(4) * dt
        s = max(self.x[3], 1.0)
        q = np.array([(self.PROC_POS_STD * s) ** 2] * 4 + [(self.PROC_VEL_STD * s) ** 2] * 4) * dt
        self.x = F @ self.x
        self.x[2] = max(self.x[2], 2.0)
        self.x[3] = max(self.x[3], 2.0)
        self.P = F @ self.P @ F.T + np.diag(q)

    def hold(self) -> None:
        """Forget the velocity (keep its uncertainty): the face is predicted where it was last estimated."""
        self.x[4:] = 0.0

    def update(self, box_xywh: np.ndarray) -> None:
        x, y, w, h = [float(v) for v in box_xywh]
        z = np.array([x + w / 2, y + h / 2, w, h])
        s = max(h, 1.0)
        R = np.diag([(self.POS_STD * s) ** 2] * 4)
        S = self.H @ self.P @ self.H.T + R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - self.H @ self.x)
        self.P = (np.eye(8) - K @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return self.box_at(0.0)

    def box_at(self, dt: float) -> np.ndarray:
        """The (x, y, w, h) box the filter predicts ``dt`` seconds ahead (as ``predict`` would: sizes at least
        2 px), without changing its state."""
        cx, cy, w, h = self.x[:4]
        if dt > 0:
            cx, cy, w, h = self.x[:4] + self.x[4:] * dt
            w, h = max(w, 2.0), max(h, 2.0)
        return np.array([cx - w / 2, cy - h / 2, w, h], np.float32)


@dataclass
class Track:
    """One tracked face; ``face_id`` is empty until the track is confirmed."""

    key: int  # internal, unique also for tentative tracks
    kf: KalmanBoxFilter
    first_stamp: float
    last_stamp: float  # stamp of the last tracker step
    last_detection_stamp: float
    face_id: str = ""
    hits: int = 1
    detection: Optional[Detection] = None  # the detection matched at the last detector run, None if missed
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # current box (detected or predicted)
    detected_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box of the last detection
    detected_now: bool = True  # matched a detection in the current step
    scan_score: float = 0.0  # score of the last whole-frame detection (region re-detections score lower)
    origin: Optional[object] = None  # what found a tentative face (the detector's region): the pass that confirms it

    @property
    def confirmed(self) -> bool:
        return bool(self.face_id)

    @property
    def visible(self) -> bool:
        """Matched at the most recent detector run (report it); invisible tracks are only kept alive."""
        return self.detection is not None


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box in a (N, 4) and b (M, 4), boxes as x, y, w, h."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a = np.asarray(a, np.float64)[:, None, :]
    b = np.asarray(b, np.float64)[None, :, :]
    x1 = np.maximum(a[..., 0], b[..., 0])
    y1 = np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y2 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / np.maximum(union, 1e-9)


def _centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Centre distance between every box in a (N, 4) and b (M, 4), in units of the larger face height."""
    ca = a[:, None, :2] + a[:, None, 2:] / 2
    cb = b[None, :, :2] + b[None, :, 2:] / 2
    scale = np.maximum(a[:, None, 3], b[None, :, 3])
    return np.linalg.norm(ca - cb, axis=-1) / np.maximum(scale, 1e-6)


def association_scores(tracks: Sequence[Track], dets: Sequence[Detection], stamp: float,
                       threshold: float, by_distance: bool = True) -> np.ndarray:
    """How well each detection fits each track: > 1 by overlap, (0, 1] by distance, 0 not at all.

    Overlap is the better IoU of the detection with the track's predicted box and with its last detected
    box: after a long interval a constant-velocity prediction from a few jittery detections can overshoot
    a face that barely moved, and the last detection still overlaps it. Without overlap, a detection
    whose centre lies within ``DIST_GATE + DIST_GATE_PER_SECOND x (time since the track's last
    detection)`` face heights of either box, with a similar size, can still match (nearer is better), so
    a face that moved during a long gap is not taken for a new one; the gate stays below the spacing of
    faces side by side (about one face height), so it never reaches a neighbour's face. ``by_distance``
    False keeps overlap only (ByteTrack's low-score pass, where a weak detection must clearly overlap).
    """
    pred = np.stack([t.box for t in tracks]).astype(np.float64)
    last = np.stack([t.detected_box for t in tracks]).astype(np.float64)
    boxes = np.stack([d.box for d in dets]).astype(np.float64)
    iou = np.maximum(iou_matrix(pred, boxes), iou_matrix(last, boxes))
    if not by_distance:
        return np.where(iou >= threshold, 1.0 + iou, 0.0)
    dist = np.minimum(_centre_distance(pred, boxes), _centre_distance(last, boxes))
    since = np.array([max(0.0, stamp - t.last_detection_stamp) for t in tracks])
    gate = np.minimum(DIST_GATE + DIST_GATE_PER_SECOND * since, DIST_GATE_MAX)[:, None]
    ratio = last[:, None, 3] / np.maximum(boxes[None, :, 3], 1e-6)
    similar_size = (ratio > 1 / MAX_SIZE_RATIO) & (ratio < MAX_SIZE_RATIO)
    by_distance = np.where(similar_size & (dist <= gate), 1.0 - 0.99 * dist / gate, 0.0)
    return np.where(iou >= threshold, 1.0 + iou, by_distance)


DIST_GATE = 0.5  # face heights a detection may be from a track's box without overlap ...
DIST_GATE_PER_SECOND = 0.5  # ... plus this per second since the track's last detection ...
DIST_GATE_MAX = 0.8  # ... but never this far (faces side by side are about one height apart)
MAX_SIZE_RATIO = 1.5  # a detection more than this much larger or smaller is not the same face


def _match(tracks: Sequence[Track], dets: Sequence[Detection], threshold: float, stamp: float,
           by_distance: bool = True):
    """Hungarian matching on ``association_scores``; returns (pairs, unmatched track idx, unmatched det idx)."""
    if not tracks or not dets:
        return [], list(range(len(tracks))), list(range(len(dets)))
    score = association_scores(tracks, dets, stamp, threshold, by_distance)
    rows, cols = max_weight_matching(score)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if score[r, c] > 0]
    mt = {r for r, _ in pairs}
    md = {c for _, c in pairs}
    return pairs, [i for i in range(len(tracks)) if i not in mt], [j for j in range(len(dets)) if j not in md]


class FaceTracker:
    """Multi-face tracker; call ``update`` on frames with detections and ``predict`` on the others."""

    def __init__(self, config: Optional[TrackingConfig] = None, high_score: float = 0.6):
        self.config = config or TrackingConfig()
        self.high_score = float(high_score)
        self._keys = itertools.count(1)
        self.tracks: list[Track] = []
        self.ended_ids: list[str] = []  # confirmed ids that ended in the last step (free their buffers)
        self._stamp: Optional[float] = None

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up: an id is never reused)."""
        self.ended_ids = [t.face_id for t in self.tracks if t.confirmed]
        self.tracks = []
        self._stamp = None

    def _advance(self, stamp: float) -> None:
        self.ended_ids = []
        if self._stamp is not None and stamp < self._stamp:
            log.warning("tracker: stamp went backwards (%.3f -> %.3f); resetting all tracks", self._stamp, stamp)
            self.reset()
        dt = 0.0 if self._stamp is None else stamp - self._stamp
        self._stamp = stamp
        gap = dt > self.config.lost_seconds
        for t in self.tracks:
            if gap:
                t.kf.hold()  # a velocity from a few frames is not carried across a long gap
            t.kf.predict(dt)
            t.box = t.kf.box
            t.last_stamp = stamp
            t.detected_now = False

    def search_boxes(self, stamp: float) -> list[tuple[int, np.ndarray]]:
        """(key, box) of every track, tentative ones too: where the detector should look for it on the frame
        at ``stamp``, without changing any state. The box spans the track's prediction for ``stamp`` and its
        last detection, since after a long interval a prediction from jittery detections can overshoot a
        face that barely moved (as in ``association_scores``)."""
        dt = 0.0 if self._stamp is None else stamp - self._stamp
        if dt > self.config.lost_seconds:
            dt = 0.0  # after a long gap the face is looked for where it was (as ``_advance`` holds it)
        out = []
        for t in self.tracks:
            predicted, last = t.kf.box_at(dt), t.detected_box
            x1, y1 = np.minimum(predicted[:2], last[:2])
            x2, y2 = np.maximum(predicted[:2] + predicted[2:], last[:2] + last[2:])
            out.append((t.key, np.array([x1, y1, x2 - x1, y2 - y1], np.float32)))
        return out

    def tentative_origins(self) -> list:
        """The regions (``Track.origin``) that found the tentative faces, each once, in track order."""
        return list(dict.fromkeys(t.origin for t in self.tracks if not t.confirmed and t.origin is not None))

    def awaiting_origin(self) -> set[int]:
        """Keys of the tentative tracks that wait for the pass that found them (no region re-detection)."""
        return {t.key for t in self.tracks if not t.confirmed and t.origin is not None}

    def predict(self, stamp: float) -> list[Track]:
        """Advance all tracks to ``stamp`` without detections (detector skipped this frame)."""
        self._advance(stamp)
        self._expire(stamp)
        return self.confirmed_tracks()

    def update(self, detections: Sequence[Detection], stamp: float,
               redetected: Optional[dict[int, Detection]] = None,
               origins: Optional[Sequence[object]] = None, coasting: AbstractSet[int] = frozenset()) -> list[Track]:
        """Advance to ``stamp`` and associate this frame's detections; returns the confirmed tracks.

        ``origins``: per detection, what found it (the detector's region); a new tentative track keeps its
        detection's, so the caller can confirm it by the same pass (``tentative_origins``).

        ``redetected``: detections found in a region cut around one track (key -> detection), which belong
        to that track without matching; their score is not comparable with a whole-frame detection's (the
        face fills more of a region than of a scene, and CenterFace scores such faces lower), so the track
        reports the score of its last whole-frame detection.

        ``coasting``: keys of tracks the detector did not look for on this frame (``detection.redetect_period``): a
        scan's detection may still match one, but without one it is not missed; it stays visible with its last
        detection and a predicted box.
        """
        self._advance(stamp)
        cfg = self.config
        for t in self.tracks:
            if t.key not in coasting:  # a coasting face keeps its last detection: it was not looked for
                t.detection = None
        redetected = redetected or {}
        origin_of = {id(d): o for d, o in zip(detections, origins)} if origins is not None else {}
        owners = [t for t in self.tracks if redetected.get(t.key) is not None]
        if owners and detections:  # a scan that finds a re-detected face again only renews its score
            overlap = iou_matrix(np.stack([d.box for d in detections]), np.stack([redetected[t.key].box for t in owners]))
            kept = []
            for det, row in zip(detections, overlap):
                j = int(np.argmax(row))
                if row[j] >= cfg.iou_threshold:
                    owners[j].scan_score = float(det.score)
                else:
                    kept.append(det)
            detections = kept
        for t in owners:
            det = redetected[t.key]
            self._hit(t, Detection(box=det.box, score=max(t.scan_score, det.score), landmarks=det.landmarks), stamp)
        free = [t for t in self.tracks if redetected.get(t.key) is None]
        high = [d for d in detections if d.score >= self.high_score]
        low = [d for d in detections if d.score < self.high_score]
        confirmed = [t for t in free if t.confirmed]
        tentative = [t for t in free if not t.confirmed]

        pairs, un_t, un_d = _match(confirmed, high, cfg.iou_threshold, stamp)
        for r, c in pairs:
            self._hit(confirmed[r], high[c], stamp, scanned=True)
        rest = [confirmed[i] for i in un_t]
        high_left = [high[j] for j in un_d]
        pairs, _, _ = _match(rest, low, max(cfg.iou_threshold, 0.5), stamp, by_distance=False)  # stricter IoU
        for r, c in pairs:
            self._hit(rest[r], low[c], stamp, scanned=True)
        pairs, un_tent, un_d = _match(tentative, high_left, cfg.iou_threshold, stamp)
        for r, c in pairs:
            self._hit(tentative[r], high_left[c], stamp, scanned=True)
        missed = {tentative[i].key for i in un_tent}  # ByteTrack: a new face must be seen again at the next run
        self.tracks = [t for t in self.tracks if t.key not in missed]
        for j in un_d:
            det = high_left[j]
            t = Track(key=next(self._keys), kf=KalmanBoxFilter(det.box), first_stamp=stamp, last_stamp=stamp,
                      last_detection_stamp=stamp, detection=det, box=det.box.astype(np.float32),
                      detected_box=det.box.astype(np.float32), scan_score=float(det.score),
                      origin=origin_of.get(id(det)))
            self.tracks.append(t)
            if cfg.min_hits <= 1:
                t.face_id = next_face_id()
        self._expire(stamp)
        return self.confirmed_tracks()

    def _hit(self, track: Track, det: Detection, stamp: float, scanned: bool = False) -> None:
        if scanned:
            track.scan_score = float(det.score)
        track.kf.update(det.box)
        track.box = det.box.astype(np.float32)
        track.detected_box = track.box.copy()
        track.detection = det
        track.detected_now = True
        track.hits += 1
        track.last_detection_stamp = stamp
        if not track.confirmed and track.hits >= self.config.min_hits:
            track.face_id = next_face_id()

    def _expire(self, stamp: float) -> None:
        keep = []
        for t in self.tracks:
            if stamp - t.last_detection_stamp > self.config.lost_seconds:
                if t.confirmed:
                    self.ended_ids.append(t.face_id)
            else:
                keep.append(t)
        self.tracks = keep

    def predicted_boxes(self, stamp: float) -> dict[str, np.ndarray]:
        """face id -> the box each confirmed track's filter predicts for ``stamp`` (no state changes)."""
        dt = 0.0 if self._stamp is None else max(0.0, stamp - self._stamp)
        return {t.face_id: t.kf.box_at(dt) for t in self.tracks if t.confirmed}

    def confirmed_tracks(self) -> list[Track]:
        return [t for t in self.tracks if t.confirmed]
