"""Freshness targets drive the model work: a still face is refreshed at its stage's period and no more often, a face
whose view changes (moves, turns, changes expression) or that is new is refreshed at once, and ``fill_budget`` keeps
the old "as fresh as the budget allows" behaviour. Driven with scripted stamps and frames: nothing depends on time."""
from __future__ import annotations

import numpy as np
from perception_fakes import face, fake_pipeline

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.scheduler import ComputeScheduler, FaceDemand, StageSpec
from dfer_ros.perception.view_change import ViewChanges

DT = 1.0 / 30.0


def served_frames(scheduler, frames, demand=lambda i: FaceDemand("f1", 1600.0)):
    out = []
    for i in range(frames):
        plan = scheduler.plan(i * DT, [demand(i)])
        if plan.selected("expression"):
            scheduler.served("expression", ["f1"], i * DT)
            out.append(i)
    return out


def test_a_still_face_is_refreshed_at_its_period_not_on_every_frame():
    spec = StageSpec("expression", 1.0, max_age_seconds=0.5, period_seconds=0.1)
    assert served_frames(ComputeScheduler([spec], budget_ms=100.0), 30) == list(range(0, 30, 3))
    # the budget is a ceiling, not a target: fill_budget spends it (the behaviour before freshness targets)
    assert served_frames(ComputeScheduler([spec], budget_ms=100.0, fill_budget=True), 30) == list(range(30))


def test_a_changed_face_is_refreshed_at_once_whatever_its_period():
    spec = StageSpec("expression", 1.0, max_age_seconds=0.5, period_seconds=0.3)
    changed_on = {4, 5}
    served = served_frames(ComputeScheduler([spec], budget_ms=100.0), 20,
                           lambda i: FaceDemand("f1", 1600.0, changed=frozenset({"expression"} if i in changed_on
                                                                                 else set())))
    assert served == [0, 4, 5, 14]  # new, changed twice, then the period from the last refresh


def test_view_changes_ignore_jitter_and_exposure_but_see_motion_and_appearance():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (240, 320, 3), np.uint8)
    box = np.array([100, 60, 60, 80], np.float32)
    config = PipelineConfig().compute
    config.change_motion, config.change_appearance = 0.25, 8.0
    changes = ViewChanges(config)
    assert changes.changed(frame, {"f1": box}, ["expression"]) == {}  # never seen: the scheduler's "new"
    changes.served("expression", ["f1"])
    jitter = box + np.array([2, -2, 1, 2], np.float32)  # a detector's box jitter, about 3 % of the face height
    brighter = np.clip(frame.astype(np.int16) + 20, 0, 255).astype(np.uint8)  # exposure drift
    assert changes.changed(frame, {"f1": jitter}, ["expression"]) == {}
    assert changes.changed(brighter, {"f1": box}, ["expression"]) == {}
    moved = box + np.array([30, 0, 0, 0], np.float32)  # 0.375 face heights
    assert changes.changed(frame, {"f1": moved}, ["expression"]) == {"f1": frozenset({"expression"})}
    other = frame.copy()
    other[105:135, 115:145] = 0  # a dark patch in the lower face (a mouth opening)
    assert changes.changed(other, {"f1": box}, ["expression"]) == {"f1": frozenset({"expression"})}
    changes.force("f1", "expression")  # an expression onset
    assert changes.changed(frame, {"f1": box}, ["expression"]) == {"f1": frozenset({"expression"})}
    changes.served("expression", ["f1"])
    assert changes.changed(frame, {"f1": box}, ["expression"]) == {}


def _textured(seed: int) -> np.ndarray:
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[40:140, 40:140] = np.random.default_rng(seed).integers(0, 255, (100, 100, 3), np.uint8)
    return frame


def test_through_the_pipeline_a_still_face_costs_a_third_of_the_frames_and_a_change_is_seen_at_once():
    cfg = PipelineConfig()
    cfg.compute.expression_period = 0.1
    pipe, det = fake_pipeline(cfg)
    det.next = [face(50, 50, 80)]
    still, changed = _textured(1), _textured(2)
    encoded, ages = [], []
    for i in range(31):
        result = pipe.process(changed if i == 20 else still, i * DT)
        (f,) = result.faces if result.faces else (None,)
        if f is not None:
            ages.append(f.estimate_age)
            if f.frame_estimate is not None:
                encoded.append(i)
    assert 20 in encoded and 21 in encoded  # the new view at once, and the old one back at once
    still_frames = [i for i in encoded if i < 20]
    assert 6 <= len(still_frames) <= 8, encoded  # every 3rd frame at 30 Hz with a 0.1 s period
    assert max(ages) <= 0.1 + 1e-6


