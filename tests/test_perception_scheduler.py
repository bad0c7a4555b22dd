"""The per-frame compute scheduler, driven by a fake clock (image stamps) and fake model costs.

Each simulated frame: plan, "run" the chosen stages at a fixed fake cost per face (fed back through
``observe``), mark the faces served. No real time is measured anywhere.
"""
import math

import numpy as np

import pytest

from dfer_ros.perception.scheduler import ComputeScheduler, FaceDemand, StageSpec

RATE_HZ = 30.0
COST_MS = {"expression": 2.0, "landmarker": 12.0}  # fake true costs per face


def stages(expression_age=0.5, landmarker_age=2.0, landmarker_every=3):
    # deliberately wrong first guesses: the scheduler must learn the true costs
    return [StageSpec("expression", initial_cost_ms=1.0, max_age_seconds=expression_age),
            StageSpec("landmarker", initial_cost_ms=5.0, max_age_seconds=landmarker_age,
                      min_frames_between=landmarker_every)]


def faces(n, start=0):
    return [FaceDemand(f"f{i}", area=float(40 + i) ** 2) for i in range(start, start + n)]


def run_frame(sched, frame, demands):
    """One simulated frame; returns (stamp, plan, true cost in ms)."""
    stamp = frame / RATE_HZ
    plan = sched.plan(stamp, demands)
    cost = 0.0
    for stage, ids in plan.faces.items():
        if ids:
            sched.observe(stage, len(ids), COST_MS[stage] * len(ids))
            sched.served(stage, ids, stamp)
            cost += COST_MS[stage] * len(ids)
    return stamp, plan, cost


def test_budget_respected_once_costs_are_learned():
    sched = ComputeScheduler(stages(expression_age=1.0, landmarker_age=10.0), budget_ms=20.0)
    demands = faces(25)
    costs, learned_at = [], None
    for k in range(300):
        costs.append(run_frame(sched, k, demands)[2])
        if learned_at is None and all(c.samples for c in sched.costs.values()):
            learned_at = k + 1
    assert sched.estimated_ms("expression") == pytest.approx(2.0)
    assert sched.estimated_ms("landmarker") == pytest.approx(12.0)
    # frames planned with the wrong first guesses may overrun; once both stages were measured, never
    assert learned_at is not None and learned_at < 10
    assert max(costs[learned_at:]) <= 20.0
    assert np.mean(costs[learned_at:]) > 15.0  # and the budget is actually used, not left idle


def test_no_face_starved_every_stage_within_its_floor():
    sched = ComputeScheduler(stages(expression_age=0.5, landmarker_age=2.0), budget_ms=20.0)
    demands = faces(25)
    worst = {"expression": 0.0, "landmarker": 0.0}
    for k in range(600):
        stamp, _, _ = run_frame(sched, k, demands)
        if k >= 90:  # after the start-up, when all 25 faces were new at once
            for f in demands:
                for stage in worst:
                    worst[stage] = max(worst[stage], sched.age(f.face_id, stage, stamp))
    assert worst["expression"] <= 0.5
    assert worst["landmarker"] <= 2.0


def test_floor_wins_over_budget_when_the_budget_cannot_meet_it():
    # 50 faces x 2 ms every 0.2 s needs 500 ms/s, but the budget gives 5 ms x 30 Hz = 150 ms/s
    sched = ComputeScheduler([StageSpec("expression", 2.0, max_age_seconds=0.2)], budget_ms=5.0)
    demands = faces(50)
    overdue = 0
    for k in range(300):
        stamp, plan, _ = run_frame(sched, k, demands)
        overdue += plan.overdue
        if k >= 30:
            assert max(sched.age(f.face_id, "expression", stamp) for f in demands) <= 0.2 + 1e-9
    assert overdue > 0  # the floor forced work beyond the budget, and the plan says so


def test_new_faces_are_served_on_their_first_frame():
    sched = ComputeScheduler(stages(expression_age=1.0, landmarker_age=10.0), budget_ms=20.0)
    crowd = faces(25)
    for k in range(120):
        run_frame(sched, k, crowd)
    newcomers = faces(2, start=100)
    _, plan, _ = run_frame(sched, 120, crowd + newcomers)
    for f in newcomers:
        assert f.face_id in plan.selected("expression")
    # the landmarker too as far as the budget allows after both expressions: one newcomer at least
    assert any(f.face_id in plan.selected("landmarker") for f in newcomers)


def test_rate_cap_limits_landmarker_per_face():
    sched = ComputeScheduler(stages(landmarker_every=3), budget_ms=None)
    demands = faces(1)
    served = [bool(run_frame(sched, k, demands)[1].selected("landmarker")) for k in range(12)]
    assert served == [True, False, False] * 4
    assert all(run_frame(sched, k, demands)[1].selected("expression") for k in range(12, 20))


