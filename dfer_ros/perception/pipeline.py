"""The perception pipeline: one image and its stamp in, one ``FrameResult`` out.

Stages per frame: normalise the image, detect faces (every k-th frame), track (every face, every frame),
let the compute scheduler (``scheduler``) pick which faces each encoder stage runs on this frame within
the per-frame budget, align those faces at the model's ``CropSpec`` once, run each stage on its faces in
ONE batch, write the stage's columns into each track's buffer, run the temporal head on all updated
windows in ONE call, aggregate over time. Every tracked face is reported on every frame, each with the
age of its estimate (seconds of stamp time since a model stage last updated it). Per-stage wall times
are reported in ms.

Behaviour outputs (``behaviour.py``, called at four marked points): face quality of the detected faces
that need it now (new, withheld, or picked by the scheduler for a model stage: every estimate comes with
the quality of the view it was computed from); faces below the quality thresholds are withheld (not offered to the scheduler, not
aggregated, published as ``unknown`` with confidence 0); the smoothed probabilities of the others feed
the expression events (onset/offset), which leave with ``FrameResult.events``.

Threads (bounded, documented in docs/perception.md): the caller's thread runs everything except the
encoder stages marked ``background`` (the default model's MediaPipe landmarker), which run on ONE worker
thread with at most one batch in flight: submitted first on frame n, it overlaps frame n's expression net,
head and aggregation and frame n+1's decoding, detection and tracking on the second core (native code on
both sides releases the GIL); frame n+1 merges it (waiting if needed) into the buffers at frame n's stamp
before planning. Results therefore do not depend on thread timing. ``compute.overlap: false`` runs every
stage on the caller's thread.

It is ROS-free and never raises out of ``process``: a bad frame gives a result with
``skipped_reason``; a failing or non-finite model output drops the affected faces' estimates for that
frame; each with a logged reason, so a long-running node survives one bad input.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from dfer_ros.perception.native_threads import name_native_thread
from dfer_ros.perception.model_interface import ALL_VIEWS, AffectModel, CropSpec, FaceDescriptor
from dfer_ros.perception.aggregation import Aggregators
from dfer_ros.perception.baseline import PersonBaselines
from dfer_ros.perception.behaviour import BehaviourOutputs
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import FaceDetector
from dfer_ros.perception.events import ONSET
from dfer_ros.perception.frames import FrameError, to_bgr8
from dfer_ros.perception.front_end import FaceFrontEnd, copy_sections
from dfer_ros.perception.quality import UNKNOWN_LABEL
from dfer_ros.perception.reid import Candidate, Reidentifier
from dfer_ros.perception.scheduler import ComputeScheduler, FaceDemand, StageSpec
from dfer_ros.perception.track_buffer import TrackBuffers
from dfer_ros.perception.tracking import FaceTracker, Track
from dfer_ros.perception.view_change import ViewChanges
from dfer_ros.perception.types import (CLOCK_JUMP_RESET, DUPLICATE_STAMP, LATE_FRAME_DROPPED, AffectEstimate,
                                       FaceResult, FrameResult)

log = logging.getLogger(__name__)

STAGES = ("detect", "track", "quality", "align", "model", "aggregate")
DEFAULT_FRAME_INTERVAL = 1.0 / 30.0  # seconds a repeated stamp stands for before any real interval is seen
MAX_FRAME_INTERVAL = 0.2  # a longer real interval is a pause, not the frame interval a repeated stamp stands for
WORKER_LANE = "worker"


@dataclass
class _BackgroundJob:
    """One background stage batch in flight on the worker thread."""

    future: Future
    stage: str
    face_ids: list[str]
    stamp: float
    generation: int  # the pipeline's reset count when submitted: results from before a reset are dropped


def estimate_problem(est: AffectEstimate) -> Optional[str]:
    """Why a model estimate cannot be used (non-finite numbers), or None when it is fine.

    NaN valence/arousal is the documented "not produced" value and is allowed; inf is not.
    """
    if est.expression_probs.size and not np.all(np.isfinite(est.expression_probs)):
        return "non-finite expression probabilities"
    if est.au_probs.size and not np.all(np.isfinite(est.au_probs)):
        return "non-finite action-unit probabilities"
    if est.compound_probs.size and not np.all(np.isfinite(est.compound_probs)):
        return "non-finite compound probabilities"
    if np.isinf(est.valence) or np.isinf(est.arousal):
        return "infinite valence/arousal"
    return None


def _empty_estimate() -> AffectEstimate:
    return AffectEstimate(expression_labels=(), expression_probs=np.zeros(0, np.float32))


def _clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    x, y, w, h = [float(v) for v in box]
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    return np.array([x1, y1, x2 - x1, y2 - y1], np.float32)


class PerceptionPipeline:
    """Detect -> track -> align -> encode (one batch) -> head (one call) -> aggregate."""

    def __init__(self, config: PipelineConfig, model: AffectModel, detector: Optional[FaceDetector] = None,
                 clock: Optional[Callable[[], float]] = None, descriptor: Optional[FaceDescriptor] = None,
                 descriptor_missing: str = ""):
        """``clock`` (seconds): None (the default, every offline path) charges each encoder stage its nominal
        cost, so the compute scheduler's plan and every result depend only on the frames and stamps, never on
        machine load or thread timing; a clock (the live node passes ``time.perf_counter``, tests a fake one)
        times the stages and the scheduler learns their real costs, so the budget holds in wall time.
        ``descriptor``: the face descriptor for person ids (``perception.reid``); None disables re-identification
        (``descriptor_missing`` says why, for diagnostics)."""
        self.config = config.validate()
        self.reid = Reidentifier(self.config.reid, descriptor, descriptor_missing)
        self.baselines = PersonBaselines(self.config.baseline)
        self._clock = clock or time.perf_counter
        self.model = model
        self.front_end = FaceFrontEnd(self.config, detector, background_scan=self.config.detection.background_scan)
        self.crop_spec = model.encoder.crop_spec
        self.encoder_stages = {st.name: st for st in model.encoder.stages}
        compute = self.config.compute
        self._overlap = compute.overlap and any(st.background for st in self.encoder_stages.values())
        self._worker = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="dfer-stage",
                                           initializer=name_native_thread, initargs=("dfer-stage",))
                        if self._overlap else None)
        self._job: Optional[_BackgroundJob] = None
        self._generation = 0
        _set_opencv_threads(compute.opencv_threads)
        self.scheduler = ComputeScheduler(self._stage_specs(), budget_ms=compute.budget_ms or None,
                                          learn_costs=clock is not None, fill_budget=compute.fill_budget)
        self.view_changes = ViewChanges(compute)
        self.reset()

    def _stage_specs(self) -> list[StageSpec]:
        """Scheduler queues from the encoder's stages, with the refresh floors of ``config.compute``."""
        c = self.config.compute
        specs = []
        for st in self.encoder_stages.values():
            # a stage feeding the expression takes its floor and period; one feeding only the action units, theirs
            max_age, period = ((c.expression_max_age, c.expression_period) if "expression" in st.outputs
                               else (c.action_units_max_age, c.action_units_period) if "action_units" in st.outputs
                               else (st.max_age_seconds, 0.0))
            lane = WORKER_LANE if self._overlap and st.background else "main"
            specs.append(StageSpec(st.name, st.cost_hint_ms, max_age, st.min_frames_between, lane,
                                   min(period, max_age)))
        return specs

    def _sync_compute_config(self) -> None:
        """Budget and floors may change at run time (node parameters): re-read them each frame."""
        c = self.config.compute
        self.scheduler.budget_ms = c.budget_ms or None
        self.scheduler.fill_budget = c.fill_budget
        for spec in self._stage_specs():
            if self.scheduler.stages[spec.name] != spec:
                self.scheduler.stages[spec.name] = spec

    def close(self) -> None:
        """Stop the worker thread (waits for a batch in flight); the pipeline must not be used afterwards."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
            self._job = None
        self.front_end.close()
        self.reid.close()

    def flush(self) -> None:
        """Wait for background work in flight (its results are merged on the next ``process``), e.g. before
        timing something else."""
        self.front_end.flush()
        if self._job is not None:
            self._job.future.exception()  # waits; errors are handled when the result is merged

    @property
    def detector(self) -> FaceDetector:
        return self.front_end.detector

    @property
    def tracker(self) -> FaceTracker:
        return self.front_end.tracker

    def reconfigure(self, new: PipelineConfig) -> list[str]:
        """Apply the run-time-changeable settings of ``new`` (validated) between two frames; returns the
        changed dotted names. Detector construction settings (``front_end.BUILD_TIME_FIELDS``) need a new
        pipeline; a new ``buffer.window_frames`` applies to faces that appear afterwards."""
        changed = self.front_end.reconfigure(new)
        changed += copy_sections(self.config, new, ("buffer", "aggregation", "compute", "quality", "events", "reid",
                                                    "baseline"))
        for name in ("max_frame_side", "encode_predicted", "stamp_reorder_tolerance"):
            if getattr(self.config, name) != getattr(new, name):
                setattr(self.config, name, getattr(new, name))
                changed.append(name)
        self.buffers.reconfigure(self.model.head.max_frames)
        return changed

    def reset(self) -> None:
        """Forget all tracks, buffers and smoothing state (face ids keep counting up)."""
        self.front_end.reset()
        self.buffers = TrackBuffers(self.config.buffer, max_frames=self.model.head.max_frames)
        self.aggregators = Aggregators(self.config.aggregation)
        # [behaviour] open expression episodes of the forgotten faces end; their offsets leave with the next frame
        previous = getattr(self, "behaviour", None)
        self._pending_events = previous.end_all(self._last_stamp) if previous is not None else []
        self.behaviour = BehaviourOutputs(self.config.quality, self.config.events, self.config.detection.detector)
        self.model.encoder.reset()
        if hasattr(self, "reid"):
            self.reid.reset()  # the tracks go; the gallery of people stays
        if hasattr(self, "scheduler"):
            self.scheduler.reset()
            self.view_changes.reset()
        self._generation += 1  # background results in flight belong to the old stream
        # last aggregated output per face id, reported on frames where the face was not re-estimated
        self._last_output: dict[str, tuple[AffectEstimate, str, float]] = {}
        self._frame_index = 0
        self._last_stamp: Optional[float] = None
        self._early: set[str] = set()  # faces detected on this frame to share its detector run (``_may_coast``)
        # Time of the per-face state (tracker, buffers, smoothing): the stamp plus the nominal frame intervals
        # given to repeated stamps, so a driver that repeats stamps never freezes them (zero time steps).
        self._state_offset = 0.0
        self._nominal_dt = DEFAULT_FRAME_INTERVAL

    # ------------------------------------------------------------------ public
    def end_of_stream(self) -> list:
        """Close every open expression episode (the end of a video or bag): their offset events."""
        self.reid.flush()
        return self.behaviour.end_all(self._last_stamp)

    def process(self, frame, stamp: float, encoding: str = "bgr8") -> FrameResult:
        """Run all stages on one frame. Never raises: problems become ``skipped_reason`` or log lines."""
        index = self._frame_index
        self._frame_index += 1
        try:
            return self._process(frame, float(stamp), encoding, index)
        except FrameError as exc:
            log.warning("frame %d skipped: %s", index, exc)
            return FrameResult(stamp=float(stamp) if _is_number(stamp) else float("nan"), frame_index=index,
                               faces=[], skipped_reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - the long-running pipeline must survive any one frame
            log.exception("frame %d skipped: unexpected error", index)
            return FrameResult(stamp=float(stamp) if _is_number(stamp) else float("nan"), frame_index=index,
                               faces=[], skipped_reason=f"internal error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ stages
    def _process(self, frame, stamp: float, encoding: str, index: int) -> FrameResult:
        timings = {k: 0.0 for k in STAGES}
        t_start = time.perf_counter()
        if not math.isfinite(stamp):
            raise FrameError(f"stamp is not finite ({stamp})")
        stamp_event = self._stamp_event(stamp, index)
        if stamp_event == LATE_FRAME_DROPPED:
            back = self._last_stamp - stamp
            return FrameResult(stamp=stamp, frame_index=index, faces=[], stamp_event=stamp_event,
                               skipped_reason=f"late frame dropped: stamp {stamp:.3f} is {back:.3f} s older than the "
                                              f"previous frame's {self._last_stamp:.3f} (within "
                                              f"stamp_reorder_tolerance {self.config.stamp_reorder_tolerance:g} s)")
        if stamp_event == CLOCK_JUMP_RESET:
            self.reset()
            self._frame_index = index + 1
        bgr = to_bgr8(frame, encoding, self.config.max_frame_side)
        height, width = bgr.shape[:2]
        state_time = self._state_time(stamp, stamp_event)
        self._last_stamp = stamp

        self.view_changes.new_frame()
        self._early = set()
        step = self.front_end.step(bgr, state_time, may_coast=lambda boxes: self._may_coast(bgr, boxes, state_time))
        t = time.perf_counter()
        for face_id in step.ended_ids:
            self.buffers.free(face_id)
            self.aggregators.free(face_id)
            self._last_output.pop(face_id, None)
        self.scheduler.forget(step.ended_ids)
        self.view_changes.forget(step.ended_ids)
        self.reid.end_tracks(step.ended_ids, stamp)
        for face_id in step.ended_ids:
            self.baselines.forget(face_id)  # face-keyed baselines (no person id) end with their track
        events, self._pending_events = self._pending_events, []
        events += self.behaviour.end_tracks(step.ended_ids, stamp)  # [behaviour] ended tracks close episodes
        self.buffers.check_time(state_time)
        visible = step.tracks
        timings["detect"] = step.timings_ms["detect"]
        timings["track"] = step.timings_ms["track"] + _ms(t)

        t = time.perf_counter()
        # [behaviour] quality where it decides something now: faces without one yet and withheld faces (to
        # see them turn back); the faces picked for a model stage get theirs below, once picked
        assessed = {tr.face_id for tr in visible if tr.detected_now and (
            self.behaviour.quality(tr.face_id) is None or self.behaviour.withheld(tr.face_id))}
        self.behaviour.assess(bgr, [tr for tr in visible if tr.face_id in assessed])
        timings["quality"] = _ms(t)
        t = time.perf_counter()
        self._reidentify(bgr, visible, stamp)
        timings["reid"] = _ms(t)
        # [behaviour] withheld faces are not encoded: nothing of them reaches buffers, smoothing or events
        encode = [tr for tr in self.front_end.to_encode(visible) if not self.behaviour.withheld(tr.face_id)]
        t_align = time.perf_counter()  # "align" = scheduling + alignment; "model" = stages + head; "worker_wait" apart
        self._sync_compute_config()
        t_wait = time.perf_counter()
        updated = self._collect_background(index)
        timings["worker_wait"] = _ms(t_wait)
        # the worker runs beside this thread on the second core, within the same per-frame budget: giving it
        # this thread's whole time per frame (as once) filled that core in crowds (50 faces: 14 landmarker
        # runs a frame where the 2 s floor needs 5), slowing this thread's expression net by a third
        changed = ({} if self.config.compute.fill_budget else
                   self.view_changes.changed(bgr, {tr.face_id: tr.box for tr in encode}, self.encoder_stages))
        for tr in encode:  # a face whose window is still filling is refreshed every frame until it is warmed up
            buf = self.buffers.get(tr.face_id) if tr.face_id in self.buffers else None
            if buf is not None and len(buf) < self.model.head.min_frames:
                changed[tr.face_id] = frozenset(self.encoder_stages)
        plan = self.scheduler.plan(state_time, [self._demand(tr, changed.get(tr.face_id)) for tr in encode])
        t = time.perf_counter()
        self._assess_picked(bgr, plan, encode, assessed)
        for name, ids in plan.faces.items():
            self.view_changes.served(name, ids)
        picked_quality_ms = _ms(t)
        timings["quality"] += picked_quality_ms
        # worker-lane stages first, so the worker starts while this thread aligns and runs the rest
        order = sorted((n for n, ids in plan.faces.items() if ids),
                       key=lambda n: self.scheduler.stages[n].lane != WORKER_LANE)
        track_of = {tr.face_id: tr for tr in encode}
        crops_by_spec: dict[CropSpec, tuple[dict[str, int], np.ndarray]] = {}
        align_ms = model_ms = 0.0
        for name in order:
            ids = plan.faces[name]
            t = time.perf_counter()
            stage_crops = self._stage_crops(bgr, name, ids, plan, track_of, crops_by_spec)
            align_ms += _ms(t)
            t = time.perf_counter()
            views = self._views(name, ids)
            if self.scheduler.stages[name].lane == WORKER_LANE:
                self._submit_background(name, ids, stage_crops, state_time, views)
            else:
                values, elapsed = self._run_stage(name, stage_crops, index, views)
                if values is not None:
                    self.scheduler.observe(name, len(ids), elapsed)
                    updated |= self._merge_stage(name, ids, values, state_time, index)
            model_ms += _ms(t)
        timings["align"] = _ms(t_align) - model_ms - timings["worker_wait"] - picked_quality_ms
        t = time.perf_counter()
        frame_estimates = self._run_head(sorted(updated & {tr.face_id for tr in visible}), index)
        timings["model"] = model_ms + _ms(t)

        t = time.perf_counter()
        results = [self._face_result(tr, frame_estimates.get(tr.face_id), stamp, state_time, width, height)
                   for tr in visible]
        for face in results:  # [behaviour] new smoothed estimates feed the expression events
            if face.frame_estimate is not None:
                events += self.behaviour.feed(face.face_id, stamp, face.estimate, face.person_id)
        self._refresh_after_onsets(events)
        events += self.behaviour.expire(stamp)
        timings["aggregate"] = _ms(t)
        timings["total"] = _ms(t_start)
        work = {"detector_calls": step.detector_calls, "regions": sum(step.regions.values()),
                **{f"{name}_faces": len(ids) for name, ids in plan.faces.items()}}
        return FrameResult(stamp=stamp, frame_index=index, faces=results, timings_ms=timings, stamp_event=stamp_event,
                           events=events, people_in_view=self.reid.people_in_view([tr.face_id for tr in visible]),
                           people_known=self.reid.people_known(), work=work)

    def _may_coast(self, bgr: np.ndarray, boxes: dict[str, np.ndarray], state_time: float) -> set[str]:
        """The faces of ``boxes`` (face id -> predicted box) that need no detection on this frame
        (``detection.redetect_period``). Only detected faces are encoded, so a face is detected when a model stage
        would run on it: still filling its window, a stage's period or refresh floor falling due, or a view change at
        its predicted box (the rules of ``view_change``: a moving face, a turning head, an expression onset).
        ``compute.fill_budget`` never coasts (every stage on every image, the behaviour before freshness targets)."""
        if self.config.compute.fill_budget:
            return set()
        need = self.model.head.min_frames
        quiet = {fid for fid in boxes if self.behaviour.withheld(fid)}  # not encoded: looked at by the period
        ready = {fid for fid in boxes if fid not in quiet and fid in self.buffers and len(self.buffers.get(fid)) >= need}
        coast = ready - self.scheduler.wanted(state_time, ready)
        coast -= set(self.view_changes.changed(bgr, {fid: boxes[fid] for fid in coast}, self.encoder_stages))
        # the detector runs on this frame anyway (a face here needs it, or a face the front end did not offer: new,
        # unconfirmed, missed or due by the redetect period): faces whose refresh falls due by the next frame join
        # this run instead of taking one of their own. Faces fall into step this way (4 faces at 30 Hz in
        # `dfer bench latency`: 0.36-0.45 detector calls an image instead of 0.79-0.87, each on all 4 faces) at the
        # cost of one refresh a frame early when a face falls out of step (a view change, a new face).
        if coast != ready or len(boxes) < len(self.front_end.tracker.tracks):
            self._early = coast & self.scheduler.wanted(state_time, coast, ahead=True)
            coast -= self._early
        return quiet | coast

    def _reidentify(self, bgr: np.ndarray, visible: list[Track], stamp: float) -> None:
        """Person ids (``perception.reid``): merge last frame's descriptors, start this frame's on the faces
        detected now whose quality is usable (a new track first, later only clearly better views)."""
        if not self.reid.active:
            return
        candidates = []
        for tr in visible:
            if not tr.detected_now or self.behaviour.withheld(tr.face_id):
                continue
            q = self.behaviour.quality(tr.face_id)
            yaw = abs(q.head_pose.yaw) if q is not None and q.head_pose is not None else None
            candidates.append(Candidate(tr.face_id, float(tr.box[2] * tr.box[3]), yaw))
        track_of = {tr.face_id: tr for tr in visible}
        spec = self.reid.descriptor.crop_spec
        self.reid.step(candidates, list(track_of), stamp,
                       lambda ids: self.front_end.crops(bgr, [track_of[fid] for fid in ids], spec))

    def _state_time(self, stamp: float, stamp_event: Optional[str]) -> float:
        """The time the per-face state sees for this frame; strictly increasing except after a reset.

        Tracking, buffers and smoothing are all driven by time steps; a repeated stamp would be a zero step
        (no smoothing weight, the buffer replacing its newest frame instead of moving on), so a driver that
        repeats stamps would freeze the output. A repeated stamp therefore advances this time by one nominal
        frame interval (the last real interval, at most ``MAX_FRAME_INTERVAL``); published results keep the
        source stamp.
        """
        if stamp_event == DUPLICATE_STAMP:
            self._state_offset += self._nominal_dt
        elif self._last_stamp is not None and stamp > self._last_stamp:
            self._nominal_dt = min(stamp - self._last_stamp, MAX_FRAME_INTERVAL)
        return stamp + self._state_offset

    def _stamp_event(self, stamp: float, index: int) -> Optional[str]:
        """Classify ``stamp`` against the previous frame's and log why (see ``FrameResult.stamp_event``).

        A duplicate stamp is processed like any frame (see ``_state_time``: repeated stamps never freeze the
        output); a small step back is a reordered frame, dropped without
        touching any state; a large one is a new timeline (bag loop, clock reset), so every time-keyed state
        would be wrong and is reset.
        """
        last = self._last_stamp
        if last is None or stamp > last:
            return None
        if stamp == last:
            log.info("frame %d: duplicate stamp %.3f (same as the previous frame): processed", index, stamp)
            return DUPLICATE_STAMP
        tolerance = self.config.stamp_reorder_tolerance
        if last - stamp <= tolerance:
            log.warning("frame %d: late frame dropped: stamp %.3f is %.3f s older than the previous frame's %.3f "
                        "(within stamp_reorder_tolerance %g s)", index, stamp, last - stamp, last, tolerance)
            return LATE_FRAME_DROPPED
        log.warning("frame %d: stamp went backwards by %.3f s (%.3f -> %.3f, more than stamp_reorder_tolerance %g s), "
                    "e.g. a bag loop or clock reset: resetting tracks, buffers and smoothing",
                    index, last - stamp, last, stamp, tolerance)
        return CLOCK_JUMP_RESET

    # ------------------------------------------------------------------ model stages
    def _assess_picked(self, bgr: np.ndarray, plan, encode: list[Track], assessed: set[str]) -> None:
        """Quality of the faces a stage was picked for (not yet assessed this frame), so every estimate comes
        with the quality of the view it was computed from; a face found below the thresholds now is taken
        out of the plan (withheld) before anything is cut or run. Faces not picked keep the quality of the
        view of their last estimate, as old as the estimate (``estimate_age``): assessing every face on
        every frame cost 6 ms a frame at 50 faces, for values nothing used."""
        if not self.config.quality.enabled:
            return
        picked = {fid for ids in plan.faces.values() for fid in ids} - assessed
        if not picked:
            return
        self.behaviour.assess(bgr, [tr for tr in encode if tr.face_id in picked])
        withheld = {fid for fid in picked if self.behaviour.withheld(fid)}
        if withheld:
            for name, ids in plan.faces.items():
                plan.faces[name] = [fid for fid in ids if fid not in withheld]

    def _refresh_after_onsets(self, events) -> None:
        """An expression onset refreshes that face's stages on the next frame, whatever their periods: the episode's
        rise is sampled from its start, and the action units (refreshed every 0.5 s otherwise) follow the face as it
        changes (cap12's open-mouth stretch: AU26 >= 0.3 on 48 frames as with the landmarker on every 3rd frame,
        40 without)."""
        for event in events:
            if event.kind == ONSET:
                for name in self.encoder_stages:
                    self.view_changes.force(event.face_id, name)

    def _demand(self, tr: Track, changed: Optional[frozenset] = None) -> FaceDemand:
        """What the scheduler weighs: the face's size, where face quality ran its attention (head pose towards the
        camera: a face turned to the robot is refreshed sooner than one looking away), and the stages whose view of
        the face changed enough to refresh it now (``view_change``)."""
        quality = self.behaviour.quality(tr.face_id)
        return FaceDemand(tr.face_id, float(tr.box[2] * tr.box[3]),
                          attention=None if quality is None else float(quality.attention),
                          changed=changed or frozenset(), early=tr.face_id in self._early)

    def _stage_crops(self, bgr: np.ndarray, name: str, ids: list[str], plan, track_of: dict[str, Track],
                     cache: dict) -> np.ndarray:
        """The crops of one stage's faces in that stage's framing; each framing is aligned once per frame for
        all faces of all stages that share it."""
        spec = self.encoder_stages[name].crop_spec or self.crop_spec
        if spec not in cache:
            sharing = [n for n, st in self.encoder_stages.items() if (st.crop_spec or self.crop_spec) == spec]
            union = list(dict.fromkeys(fid for n in sharing for fid in plan.faces.get(n, [])))
            cache[spec] = ({fid: i for i, fid in enumerate(union)},
                           self.front_end.crops(bgr, [track_of[fid] for fid in union], spec))
        rows, crops = cache[spec]
        return crops[[rows[fid] for fid in ids]]

    def _views(self, name: str, ids: list[str]) -> Optional[np.ndarray]:
        """Which view of each face's crop the stage runs now (``compute.alternate_views``); None: all, every time.

        A face's first update gets all views (a brief face or a still image is estimated from them all); after
        that each update runs the next view in turn, and the temporal head's mean over the face's frames
        averages them: the expression net's mirrored copy at half the cost."""
        count = self.encoder_stages[name].views
        if count <= 1 or not self.config.compute.alternate_views:
            return None
        served = [self.scheduler.times_served(fid, name) for fid in ids]
        return np.array([ALL_VIEWS if n == 0 else (n - 1) % count for n in served], np.int64)

    def _encode(self, name: str, crops: np.ndarray, views: Optional[np.ndarray]) -> np.ndarray:
        if views is None:
            return np.asarray(self.model.encoder.encode_stage(name, crops), np.float32)
        return np.asarray(self.model.encoder.encode_stage(name, crops, views=views), np.float32)

    def _run_stage(self, name: str, crops: np.ndarray, index: int,
                   views: Optional[np.ndarray] = None) -> tuple[Optional[np.ndarray], float]:
        """(values, ms) of one encoder stage on one batch; (None, ms) with a logged reason when it failed."""
        t = self._clock()
        try:
            values = self._encode(name, crops, views)
        except Exception as exc:  # noqa: BLE001
            log.warning("frame %d: encoder stage %s failed (%s: %s); no update from it this frame",
                        index, name, type(exc).__name__, exc)
            return None, (self._clock() - t) * 1000.0
        elapsed = (self._clock() - t) * 1000.0
        width = len(range(*self.encoder_stages[name].columns.indices(self.model.encoder.embedding_dim)))
        if values.shape != (len(crops), width):
            log.warning("frame %d: encoder stage %s returned shape %s for %d crops (expected (%d, %d)); dropped",
                        index, name, values.shape, len(crops), len(crops), width)
            return None, elapsed
        return values, elapsed

    def _merge_stage(self, name: str, ids: list[str], values: np.ndarray, stamp: float, index: int) -> set[str]:
        """Write a stage's columns into the buffers at ``stamp``; returns the face ids whose buffers changed."""
        columns = self.encoder_stages[name].columns
        dim = self.model.encoder.embedding_dim
        fill = self.model.encoder.missing_value
        done = []
        for fid, row in zip(ids, values):
            if not np.all(np.isfinite(row)):
                log.warning("frame %d: face %s: non-finite %s output dropped", index, fid, name)
                continue
            if self.buffers.merge(fid, stamp, columns, row, dim, fill) is None:
                done.append(fid)
        self.scheduler.served(name, done, stamp)
        return set(done)

    def _submit_background(self, name: str, ids: list[str], crops: np.ndarray, stamp: float,
                           views: Optional[np.ndarray] = None) -> None:
        def job():
            t = self._clock()
            values = self._encode(name, crops, views)
            return values, (self._clock() - t) * 1000.0

        self._job = _BackgroundJob(self._worker.submit(job), name, list(ids), stamp, self._generation)

    def _collect_background(self, index: int) -> set[str]:
        """Merge the background batch submitted on the previous frame, waiting for it if it is still running;
        face ids whose buffers changed.

        Waiting here (one frame of pipelining) rather than merging whenever a batch happens to be done keeps
        the results independent of thread timing: the same frames give the same estimates, run to run and
        in offline evaluation. The wait is short: the batch had the rest of the previous frame and this
        frame's decoding, detection and tracking to run, and its size is capped by the worker lane's budget.
        """
        job = self._job
        if job is None:
            return set()
        self._job = None
        job.future.exception()  # waits
        if job.generation != self._generation:
            return set()  # submitted before a reset: another stream's faces
        try:
            values, elapsed = job.future.result()
        except Exception as exc:  # noqa: BLE001
            log.warning("frame %d: background stage %s failed (%s: %s); no update from it",
                        index, job.stage, type(exc).__name__, exc)
            return set()
        width = len(range(*self.encoder_stages[job.stage].columns.indices(self.model.encoder.embedding_dim)))
        if values.shape != (len(job.face_ids), width):
            log.warning("frame %d: background stage %s returned shape %s for %d crops; dropped",
                        index, job.stage, values.shape, len(job.face_ids))
            return set()
        self.scheduler.observe(job.stage, len(job.face_ids), elapsed)
        live = [i for i, fid in enumerate(job.face_ids) if self.scheduler.knows(fid)]  # tracks that ended: dropped
        return self._merge_stage(job.stage, [job.face_ids[i] for i in live], values[live], job.stamp, index)

    def _run_head(self, face_ids: list[str], index: int) -> dict[str, AffectEstimate]:
        """One head call over the windows of the faces whose buffers changed; face id -> estimate."""
        if not face_ids:
            return {}
        windows = [self.buffers.get(fid).window() for fid in face_ids]
        try:
            estimates = self.model.head.predict(windows)
        except Exception as exc:  # noqa: BLE001
            log.warning("frame %d: temporal head failed (%s: %s); no estimates this frame",
                        index, type(exc).__name__, exc)
            return {}
        if len(estimates) != len(face_ids):
            log.warning("frame %d: head returned %d estimates for %d windows; no estimates this frame",
                        index, len(estimates), len(face_ids))
            return {}
        out = {}
        for fid, est in zip(face_ids, estimates):
            problem = estimate_problem(est)
            if problem:
                log.warning("frame %d: face %s: estimate dropped: %s", index, fid, problem)
                continue
            out[fid] = est
        return out

    def estimate_ages(self, face_id: str, stamp: float) -> tuple[float, float]:
        """(expression age, action-unit age) in seconds of stamp time (the per-face state's time, see
        ``_state_time``) since a model stage last updated this face's estimate; inf when never (or when the
        model has no such output)."""
        expr, aus = math.inf, math.inf
        for name, st in self.encoder_stages.items():
            age = self.scheduler.age(face_id, name, stamp)
            if "expression" in st.outputs:
                expr = min(expr, age)
            if "action_units" in st.outputs:
                aus = min(aus, age)
        return expr, aus

    def _face_result(self, tr: Track, frame_est: Optional[AffectEstimate], stamp: float, state_time: float,
                     width: int, height: int) -> FaceResult:
        withheld = self.behaviour.withheld(tr.face_id)
        if withheld:  # [behaviour] a late background result of a withheld face is not used either
            frame_est = None
        if frame_est is not None:
            estimate, label, confidence = self.aggregators.update(tr.face_id, frame_est, state_time)
            self._last_output[tr.face_id] = (estimate, label, confidence)
        else:
            estimate, label, confidence = self._last_output.get(tr.face_id, (_empty_estimate(), "", 0.0))
        if withheld:  # the last usable estimate stays visible, without a label or any confidence
            estimate = dataclasses.replace(estimate, va_confidence=0.0)
            label, confidence = UNKNOWN_LABEL, 0.0
        person_id = self.reid.person_of(tr.face_id)
        buf = self.buffers.get(tr.face_id) if tr.face_id in self.buffers else None
        frames = len(buf) if buf is not None else 0
        det = tr.detection if tr.detected_now else None
        ages = self.estimate_ages(tr.face_id, state_time)
        return FaceResult(
            face_id=tr.face_id, stamp=stamp, box=_clip_box(tr.box, width, height),
            detection_score=float(det.score) if det is not None else 0.0, detected=det is not None,
            landmarks=None if det is None or det.landmarks is None else det.landmarks.copy(),
            frame_estimate=frame_est, estimate=estimate, expression=label, expression_confidence=confidence,
            window_frames=frames, window_seconds=buf.seconds if buf is not None else 0.0,
            warmed_up=frames >= self.model.head.min_frames,
            estimate_age=ages[0], action_units_age=ages[1], quality=self.behaviour.quality(tr.face_id),
            abstain_reason=withheld, person_id=person_id,
            relative_expression_probs=self._relative(tr.face_id, person_id or tr.face_id, estimate, frame_est,
                                                     withheld, stamp))

    def forget_person(self, person_id: str) -> bool:
        """Drop one person's descriptors and expression baseline (privacy); True when they were known."""
        self.baselines.forget(person_id)
        return self.reid.forget(person_id)

    def forget_all_people(self) -> int:
        self.baselines.forget_all()
        return self.reid.forget_all()

    def _relative(self, face_id: str, key: str, estimate: AffectEstimate, frame_est, withheld: str,
                  stamp: float) -> Optional[np.ndarray]:
        """[baseline] feed a new usable estimate to the person's baseline; their relative expression."""
        if not self.config.baseline.enabled or not estimate.expression_labels:
            return None
        if key != face_id:
            self.baselines.adopt(face_id, key)
        if frame_est is not None and not withheld:
            self.baselines.update(key, stamp, estimate.expression_labels, estimate.expression_probs,
                                  float(estimate.arousal))
        return self.baselines.relative(key, estimate.expression_labels, estimate.expression_probs)


def _set_opencv_threads(count: int) -> None:
    """OpenCV's own thread pool (resize, warpAffine, ...) for the whole process: with the caller's thread and the
    worker thread already on the 2 cores, more OpenCV threads only oversubscribe them."""
    import cv2

    if cv2.getNumThreads() != count:
        cv2.setNumThreads(int(count))


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