def test_fill_budget_encodes_every_frame_as_before():
    cfg = PipelineConfig()
    cfg.compute.fill_budget = True
    pipe, det = fake_pipeline(cfg)
    det.next = [face(50, 50, 80)]
    frame = _textured(1)
    encoded = [i for i in range(12) if any(f.frame_estimate is not None for f in pipe.process(frame, i * DT).faces)]
    assert encoded == list(range(1, 12))  # from the frame the face is confirmed on


def _run_still(config, frames=60, moved_on=None):
    """A still face at 30 Hz (moved by half a face from frame ``moved_on`` on): per frame (detected, encoded, age)."""
    pipe, det = fake_pipeline(config)
    det.next = [face(50, 50, 80)]
    frame = _textured(1)
    out = []
    for i in range(frames):
        if moved_on is not None and i == moved_on:
            det.next = [face(90, 50, 80)]
            frame = np.roll(frame, 40, axis=1)
        (f,) = pipe.process(frame, i * DT).faces or (None,)
        out.append(None if f is None else (f.detected, f.frame_estimate is not None, f.estimate_age))
    pipe.close()
    return out


def test_a_still_face_is_detected_only_when_a_stage_looks_at_it_and_reported_on_every_frame():
    cfg = PipelineConfig()  # detection.redetect_period 0.1, expression_period 0.1
    every = PipelineConfig()
    every.detection.redetect_period = 0.0
    coasting, detecting = _run_still(cfg), _run_still(every)
    assert all(r is not None for r in coasting[1:])  # published on every frame, detected or predicted
    steady = coasting[10:]
    detected = sum(d for d, _, _ in steady)
    assert detected <= len(steady) / 2 and all(d for d, _, _ in detecting[10:])
    assert all(d for d, e, _ in steady if e)  # only detected frames are encoded
    # and no estimate got older than on every frame: the frames a stage falls due on are detected
    assert max(a for _, _, a in steady) == max(a for _, _, a in detecting[10:]) <= 0.1 + 1e-6
    assert _run_still(cfg) == coasting  # stamps, not time, decide which frames coast


def test_a_face_that_moves_while_coasting_is_detected_at_once():
    cfg = PipelineConfig()
    still = _run_still(cfg, moved_on=None)
    coasting_frames = [i for i, r in enumerate(still) if i > 10 and r is not None and not r[0]]
    moved_on = coasting_frames[0]
    moved = _run_still(cfg, moved_on=moved_on)
    assert moved[moved_on][0] and moved[moved_on][1]  # detected and encoded on the frame it moved


def test_a_coasting_track_is_not_missed_and_a_scan_may_still_match_it():
    from dfer_ros.perception.tracking import FaceTracker
    from dfer_ros.perception.config import TrackingConfig

    tracker = FaceTracker(TrackingConfig())
    for k in range(3):
        tracks = tracker.update([face(50, 50, 80)], k * DT)
    (t,) = tracks
    assert t.confirmed
    # the next run does not look for it: no detection, yet it stays visible with its last one
    (t,) = tracker.update([], 3 * DT, coasting={t.key})
    assert t.visible and not t.detected_now
    # a whole-frame scan that finds it renews it as usual
    (t,) = tracker.update([face(52, 50, 80)], 4 * DT, coasting={t.key})
    assert t.detected_now
    # without coasting a run that does not find it misses it
    (t,) = tracker.update([], 5 * DT)
    assert not t.visible


def test_the_every_frame_preset_file_reads_as_the_behaviour_before_freshness_targets():
    """``config/dfer_fill_budget.yaml``, read through the node's checks as ``dfer bench freshness`` compares with it."""
    from dfer_ros.bench.freshness_bench import FILL_BUDGET_PRESET, preset_config

    preset, defaults = preset_config(FILL_BUDGET_PRESET).to_flat(), PipelineConfig().to_flat()
    assert {k: v for k, v in preset.items() if defaults[k] != v} == {
        "compute.fill_budget": True, "compute.expression_period": 0.0, "compute.action_units_period": 0.0,
        "compute.alternate_views": False, "detection.idle_scan_period": 0.0}


