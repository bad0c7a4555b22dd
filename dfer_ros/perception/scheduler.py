"""Per-frame compute scheduler: which tracked faces get which model stage on this frame.

Why: detection and tracking are cheap and run for every face on every frame, but the model stages are
not, and their costs differ by about 10x (the default model's expression net ~1-2 ms per face, the
MediaPipe landmarker behind the action units ~12 ms). Running every stage on every face makes the frame
time grow linearly with the crowd. Instead, the model work started on one frame is capped by a time
budget, and each face's estimate is refreshed at a guaranteed minimum rate rather than on every frame.

How one frame is planned (``plan``):
  * each stage is a separate queue with its own cost estimate, freshness target (``period_seconds``), refresh
    floor (``max_age_seconds``) and rate cap (``min_frames_between``: the landmarker need not run on every
    frame of a face);
  * candidates are the (stage, face) pairs the rate cap allows that need work: new, overdue, changed (the
    face's view changed enough since the stage last saw it: ``FaceDemand.changed``) or due by the stage's
    freshness target. A still face is refreshed at its target rate and no more often, so the budget is a
    ceiling, not a target (``fill_budget`` offers every pair, as fresh as the budget allows). Refreshes are
    kept in step, since each frame a face is looked at costs a detector run: a stage with a longer period than
    another's is served on that stage's refreshes (``wanted``), and a face detected on this frame to share its
    run (``FaceDemand.early``) is served what falls due by the next frame. They are ordered by
      1. new: never served since the track appeared (a new face gets its first estimate at once),
      2. overdue: the face's estimate for that stage would be older than ``max_age_seconds`` by the
         next frame,
      3. changed,
      4. staleness: age relative to the stage's floor, weighted up for larger faces and, where known,
         for faces with attention on the robot;
  * pairs are taken greedily while the estimated cost fits the budget of the stage's lane (stages that
    run on a worker thread, in parallel with the caller's, form their own lane with its own budget).
    Overdue pairs are served even when the budget is spent, up to ``OVERDUE_BUDGET_FACTOR`` budgets (the floor
    wins over the budget, so an overloaded machine shows up as a lower frame rate, never as a frozen estimate;
    the cap keeps a crowd's slow frames from making every face overdue on every frame). A pair dearer than
    the whole budget (the landmarker under a small budget) is still served when nothing else was: the
    overrun is carried as debt and paid back by the next frames of that lane, so such work is spread
    over frames instead of piling up until the floor forces all of it at once, and the budget holds on
    average. The first pair of a new face is served even while a lane is in debt.
Costs per stage come from one of two cost models:
  * measured (``learn_costs=True``, the live node): learned online (``observe``: exponential average of the
    wall-clock ms per face), so the budget holds in real time on whatever CPU the robot has, busy or not;
  * nominal (``learn_costs=False``, every offline path): each stage is charged its declared cost per face
    (``StageSpec.initial_cost_ms``, the model's cost hint) and ``observe`` learns nothing, so the plan, and
    with it every estimate, depends only on the frames and their stamps, never on how busy the machine is.
With ``budget_ms=None`` (budget off) every candidate is served; a large budget therefore gives exactly the
same plan, hence the same estimates.

The scheduler is ROS-free and clock-free: times are the image stamps passed in, costs are what the
caller measured (or the nominal ones), so tests drive it with a fake clock and fake costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence


OVERDUE_BUDGET_FACTOR = 4.0  # overdue pairs are served beyond the budget up to this many budgets a frame (+1 pair)


def _us(seconds: float) -> int:
    """``seconds`` in whole microseconds (see ``_timing``)."""
    return round(seconds * 1e6)


def _timing(spec: "StageSpec", state: "_FaceState", stamp: float, frame_dt: float) -> tuple[float, bool, bool]:
    """(seconds since the stage last served the face, or since it was first seen; overdue: its refresh floor passes
    before the next frame; due: its freshness period has passed). Times are compared in whole microseconds: the same
    frames must give the same plan whether their stamps came as index / fps (a video) or as sec + nanosec (a bag),
    which differ by ~1e-17 s, and at 25 fps a 0.5 s floor or a 0.1 s period minus half a frame falls exactly on a
    frame. The period has half a frame of slack, so stamp jitter does not skip a frame."""
    since = stamp - (state.first_stamp if state.last_served is None else state.last_served)
    overdue = _us(since + frame_dt) >= _us(spec.max_age_seconds)
    due = spec.period_seconds <= 0 or _us(since) >= _us(spec.period_seconds - frame_dt / 2)
    return since, overdue, due


@dataclass(frozen=True)
class StageSpec:
    """One separately scheduled model stage (a queue)."""

    name: str
    initial_cost_ms: float  # cost per face assumed until the first measurement
    max_age_seconds: float  # refresh floor: no face's estimate gets older than this (0 = serve every frame)
    min_frames_between: int = 1  # rate cap: a face gets this stage at most every n-th of its frames
    lane: str = "main"  # stages in different lanes run on different threads: each lane has its own budget
    period_seconds: float = 0.0  # freshness target: refresh a face this often when nothing changes (0: every frame)

    def __post_init__(self):
        if self.initial_cost_ms < 0 or self.max_age_seconds < 0 or self.min_frames_between < 1 \
                or self.period_seconds < 0:
            raise ValueError(f"stage {self.name}: need initial_cost_ms >= 0, max_age_seconds >= 0, "
                             f"min_frames_between >= 1, period_seconds >= 0")


@dataclass(frozen=True)
class FaceDemand:
    """What the scheduler knows about one tracked face on this frame."""

    face_id: str
    area: float  # box area in pixels: larger faces carry more detail and usually matter more
    attention: Optional[float] = None  # in [0, 1] when something estimates it (e.g. gaze at the robot)
    changed: frozenset = frozenset()  # stages whose view of the face changed enough to refresh it now
    # detected on this frame only because a refresh falls due by the next frame (``wanted(ahead=True)``): its stages
    # due by then are served now, so faces share detector runs and model calls instead of each taking its own frame
    early: bool = False


@dataclass
class _FaceState:
    first_stamp: float
    frames: int = 0  # frames this face was planned on
    last_served: Optional[float] = None  # stamp of the last update of this stage
    last_served_frame: int = -1  # value of ``frames`` when last served
    times_served: int = 0  # updates of this stage so far (which view of the crop comes next: compute.alternate_views)


class StageCost:
    """Exponential average of measured milliseconds per face for one stage.

    A sample is limited to twice the current estimate before averaging: on a shared machine one call now
    and then stalls for tens of ms (preemption), and a single such sample must not make the scheduler
    believe a 0.5 ms stage costs 10 ms and starve the faces for the next seconds. A real, lasting change
    still gets through (the estimate can double per sample)."""

    def __init__(self, initial_ms: float, smoothing: float = 0.2):
        self.ms_per_face = float(initial_ms)
        self.smoothing = float(smoothing)
        self.samples = 0

    def observe(self, faces: int, elapsed_ms: float) -> None:
        if faces <= 0 or not math.isfinite(elapsed_ms) or elapsed_ms < 0:
            return
        per_face = elapsed_ms / faces
        if self.samples == 0:
            self.ms_per_face = per_face  # the first real measurement replaces the guess
        else:
            per_face = min(per_face, 2.0 * self.ms_per_face)
            self.ms_per_face += self.smoothing * (per_face - self.ms_per_face)
        self.samples += 1


@dataclass
class FramePlan:
    """The outcome of ``plan``: face ids per stage, and the estimated cost of serving them."""

    faces: dict[str, list[str]]
    estimated_ms: dict[str, float]  # per lane
    overdue: int  # pairs served beyond the budget because of the refresh floor

    def selected(self, stage: str) -> list[str]:
        return self.faces.get(stage, [])


class ComputeScheduler:
    """Chooses per frame which faces get which stage, within ``budget_ms`` (None = budget off)."""

    def __init__(self, stages: Sequence[StageSpec], budget_ms: Optional[float] = None,
                 cost_smoothing: float = 0.2, learn_costs: bool = True, fill_budget: bool = False):
        """``learn_costs`` False: the nominal cost model (see the module doc): deterministic plans.
        ``fill_budget``: offer every pair the rate caps allow (as fresh as the budget allows) instead of only the
        pairs that are new, due by their stage's period, changed or overdue."""
        self.fill_budget = bool(fill_budget)
        if not stages:
            raise ValueError("the scheduler needs at least one stage")
        if budget_ms is not None and not budget_ms > 0:
            raise ValueError(f"budget_ms must be > 0 or None (off), got {budget_ms}")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        self.stages = {s.name: s for s in stages}
        self.budget_ms = budget_ms
        self.learn_costs = bool(learn_costs)
        self.costs = {s.name: StageCost(s.initial_cost_ms, cost_smoothing) for s in stages}
        self._faces: dict[str, dict[str, _FaceState]] = {}
        self._last_stamp: Optional[float] = None
        self._frame_dt = 0.0  # last interval between planned frames: "by the next frame"
        self._debt: dict[str, float] = {}  # per lane: ms spent beyond the budget, paid back on the next frames

    # ---------------------------------------------------------------- bookkeeping
    def reset(self) -> None:
        """Forget all faces (stamps went backwards, pipeline reset); learned costs are kept."""
        self._faces.clear()
        self._last_stamp = None
        self._frame_dt = 0.0
        self._debt.clear()

    def forget(self, face_ids) -> None:
        """Drop ended tracks so memory stays bounded by the live faces."""
        for fid in face_ids:
            self._faces.pop(fid, None)

    def knows(self, face_id: str) -> bool:
        """Whether the face is live (planned before and not forgotten)."""
        return face_id in self._faces

    def observe(self, stage: str, faces: int, elapsed_ms: float) -> None:
        """Learn a stage's cost from one measured call over ``faces`` faces (nothing under nominal costs)."""
        if self.learn_costs:
            self.costs[stage].observe(faces, elapsed_ms)

    def served(self, stage: str, face_ids, stamp: float) -> None:
        """Record that ``stage`` updated these faces' estimates from the image stamped ``stamp``."""
        for fid in face_ids:
            state = self._faces.get(fid, {}).get(stage)
            if state is not None and (state.last_served is None or stamp >= state.last_served):
                state.last_served = float(stamp)
                state.last_served_frame = state.frames - 1
                state.times_served += 1

    def times_served(self, face_id: str, stage: str) -> int:
        """How often ``stage`` has updated this face since the scheduler first planned it (0 for an unknown face)."""
        state = self._faces.get(face_id, {}).get(stage)
        return 0 if state is None else state.times_served

    def age(self, face_id: str, stage: str, stamp: float) -> float:
        """Seconds since ``stage`` last updated this face (inf when it never did)."""
        state = self._faces.get(face_id, {}).get(stage)
        if state is None or state.last_served is None:
            return math.inf
        return max(0.0, float(stamp) - state.last_served)

    def wanted(self, stamp: float, face_ids, ahead: bool = False) -> set[str]:
        """The faces of ``face_ids`` a stage must see on the frame stamped ``stamp``: one never served by a stage, or
        a period or refresh floor falling due (as ``plan`` decides it). A face no stage wants may skip detection
        (``detection.redetect_period``), since only detected faces are encoded. ``ahead``: the faces a stage will
        want by the next frame (one frame interval later), which ``plan`` serves now when their ``FaceDemand`` says
        ``early``."""
        stamp = float(stamp)
        last = self._last_stamp
        frame_dt = stamp - last if last is not None and stamp > last else self._frame_dt
        at = stamp + frame_dt if ahead else stamp
        # a stage with a longer period than another's rides on that stage's refreshes: its period falling due does not
        # call for a detection of its own but is served on the face's next frame that does (at most the shorter
        # period late; its floor still calls). Else the landmarker's 0.5 s refreshes fall out of step with the
        # expression's 0.1 s ones and each adds a detector run of its own.
        shortest = min((s.period_seconds for s in self.stages.values() if s.period_seconds > 0), default=0.0)
        out = set()
        for fid in face_ids:
            states = self._faces.get(fid, {})
            for name, spec in self.stages.items():
                state = states.get(name)
                if state is None or state.last_served is None:
                    out.add(fid)
                    break
                _, overdue, due = _timing(spec, state, at, frame_dt)
                if overdue or (due and not spec.period_seconds > shortest > 0):
                    out.add(fid)
                    break
        return out

    def estimated_ms(self, stage: str) -> float:
        return self.costs[stage].ms_per_face

    # ---------------------------------------------------------------- planning
    def plan(self, stamp: float, faces: Sequence[FaceDemand], available: Optional[Sequence[str]] = None,
             lane_budget_ms: Optional[dict[str, float]] = None) -> FramePlan:
        """Face ids per stage to run on the frame stamped ``stamp``.

        ``available``: stages that may start work now (e.g. a stage whose worker is still busy with an
        earlier frame is left out); default all. ``lane_budget_ms``: a budget for this frame per lane instead
        of ``budget_ms`` (ignored when the budget is off). Faces of ``faces`` unknown so far start their
        clocks here.
        """
        stamp = float(stamp)
        if self._last_stamp is not None and stamp > self._last_stamp:
            self._frame_dt = stamp - self._last_stamp
        self._last_stamp = stamp
        stage_names = [n for n in self.stages if available is None or n in available]
        max_area = max((f.area for f in faces), default=1.0) or 1.0
        candidates = []  # (priority key, stage, face id)
        for order, face in enumerate(faces):
            states = self._faces.setdefault(face.face_id, {})
            for name in self.stages:
                state = states.get(name)
                if state is None:
                    state = states[name] = _FaceState(first_stamp=stamp)
                state.frames += 1
            for stage_index, name in enumerate(stage_names):
                spec, state = self.stages[name], states[name]
                new = state.last_served is None
                if not new and state.frames - 1 - state.last_served_frame < spec.min_frames_between:
                    continue  # rate cap: served too recently
                since, overdue, due = _timing(spec, state, stamp, self._frame_dt)
                if face.early and not due:  # detected now to share this frame's run: what falls due by the next
                    due = any(_timing(spec, state, stamp + self._frame_dt, self._frame_dt)[1:])
                changed = name in face.changed
                if not (new or overdue or changed or due or self.fill_budget):
                    continue  # fresh enough, and nothing changed: spend nothing on it
                staleness = (since + self._frame_dt) / spec.max_age_seconds if spec.max_age_seconds > 0 else 1.0
                weight = 1.0 + face.area / max_area + (face.attention or 0.0)
                key = (0 if new else 1 if overdue else 2 if changed else 3, -staleness * weight, stage_index, order)
                candidates.append((key, overdue, name, face.face_id))
        candidates.sort(key=lambda c: c[0])
        chosen: dict[str, list[str]] = {n: [] for n in stage_names}
        spent: dict[str, float] = {}  # per lane
        served: dict[str, int] = {}
        forced = 0
        budgets = {lane: (lane_budget_ms or {}).get(lane, self.budget_ms) for lane in
                   {s.lane for s in self.stages.values()}} if self.budget_ms is not None else {}
        dearest: dict[str, float] = {}
        for spec in self.stages.values():
            dearest[spec.lane] = max(dearest.get(spec.lane, 0.0), self.costs[spec.name].ms_per_face)
        for key, overdue, name, fid in candidates:
            lane = self.stages[name].lane
            cost = self.costs[name].ms_per_face
            debt = self._debt.get(lane, 0.0)
            fits = self.budget_ms is None or spent.get(lane, 0.0) + cost <= budgets[lane] - debt
            # the floor wins over the budget, up to OVERDUE_BUDGET_FACTOR x the budget: beyond that a crowd's slow
            # frames made every face overdue on every frame (the interval to the next frame grows with the work),
            # which kept the frames slow: 50 faces fell from 15 to 3 Hz and never came back
            # (plus the lane's dearest pair, so one expensive stage cannot lock the lane's cheap ones out)
            forced_ok = overdue and (self.budget_ms is None or spent.get(lane, 0.0) + cost
                                     <= OVERDUE_BUDGET_FACTOR * budgets[lane] + dearest.get(lane, 0.0))
            # one pair per lane that does not fit (paid back later); a new face's first pair even in debt
            progress = served.get(lane, 0) == 0 and (debt == 0.0 or key[0] == 0)
            if not (fits or forced_ok or progress):
                continue  # a cheaper pair further down may still fit
            chosen[name].append(fid)
            spent[lane] = spent.get(lane, 0.0) + cost
            served[lane] = served.get(lane, 0) + 1
            forced += not fits and overdue
        if self.budget_ms is not None:
            cap = max(c.ms_per_face for c in self.costs.values())
            for lane, budget in budgets.items():
                over = self._debt.get(lane, 0.0) + spent.get(lane, 0.0) - budget
                self._debt[lane] = min(max(0.0, over), cap)
        return FramePlan(faces=chosen, estimated_ms=spent, overdue=forced)
