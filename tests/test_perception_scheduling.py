"""The pipeline with its compute scheduler: real detection and tracking on real faces (the astronaut, tiled),
a two-stage fake encoder whose stage costs advance a fake clock, so every plan is deterministic.
"""
import math

import cv2
import numpy as np
import pytest
import skimage.data

from dfer_ros.perception.model_interface import AffectModel, CropSpec, EncoderStage, FrameEncoder, TemporalHead
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import YuNetDetector
from dfer_ros.perception.pipeline import PerceptionPipeline
from dfer_ros.perception.types import AffectEstimate

LABELS = ("neutral", "happy", "surprise")
RATE = 30.0
COST_MS = {"expression": 2.0, "action_units": 12.0}  # fake per-face costs


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class TwoStageEncoder(FrameEncoder):
    """Expression part = band means of the crop (3 columns), AU part = overall mean (1 column)."""

    crop_spec = CropSpec(32, 1.0, "gray")
    embedding_dim = 4
    missing_value = -1.0

    def __init__(self, clock):
        self.clock = clock
        self.calls = []  # (stage, faces)

    @property
    def stages(self):
        return (EncoderStage("expression", slice(0, 3), ("expression", "valence_arousal"), cost_hint_ms=2.0),
                EncoderStage("action_units", slice(3, 4), ("action_units",), cost_hint_ms=12.0,
                             min_frames_between=3, background=True))

    def encode_stage(self, stage, crops):
        self.calls.append((stage, len(crops)))
        self.clock.t += COST_MS[stage] * len(crops) / 1000.0
        c = crops.astype(np.float32) / 255.0
        if stage == "expression":
            return np.stack([c[:, :11].mean((1, 2, 3)), c[:, 11:22].mean((1, 2, 3)), c[:, 22:].mean((1, 2, 3))], 1)
        return c.mean((1, 2, 3))[:, None]

    def encode(self, crops):
        return np.concatenate([self.encode_stage("expression", crops), self.encode_stage("action_units", crops)], 1)


class NewestValidHead(TemporalHead):
    """Softmax of the mean of the newest 3 rows with an expression; AU = newest valid AU value."""

    min_frames = 2
    max_frames = 8

    def predict(self, windows):
        out = []
        for w in windows:
            expr = w[w[:, 0] >= 0][-3:, :3]
            p = np.exp(5 * expr.mean(0)) if len(expr) else np.ones(3)
            aus = w[w[:, 3] >= 0][-1:, 3]
            out.append(AffectEstimate(LABELS, (p / p.sum()).astype(np.float32), valence=0.1, arousal=0.1,
                                      va_confidence=0.5, au_names=("AU12",) if len(aus) else (),
                                      au_probs=aus.astype(np.float32)))
        return out


@pytest.fixture(scope="module")
def face_tile():
    astro = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    x, y, w, h = YuNetDetector(max_side=512).detect(astro)[0].box.astype(int)
    pad = int(0.35 * h)
    return cv2.resize(np.ascontiguousarray(astro[max(0, y - pad): y + h + pad, max(0, x - pad): x + w + pad]),
                      (100, 100))


def crowd(tile, faces, k):
    """``faces`` copies of the tile in a 640x480 frame, swaying by a few pixels with frame ``k``."""
    frame = np.full((480, 640, 3), 60, np.uint8)
    dx, dy = int(3 * math.sin(k / 4)), int(3 * math.cos(k / 4))
    for i in range(faces):
        r, c = divmod(i, 5)
        y, x = 10 + r * 115 + dy, 10 + c * 125 + dx
        frame[y:y + 100, x:x + 100] = tile
    return frame


def make(budget_ms, overlap=False, expression_max_age=0.5, action_units_max_age=2.0):
    """Budget and floors without freshness targets (every stage offered on every frame its rate cap allows, the
    budget deciding); the targets are tested in test_perception_freshness.py."""
    cfg = PipelineConfig()
    cfg.compute.expression_period = cfg.compute.action_units_period = 0.0
    cfg.detection.max_side = 640
    cfg.detection.max_faces = 64
    cfg.compute.budget_ms = budget_ms
    cfg.compute.overlap = overlap
    cfg.compute.expression_max_age = expression_max_age
    cfg.compute.action_units_max_age = action_units_max_age
    clock = FakeClock()
    encoder = TwoStageEncoder(clock)
    pipe = PerceptionPipeline(cfg, AffectModel(encoder, NewestValidHead(), "fake", "numpy"), clock=clock)
    return pipe, encoder