def test_a_slower_stage_rides_on_the_faster_ones_refreshes_and_its_floor_still_calls():
    expression = StageSpec("expression", 1.0, max_age_seconds=0.5, period_seconds=0.1)
    units = StageSpec("action_units", 1.0, max_age_seconds=2.0, period_seconds=0.5, lane="worker")
    sched = ComputeScheduler([expression, units], budget_ms=100.0)
    sched.plan(0.0, [FaceDemand("f1", 1600.0)])
    sched.served("expression", ["f1"], 0.0)
    sched.served("action_units", ["f1"], DT)  # out of step: one frame after the expression
    for i in range(1, 17):
        sched.plan(i * DT, [FaceDemand("f1", 1600.0)])
        sched.served("expression", ["f1"], i * DT) if i % 3 == 0 else None
    # frame 16: the action units' period has passed (0.5 s) but the expression's has not: no detection of its own
    assert sched.wanted(16 * DT, ["f1"]) == set()
    # frame 18: the expression falls due, the face is detected, and both stages are served on it
    sched.plan(17 * DT, [])
    assert sched.wanted(18 * DT, ["f1"]) == {"f1"}
    plan = sched.plan(18 * DT, [FaceDemand("f1", 1600.0)])
    assert plan.selected("expression") == ["f1"] and plan.selected("action_units") == ["f1"]
    # the floor is not a period: a stage whose floor passes calls for the face whatever the faster stage does
    floor = ComputeScheduler([expression, StageSpec("action_units", 1.0, max_age_seconds=0.2, period_seconds=0.2)],
                             budget_ms=100.0)
    floor.plan(0.0, [FaceDemand("f1", 1600.0)])
    floor.served("expression", ["f1"], 0.0)
    floor.served("action_units", ["f1"], DT)
    for i in range(1, 6):
        floor.plan(i * DT, [])
    assert floor.wanted(6 * DT, ["f1"]) == {"f1"}  # 0.167 s since: overdue by the next frame


def test_an_early_face_is_served_what_falls_due_by_the_next_frame():
    spec = StageSpec("expression", 1.0, max_age_seconds=0.5, period_seconds=0.1)
    sched = ComputeScheduler([spec], budget_ms=100.0)
    sched.plan(0.0, [FaceDemand("f1", 1600.0)])
    sched.served("expression", ["f1"], 0.0)
    sched.plan(DT, [FaceDemand("f1", 1600.0)])
    assert sched.wanted(2 * DT, ["f1"]) == set() and sched.wanted(2 * DT, ["f1"], ahead=True) == {"f1"}
    assert sched.plan(2 * DT, [FaceDemand("f1", 1600.0)]).selected("expression") == []
    assert sched.plan(2 * DT, [FaceDemand("f1", 1600.0, early=True)]).selected("expression") == ["f1"]


def test_faces_out_of_step_fall_into_step_and_share_detector_runs():
    """Two still faces that appear a frame apart are refreshed on different frames at first; the detector run one
    face calls for takes the other along when its refresh falls due by the next frame, and from then on one run and
    one model call serve both, every 3rd frame at 30 Hz, with no estimate older than the period."""
    pipe, det = fake_pipeline(PipelineConfig())
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[20:220, 20:300] = np.random.default_rng(3).integers(0, 255, (200, 280, 3), np.uint8)
    encoded: dict[str, list[int]] = {}  # face id (counted per process) -> frames it was encoded on
    ages, calls = [], []
    for i in range(60):
        det.next = [face(40, 60, 80)] + ([face(180, 60, 80)] if i >= 1 else [])
        before = det.calls
        result = pipe.process(frame, i * DT)
        for f in result.faces:
            ages.append(f.estimate_age)
            if f.frame_estimate is not None:
                encoded.setdefault(f.face_id, []).append(i)
        calls.append(det.calls - before)
        # the frame's own count of its work (what benchmarks read) is the detector's and the model's
        assert result.work["detector_calls"] == calls[-1]
        assert result.work.get("encoder_faces", 0) == sum(f.frame_estimate is not None for f in result.faces)  # its one stage
    pipe.close()
    first, second = ([i for i in frames if i >= 30] for frames in encoded.values())
    assert len(encoded) == 2 and first == second, encoded  # in step
    assert [b - a for a, b in zip(first, first[1:])] == [3] * (len(first) - 1)  # at the period
    assert sum(calls[30:]) <= 12  # one region run per refresh (10 of 30 frames), plus the odd scan
    assert max(a for a in ages if np.isfinite(a)) <= 0.1 + 1e-6
