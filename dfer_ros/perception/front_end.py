"""The face front-end: detect (every k-th frame) -> track -> pick the faces -> align them at a ``CropSpec``.

Shared by the runtime pipeline (``pipeline.PerceptionPipeline``) and the training crop extraction
(``training.preprocess``), so the crops a model is trained on are cut exactly as the node cuts them at run
time: same detector thresholds, same tracker, same largest-first cap, same 5-point alignment.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from dfer_ros.perception.native_threads import name_native_thread
from dfer_ros.perception.alignment import align_faces
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import FaceDetector, create_detector
from dfer_ros.perception.detection_plan import DetectionPlanner, Region, keep_for_region, whole_frame
from dfer_ros.perception.events import STAMP_TOLERANCE  # stamps summed from frame intervals
from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.perception.scene_change import SceneWatch
from dfer_ros.perception.tracking import FaceTracker, Track, iou_matrix
from dfer_ros.perception.types import Detection
from dfer_ros.typed_config import iter_settings

SCAN_KINDS = ("scan", "tile")  # the detector regions that look for new faces (detection_plan)

log = logging.getLogger(__name__)

# Faces the detector hands to the tracker: every face is tracked, however many are reported
# (``detection.max_faces``), so the reported ones can stay the same faces; a detector cut to the largest
# few would swap faces of similar size on every frame as their boxes jitter, each time as a new track.
MAX_TRACKED_FACES = 256
DUPLICATE_IOU = 0.5  # two re-detections overlapping this much are one face

# Settings read only when the pipeline is built (``read_only`` in their metadata): changing them needs a
# new pipeline (a node restart), so ``reconfigure`` leaves them alone.
BUILD_TIME_FIELDS = tuple(info.name for info in iter_settings(PipelineConfig) if info.setting.read_only)


def build_detector(config: PipelineConfig) -> FaceDetector:
    """The detector ``config.detection`` describes; tracks are fed with scores down to ``low_score_threshold``."""
    d = config.detection
    return create_detector(d.detector, min_score=d.low_score_threshold, min_face_size=d.min_face_size,
                           max_side=d.max_side, max_faces=MAX_TRACKED_FACES, threads=d.threads)


@dataclass
class FrontEndStep:
    """One frame through the front-end: the visible tracks (largest first, capped) and the stage times."""

    tracks: list[Track]
    detected: bool  # whether the detector ran on this frame
    ended_ids: list[str] = field(default_factory=list)  # confirmed face ids that ended on this frame
    timings_ms: dict[str, float] = field(default_factory=dict)  # "detect", "track"
    regions: dict[str, int] = field(default_factory=dict)  # detector regions of this frame by kind ("scan", "roi", ...)
    detector_calls: int = 0  # detector calls on the caller's thread (a whole-image scan; one batch for other regions)


class FaceFrontEnd:
    """Detector + tracker driven by stamps; ``step`` per frame, ``crops`` for the faces to encode."""

    def __init__(self, config: PipelineConfig, detector: Optional[FaceDetector] = None, background_scan: bool = False):
        """``background_scan``: while faces are tracked, run the scans for new faces on a thread of their own
        beside the rest of the frame (``detection_plan.DetectionPlanner``); their faces join the tracker on
        the next detector frame, which waits for the scan if it is not done, so results never depend on
        thread timing. Only for detectors that allow concurrent calls (``FaceDetector.concurrent``)."""
        self.config = config
        self.detector = detector or build_detector(config)
        self.tracker = FaceTracker(config.tracking, high_score=config.detection.score_threshold)
        d = config.detection
        # a detector that only has ``detect`` (any object with it will do) scans the whole frame every time
        self._plans = callable(getattr(self.detector, "detect_regions", None))
        background_scan = background_scan and self._plans and bool(getattr(self.detector, "concurrent", False))
        self.planner = DetectionPlanner(d.max_side, d.scan_every, d.fine_scan, background_scan)
        self._scan_pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="dfer-scan",
                                              initializer=name_native_thread, initargs=("dfer-scan",))
                           if background_scan else None)
        self._scan_job: Optional[tuple[Future, Region]] = None
        self._scene = SceneWatch()  # the image at the last scan, for idle_scan_period
        self._calls = 0  # detector calls on the caller's thread for the frame in ``step``
        self._frames_since_reset = 0
        self._reported_since: dict[str, float] = {}  # face id -> stamp it was first reported
        self._last_detector_stamp: Optional[float] = None
        self._warned_detector_gap = False

    def close(self) -> None:
        """Stop the scan thread (waits for a scan in flight); the front-end must not be used afterwards."""
        self._scan_job = None
        if self._scan_pool is not None:
            self._scan_pool.shutdown(wait=True)
            self._scan_pool = None

    def flush(self) -> None:
        """Wait for a background scan in flight (its faces join on the next ``step``)."""
        if self._scan_job is not None:
            self._scan_job[0].exception()

    def reset(self) -> None:
        """Forget all tracks (face ids keep counting up); the next frame runs the detector."""
        if self._scan_job is not None:  # a scan of the frames before the reset must not start tracks after it
            self._scan_job[0].exception()
            self._scan_job = None
        self.tracker.reset()
        self.planner.reset()
        self._scene.reset()
        self._frames_since_reset = 0
        self._reported_since.clear()
        self._last_detector_stamp = None

    def step(self, bgr: np.ndarray, stamp: float,
             may_coast: Optional[Callable[[dict[str, np.ndarray]], set]] = None) -> FrontEndStep:
        """Detect (on every ``detection.every``-th frame since the reset) and track at ``stamp``. Faces may coast
        (``detection.redetect_period``, see ``_coasting``): they are not re-detected on this frame and the tracker
        predicts their boxes; when all do and no scan needs the foreground, the detector does not run at all.
        ``may_coast``: given the predicted boxes (face id -> box), the ids of the faces the caller can do without
        detecting on this frame (None: none; a caller that uses every frame's detections, such as the training
        crops, never coasts)."""
        t = time.perf_counter()
        self._calls = 0
        regions: list[Region] = []
        run_detector = self._frames_since_reset % self.config.detection.every == 0
        coasting: set[int] = set()
        scan_wanted = self._scan_wanted(bgr, stamp) if run_detector else None
        if run_detector:
            coasting = self._coasting(stamp, may_coast)
            if coasting and len(coasting) == len(self.tracker.tracks):  # no face to look at now
                started = self._scan_beside(bgr, scan_wanted)
                run_detector = started is None
                regions += started or []
        self._frames_since_reset += 1
        detections: list[Detection] = []
        redetected: dict[int, Detection] = {}
        origins: list[Optional[Region]] = []
        if run_detector and not self._plans:
            coasting = set()
            detections = self.detector.detect(bgr)
            self._calls += 1
        elif run_detector:
            # a tentative face is confirmed by the pass that found it, not by a region re-detection
            confirm = self.tracker.tentative_origins()
            waiting = self.tracker.awaiting_origin()
            searched = [(key, box) for key, box in self.tracker.search_boxes(stamp) if key not in waiting]
            tracked = [(key, box) for key, box in searched if key not in coasting]
            # no face seen at the last run (only lost ones kept alive): nothing to re-detect, so the whole frame is
            # scanned now, as with no faces at all (a face in view for a few frames is not left to the scan cycle)
            seen = any(t.detection is not None for t in self.tracker.tracks)
            rescan = self._after_gap(stamp) or (bool(tracked) and not seen)
            if rescan:  # every face is looked for again
                coasting, tracked = set(), searched
            plan = self.planner.plan(bgr.shape[1], bgr.shape[0], tracked, confirm, rescan=rescan,
                                     coasting=len(coasting), scan_wanted=scan_wanted)
            regions = plan.regions
            detections, redetected, origins = self._detect(bgr, regions, dict(tracked))
            scanned, region = self._collect_scan()
            # scans that overlap (a confirming scan, a tile, last frame's background scan) find a face once each
            detections, origins = distinct_detections(detections + scanned, origins + [region] * len(scanned))
            if plan.background is not None:
                self._start_scan(bgr, plan.background)
                regions = regions + [plan.background]
        scans = [region for region in regions if region.kind in SCAN_KINDS]
        if scans and self.config.detection.idle_scan_period > 0:
            if scan_wanted is None:  # this frame's thumbnail was not made: nothing was due while faces were tracked
                self._scene.new_frame(bgr, [])
            for region in scans:
                self._scene.scanned(region, stamp)
        detect_ms = _ms(t)
        if run_detector:
            self._check_detector_gap(stamp)
        t = time.perf_counter()
        tracks = (self.tracker.update(detections, stamp, redetected, origins or None, coasting) if run_detector
                  else self.tracker.predict(stamp))
        for face_id in self.tracker.ended_ids:
            self._reported_since.pop(face_id, None)
        visible = self._reported([tr for tr in tracks if tr.visible], stamp)
        counts: dict[str, int] = {}
        for region in regions:
            counts[region.kind] = counts.get(region.kind, 0) + 1
        return FrontEndStep(visible, run_detector, list(self.tracker.ended_ids),
                            {"detect": detect_ms, "track": _ms(t)}, counts, self._calls)

    def _scan(self, bgr: np.ndarray, region: Region) -> list[Detection]:
        """A scan for new faces on the scan thread (the frame is only read)."""
        return self._detect(bgr, [region], {}, counted=False)[0]

    def _collect_scan(self) -> tuple[list[Detection], Optional[Region]]:
        """The background scan started on the previous detector frame (waiting for it if needed), and its region."""
        job, self._scan_job = self._scan_job, None
        if job is None:
            return [], None
        future, region = job
        try:
            return future.result(), region
        except Exception as exc:  # noqa: BLE001 - one failed scan must not stop the camera
            log.warning("background face scan failed (%s: %s); new faces are looked for on the next scan",
                        type(exc).__name__, exc)
            return [], region

    def _start_scan(self, bgr: np.ndarray, region: Region) -> None:
        """A scan for new faces on the scan thread; its faces join on the next detector frame."""
        self._scan_job = (self._scan_pool.submit(self._scan, bgr, region), region)

    def _coasting(self, stamp: float, may_coast: Optional[Callable[[dict[str, np.ndarray]], set]]) -> set[int]:
        """Keys of the tracks that skip re-detection on this frame (``detection.redetect_period``): confirmed faces
        found at the last run, detected less than the period ago, that the caller can do without now. New,
        unconfirmed and missed faces are always looked for."""
        period = self.config.detection.redetect_period
        if period <= 0 or may_coast is None or not self.tracker.tracks:
            return set()
        candidates = {t.face_id: t.key for t in self.tracker.tracks if t.confirmed and t.detection is not None
                      and stamp - t.last_detection_stamp < period - STAMP_TOLERANCE}
        if not candidates:
            return set()
        boxes = self.tracker.predicted_boxes(stamp)
        allowed = may_coast({fid: boxes[fid] for fid in candidates})
        return {key for fid, key in candidates.items() if fid in allowed}

    def _scan_wanted(self, bgr: np.ndarray, stamp: float) -> Optional[Callable[[Region], bool]]:
        """Which scan regions a scan due on this frame may take (``detection.idle_scan_period``, ``scene_change``):
        those whose image outside the tracked faces (all of it when there are none) changed since their last scan,
        while the last scan is less than the period ago; None (any, in turn) otherwise. Looked at only when the cycle
        has a scan due. With no face in view this is what spares an empty room a whole-image scan on every image
        (0.58 of a core at 640x480 and 30 Hz on the development machine): a face that walks in changes the image."""
        period = self.config.detection.idle_scan_period
        if (period <= 0 or not self._plans or not self.planner.scan_due(bool(self.tracker.tracks))
                or not self._scene.idle_for(stamp, period)):
            return None
        self._scene.new_frame(bgr, [box for _, box in self.tracker.search_boxes(stamp)])
        return self._scene.changed

    def _scan_beside(self, bgr: np.ndarray, wanted: Optional[Callable[[Region], bool]] = None
                     ) -> Optional[list[Region]]:
        """On a frame where every face coasts: the regions started (a scan for new faces due now, on the scan thread,
        or none); None when a due scan cannot start there, so the detector must run. ``wanted``: as in
        ``DetectionPlanner.plan``."""
        if not self.planner.scan_due(True):
            self.planner.skip()
            return []
        if self._scan_pool is None or self._scan_job is not None:
            return None
        region = self.planner.background_scan(bgr.shape[1], bgr.shape[0], wanted)
        if region is None:  # no region's image changed since its last scan: the scan waits
            return []
        self._start_scan(bgr, region)
        return [region]

    def _after_gap(self, stamp: float) -> bool:
        """Whether the previous detector frame is more than ``tracking.lost_seconds`` of stamp time ago: the tracked
        boxes are stale then (the faces may have moved anywhere), so the whole frame is scanned now."""
        last = self._last_detector_stamp
        return last is not None and stamp - last > self.config.tracking.lost_seconds

    def _detect(self, bgr: np.ndarray, regions: list[Region], tracked: dict[int, np.ndarray], counted: bool = True
                ) -> tuple[list[Detection], dict[int, Detection], list[Region]]:
        """Detections of this frame's planned regions: the scans' (the whole frame at ``max_side`` through
        the detector's own ``detect``, with its retry for frame-filling faces), and per re-detection region
        the one detection of its own face (track key -> detection); all other regions in one batched call.
        The third list names the region each scanned detection came from. ``counted``: the calls count towards this
        frame's ``FrontEndStep.detector_calls`` (not on the scan thread)."""
        h, w = bgr.shape[:2]
        coarse = whole_frame(w, h, self.detector.max_side)
        scanned: list[Detection] = []
        origins: list[Region] = []
        redetected: dict[int, Detection] = {}
        rest = [region for region in regions if region != coarse]
        if counted:
            self._calls += (len(rest) < len(regions)) + bool(rest)
        if len(rest) < len(regions):
            scanned.extend(self.detector.detect(bgr))
            origins += [coarse] * len(scanned)
        if rest:
            for region, found in zip(rest, self.detector.detect_regions(bgr, rest)):
                kept = keep_for_region(found, region, tracked.get(region.key))
                if region.kind == "roi":
                    # two regions of faces side by side can find the same face: the first one keeps it
                    taken = [d.box for d in redetected.values()]
                    if kept and (not taken or iou_matrix(kept[0].box[None], np.stack(taken)).max() < DUPLICATE_IOU):
                        redetected[region.key] = kept[0]
                else:
                    scanned.extend(kept)
                    origins += [region] * len(kept)
        return scanned, redetected, origins

    def _reported(self, visible: list[Track], stamp: float) -> list[Track]:
        """At most ``detection.max_faces`` of the visible faces, the same ones from frame to frame; largest first.

        Faces already reported keep their place (earliest reported first); free places go to the oldest
        tracks, then the largest faces. Choosing by size alone would swap faces of similar size on every
        frame as their boxes jitter.
        """
        inf = float("inf")
        visible.sort(key=lambda tr: (self._reported_since.get(tr.face_id, inf), tr.first_stamp,
                                     -float(tr.box[2] * tr.box[3]), tr.key))
        chosen = visible[: self.config.detection.max_faces]
        for tr in chosen:
            self._reported_since.setdefault(tr.face_id, stamp)
        chosen.sort(key=lambda tr: -float(tr.box[2] * tr.box[3]))
        return chosen

    def _check_detector_gap(self, stamp: float) -> None:
        """Warn (once) when detector runs are further apart than ``tracking.lost_seconds``.

        The tracker ends a face not detected for ``lost_seconds``; with a detector run only every k-th frame
        (or frames this far apart) every face then ends between two runs and comes back with a new id.
        """
        last, self._last_detector_stamp = self._last_detector_stamp, stamp
        lost = self.config.tracking.lost_seconds
        if last is None or stamp - last <= lost or self._warned_detector_gap:
            return
        self._warned_detector_gap = True
        log.warning("detector runs are %.2f s apart (detection.every = %d), longer than tracking.lost_seconds = %g s: "
                    "faces end between detector runs and come back with new ids; lower detection.every or raise "
                    "tracking.lost_seconds", stamp - last, self.config.detection.every, lost)

    def to_encode(self, tracks: list[Track]) -> list[Track]:
        """The tracks whose crop is encoded: detected on this frame (or predicted, with ``encode_predicted``)."""
        return [tr for tr in tracks if tr.detected_now or self.config.encode_predicted]

    @staticmethod
    def crops(bgr: np.ndarray, tracks: list[Track], spec: CropSpec) -> np.ndarray:
        """(N, S, S, 3) crops of ``tracks``: aligned on the detection's landmarks, else on the predicted box."""
        faces = [tr.detection if tr.detected_now else tr.box for tr in tracks]
        return align_faces(bgr, faces, spec)

    def reconfigure(self, new: PipelineConfig) -> list[str]:
        """Copy the run-time-changeable detection and tracking fields of ``new`` into the running
        front-end (between two frames); returns the changed dotted names. Build-time fields are skipped."""
        changed = copy_sections(self.config, new, ("detection", "tracking"))
        d = self.config.detection
        self.detector.min_score = float(d.low_score_threshold)
        self.detector.min_face_size = int(d.min_face_size)
        self.tracker.high_score = float(d.score_threshold)
        if self.planner.scan_every != d.scan_every or self.planner.fine_scan != d.fine_scan:
            self.planner.scan_every, self.planner.fine_scan = int(d.scan_every), bool(d.fine_scan)
            self.planner.reset()
        if changed:  # the last scans looked with other settings: a face they could not find may be findable now,
            self._scene.reset()  # so the next due scan looks at once instead of waiting for the image to change
        return changed


def distinct_detections(detections: list[Detection], origins: list) -> tuple[list[Detection], list]:
    """``detections`` without the later ones that overlap an earlier one by ``DUPLICATE_IOU`` (the same face found
    by two overlapping scans: the earlier, this frame's own, is kept), with their ``origins``."""
    kept: list[int] = []
    for i, det in enumerate(detections):
        if not kept or iou_matrix(det.box[None], np.stack([detections[j].box for j in kept])).max() < DUPLICATE_IOU:
            kept.append(i)
    return [detections[i] for i in kept], [origins[i] for i in kept]


def copy_sections(cfg: PipelineConfig, new: PipelineConfig, sections: tuple[str, ...]) -> list[str]:
    """Set ``cfg``'s fields of ``sections`` to ``new``'s in place (the stages hold references to the
    section objects, so they see the change); build-time fields are left alone."""
    changed = []
    for section in sections:
        old_sec, new_sec = getattr(cfg, section), getattr(new, section)
        for f in dataclasses.fields(old_sec):
            name = f"{section}.{f.name}"
            if name in BUILD_TIME_FIELDS:
                continue
            if getattr(old_sec, f.name) != getattr(new_sec, f.name):
                setattr(old_sec, f.name, getattr(new_sec, f.name))
                changed.append(name)
    return changed


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