def run(pipe, tile, faces, frames):
    out = []
    for k in range(frames):
        out.append(pipe.process(crowd(tile, faces, k), k / RATE))
    return out


def local_ids(results):
    """Face ids per frame renumbered by first appearance (ids come from one process-wide counter, so two
    pipelines in one process never share ids; the order in which they are issued is what must match)."""
    first: dict[str, int] = {}
    return [[first.setdefault(f.face_id, len(first)) for f in r.faces] for r in results]


def test_large_budget_gives_estimates_identical_to_budget_off(face_tile):
    off, _ = make(0.0)
    large, _ = make(1e4)
    res_off, res_large = run(off, face_tile, 6, 12), run(large, face_tile, 6, 12)
    assert local_ids(res_off) == local_ids(res_large)
    for a, b in zip(res_off, res_large):
        for fa, fb in zip(a.faces, b.faces):
            assert np.array_equal(fa.estimate.expression_probs, fb.estimate.expression_probs)
            assert np.array_equal(fa.estimate.au_probs, fb.estimate.au_probs)
            assert fa.estimate_age == fb.estimate_age and fa.action_units_age == fb.action_units_age


def test_budget_off_runs_expression_on_every_face_every_frame_and_ages_are_zero(face_tile):
    pipe, encoder = make(0.0)
    results = run(pipe, face_tile, 6, 10)
    assert all(len(r.faces) == 6 for r in results[2:])  # confirmed after min_hits
    assert [n for s, n in encoder.calls if s == "expression"][-5:] == [6] * 5
    assert all(f.estimate_age == 0.0 for f in results[-1].faces)
    assert max(f.action_units_age for f in results[-1].faces) <= 2 / RATE + 1e-9  # every 3rd frame


def test_ids_and_boxes_do_not_depend_on_the_budget_and_every_face_is_reported(face_tile):
    off, _ = make(0.0)
    tight, encoder = make(4.0)  # two expressions per frame at most: 15 faces take 8 frames
    res_off, res_tight = run(off, face_tile, 15, 20), run(tight, face_tile, 15, 20)
    assert local_ids(res_off) == local_ids(res_tight)
    for a, b in zip(res_off, res_tight):
        assert all(np.array_equal(fa.box, fb.box) for fa, fb in zip(a.faces, b.faces))
    assert len(b.faces) == 15
    per_frame = [n for s, n in encoder.calls if s == "expression"]
    assert max(per_frame[3:]) < 15  # the budget really limited the work


def test_tight_budget_keeps_every_face_within_its_refresh_floor(face_tile):
    pipe, encoder = make(4.0, expression_max_age=0.3, action_units_max_age=1.0)
    results = run(pipe, face_tile, 15, 90)
    ages = [f.estimate_age for r in results[20:] for f in r.faces]
    au_ages = [f.action_units_age for r in results[45:] for f in r.faces]
    assert max(ages) <= 0.3 + 1e-9 and max(au_ages) <= 1.0 + 1e-9
    assert np.median(ages) > 0  # faces are refreshed in turns, not every frame
    # the budget (4 ms per lane = 2 expressions) holds except where the floor forced more
    expr_faces = [n for s, n in encoder.calls if s == "expression"]
    assert np.mean(expr_faces[20:]) < 15 * 0.5


def test_new_face_is_estimated_on_its_first_reported_frame(face_tile):
    pipe, _ = make(4.0)
    known = {f.face_id for f in run(pipe, face_tile, 10, 30)[-1].faces}
    assert len(known) == 10
    result = None
    # an 11th face appears; it is reported once a whole-frame scan found it (every 4th frame, alternating
    # with tiles at 640x480, one frame later in the background) and it is confirmed (min_hits 2)
    for k in range(30, 30 + 4 * pipe.config.detection.scan_every):
        result = pipe.process(crowd(face_tile, 11, k), k / RATE)
        newcomers = [f for f in result.faces if f.face_id not in known]
        if newcomers:
            break
    assert newcomers and newcomers[0].frame_estimate is not None and newcomers[0].estimate_age == 0.0