def test_large_budget_plans_exactly_like_budget_off():
    off = ComputeScheduler(stages(), budget_ms=None)
    large = ComputeScheduler(stages(), budget_ms=1e9)
    population = faces(30)
    for k in range(200):
        present = population[: 5 + (k // 10) % 25]  # faces come and go
        _, plan_off, _ = run_frame(off, k, present)
        _, plan_large, _ = run_frame(large, k, present)
        assert plan_large.faces == plan_off.faces
        gone = [f.face_id for f in population if f not in present]
        off.forget(gone)
        large.forget(gone)


def test_budget_off_serves_every_due_face_every_frame():
    sched = ComputeScheduler(stages(landmarker_every=1), budget_ms=None)
    demands = faces(10)
    for k in range(5):
        _, plan, _ = run_frame(sched, k, demands)
        assert sorted(plan.selected("expression")) == sorted(f.face_id for f in demands)
        assert sorted(plan.selected("landmarker")) == sorted(f.face_id for f in demands)


def test_budget_below_one_face_cost_makes_progress_and_holds_on_average():
    sched = ComputeScheduler(stages(expression_age=100.0, landmarker_age=100.0), budget_ms=1.0)
    demands = faces(3)
    costs = [run_frame(sched, k, demands)[2] for k in range(600)]
    assert max(costs) <= 12.0  # one pair at a time, even the 12 ms landmarker
    assert np.mean(costs[30:]) <= 1.0 * 1.05  # its overrun is paid back by the next frames
    for f in demands:
        assert math.isfinite(sched.age(f.face_id, "expression", 20.0))
        assert math.isfinite(sched.age(f.face_id, "landmarker", 20.0))


def test_staleness_order_prefers_larger_and_attending_faces():
    sched = ComputeScheduler([StageSpec("expression", 2.0, max_age_seconds=10.0)], budget_ms=2.0)
    small, big = FaceDemand("small", area=100.0), FaceDemand("big", area=10000.0)
    run_frame(sched, 0, [small])
    run_frame(sched, 1, [big])
    # both served once, equally old by frame 3; the bigger one wins the single slot
    _, plan, _ = run_frame(sched, 3, [small, big])
    assert plan.selected("expression") == ["big"]
    watcher = FaceDemand("small", area=100.0, attention=1.0)
    sched2 = ComputeScheduler([StageSpec("expression", 2.0, max_age_seconds=10.0)], budget_ms=2.0)
    run_frame(sched2, 0, [watcher])
    run_frame(sched2, 1, [FaceDemand("other", area=100.0)])
    _, plan, _ = run_frame(sched2, 3, [FaceDemand("other", area=100.0), watcher])
    assert plan.selected("expression") == ["small"]


def test_unavailable_stage_is_not_planned_and_forget_bounds_memory():
    sched = ComputeScheduler(stages(), budget_ms=None)
    plan = sched.plan(0.0, faces(4), available=["expression"])
    assert plan.selected("landmarker") == [] and len(plan.selected("expression")) == 4
    sched.forget([f.face_id for f in faces(4)])
    assert sched._faces == {}
    assert sched.age("f0", "expression", 1.0) == math.inf


def test_each_lane_has_its_own_budget():
    lanes = [StageSpec("expression", 2.0, max_age_seconds=10.0),
             StageSpec("landmarker", 12.0, max_age_seconds=10.0, lane="worker")]
    sched = ComputeScheduler(lanes, budget_ms=13.0)
    _, plan, _ = run_frame(sched, 0, faces(10))
    assert len(plan.selected("expression")) == 6  # 6 x 2 ms <= 13 on the main lane
    assert len(plan.selected("landmarker")) == 1  # 1 x 12 ms <= 13 on the worker lane
    assert plan.estimated_ms == {"main": 12.0, "worker": 12.0}


def test_one_stalled_call_does_not_inflate_the_cost_estimate():
    sched = ComputeScheduler(stages(), budget_ms=16.0)
    for _ in range(5):
        sched.observe("expression", 4, 2.0)  # 0.5 ms per face
    sched.observe("expression", 1, 100.0)  # the process was preempted during one call
    assert sched.estimated_ms("expression") == pytest.approx(0.6)  # the sample counted as 1.0 ms, not 100
    for _ in range(30):
        sched.observe("expression", 1, 10.0)  # a lasting change still gets through
    assert sched.estimated_ms("expression") == pytest.approx(10.0, rel=0.01)


def test_a_lane_budget_for_one_frame_overrides_the_default():
    lanes = [StageSpec("expression", 2.0, max_age_seconds=10.0),
             StageSpec("landmarker", 12.0, max_age_seconds=10.0, lane="worker")]
    sched = ComputeScheduler(lanes, budget_ms=13.0)
    plan = sched.plan(0.0, faces(10), lane_budget_ms={"worker": 40.0})
    assert len(plan.selected("expression")) == 6 and len(plan.selected("landmarker")) == 3
    off = ComputeScheduler(lanes, budget_ms=None)
    assert len(off.plan(0.0, faces(10), lane_budget_ms={"worker": 1.0}).selected("landmarker")) == 10


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        ComputeScheduler(stages(), budget_ms=0.0)
    with pytest.raises(ValueError):
        ComputeScheduler([StageSpec("a", 1.0, 1.0), StageSpec("a", 1.0, 1.0)])
    with pytest.raises(ValueError):
        StageSpec("a", 1.0, 1.0, min_frames_between=0)