def test_background_stage_runs_on_the_worker_and_merges_at_its_own_stamp(face_tile):
    pipe, encoder = make(1e4, overlap=True)
    try:
        for k in range(2):  # the face is confirmed on the second frame and both stages start there
            first = pipe.process(crowd(face_tile, 1, k), k / RATE)
        assert first.faces and first.faces[0].estimate_age == 0.0
        assert first.faces[0].action_units_age == math.inf  # submitted, not merged yet
        second = pipe.process(crowd(face_tile, 1, 2), 2 / RATE)
        face = second.faces[0]
        assert face.action_units_age == pytest.approx(1 / RATE)  # the AU came from the previous image
        assert face.estimate.au_names == ("AU12",) and face.estimate_age == 0.0
        assert ("action_units", 1) in encoder.calls
    finally:
        pipe.close()


def test_overlap_gives_the_same_estimates_as_one_thread_a_frame_later(face_tile):
    """The worker's results are merged on the next frame whatever the thread timing, so a run with overlap is
    reproducible: the same as without overlap except that AUs reach the estimates one frame later."""
    runs = []
    for overlap in (True, True, False):
        pipe, _ = make(1e4, overlap=overlap)
        try:
            runs.append(run(pipe, face_tile, 3, 15))
        finally:
            pipe.close()
    first, second, inline = runs
    for k, (a, b, c) in enumerate(zip(first, second, inline)):
        for i, (fa, fb, fc) in enumerate(zip(a.faces, b.faces, c.faces)):
            assert np.array_equal(fa.estimate.au_probs, fb.estimate.au_probs)
            assert fa.action_units_age == fb.action_units_age
            assert np.array_equal(fa.estimate.expression_probs, fc.estimate.expression_probs)
            # the AU state a frame shows with overlap is the one-thread state of the frame before
            before = inline[k - 1].faces[i] if k and i < len(inline[k - 1].faces) else None
            if before is not None and math.isfinite(before.action_units_age):
                assert fa.action_units_age == pytest.approx(before.action_units_age + 1 / RATE)


def test_stage_costs_are_learned_from_the_clock(face_tile):
    pipe, _ = make(1e4)
    run(pipe, face_tile, 4, 8)
    assert pipe.scheduler.estimated_ms("expression") == pytest.approx(2.0)
    assert pipe.scheduler.estimated_ms("action_units") == pytest.approx(12.0)


def test_budget_and_floors_change_at_run_time(face_tile):
    pipe, encoder = make(4.0)
    run(pipe, face_tile, 15, 5)
    new = PipelineConfig.from_dict(pipe.config.to_dict())
    new.compute.budget_ms = 0.0
    new.compute.expression_max_age = 0.25
    assert set(pipe.reconfigure(new)) >= {"compute.budget_ms", "compute.expression_max_age"}
    encoder.calls.clear()
    pipe.process(crowd(face_tile, 15, 5), 5 / RATE)
    assert pipe.scheduler.budget_ms is None and pipe.scheduler.stages["expression"].max_age_seconds == 0.25
    assert [n for s, n in encoder.calls if s == "expression"] == [15]  # budget off: every face


def test_quality_is_assessed_on_the_faces_picked_for_a_stage_and_on_new_faces_not_on_every_face(face_tile):
    pipe, _ = make(4.0)  # two expression faces a frame, beyond the new ones and the refresh floor
    plans, assessed = [], []
    plan, assess = pipe.scheduler.plan, pipe.behaviour.assess

    def record_plan(*args, **kwargs):
        out = plan(*args, **kwargs)
        plans[-1] |= {fid for ids in out.faces.values() for fid in ids}
        return out

    def record_assess(bgr, tracks):
        assessed[-1].update(tr.face_id for tr in tracks)
        return assess(bgr, tracks)

    pipe.scheduler.plan, pipe.behaviour.assess = record_plan, record_assess
    seen: set[str] = set()
    for k in range(30):
        plans.append(set())
        assessed.append(set())
        result = pipe.process(crowd(face_tile, 15, k), k / RATE)
        ids = {f.face_id for f in result.faces}
        new = ids - seen
        seen |= ids
        assert plans[-1] <= assessed[-1], "a face was encoded without the quality of this view"
        assert assessed[-1] <= plans[-1] | new
        if k >= 10:
            assert len(ids) == 15 and len(assessed[-1]) < 15
    assert all(f.quality is not None for f in result.faces)
