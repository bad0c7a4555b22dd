"""PerceptionPipeline with a small fake model (a test double): batching, bad input, limits, failures."""
import logging

import cv2
import numpy as np
import pytest
import skimage.data

from dfer_ros.perception.model_interface import AffectModel, CropSpec, FrameEncoder, TemporalHead
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import YuNetDetector
from dfer_ros.perception.pipeline import STAGES, PerceptionPipeline
from dfer_ros.perception.types import AffectEstimate, Detection
from perception_fakes import ScriptedDetector

LABELS = ("neutral", "happy", "surprise")


class FakeEncoder(FrameEncoder):
    """Embedding = mean intensity of three horizontal bands of the crop; records batch sizes."""

    crop_spec = CropSpec(32, 1.0, "gray")
    embedding_dim = 3

    def __init__(self):
        self.batches = []
        self.fail = False

    def encode(self, crops):
        self.batches.append(len(crops))
        if self.fail:
            raise RuntimeError("encoder exploded")
        c = crops.astype(np.float32) / 255.0
        return np.stack([c[:, :11].mean((1, 2, 3)), c[:, 11:22].mean((1, 2, 3)), c[:, 22:].mean((1, 2, 3))], 1)


class FakeHead(TemporalHead):
    """Softmax of the window mean; can be told to return NaN for the n-th window of each call."""

    min_frames = 3
    max_frames = 6

    def __init__(self):
        self.calls = []
        self.nan_index = None

    def predict(self, windows):
        self.calls.append([w.shape for w in windows])
        out = []
        for i, w in enumerate(windows):
            p = np.exp(5 * w.mean(0))
            p = (p / p.sum()).astype(np.float32)
            if i == self.nan_index:
                p[:] = np.nan
            out.append(AffectEstimate(LABELS, p, valence=0.2, arousal=0.1, va_confidence=0.5,
                                      au_names=("AU12",), au_probs=np.array([0.7], np.float32)))
        return out


def make_pipeline(**overrides):
    """The pipeline's mechanics frame by frame: every face encoded on every frame (freshness targets off; they
    are tested in test_perception_freshness.py)."""
    cfg = PipelineConfig()
    cfg.detection.max_side = 640
    cfg.compute.expression_period = cfg.compute.action_units_period = 0.0
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        setattr(getattr(cfg, section), name, value) if name else setattr(cfg, section, value)
    model = AffectModel(FakeEncoder(), FakeHead(), "fake", "numpy")
    return PerceptionPipeline(cfg, model), model


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def face_tile(astronaut):
    det = YuNetDetector(max_side=512).detect(astronaut)[0]
    x, y, w, h = det.box.astype(int)
    pad = int(0.35 * h)
    return np.ascontiguousarray(astronaut[max(0, y - pad): y + h + pad, max(0, x - pad): x + w + pad])


def tiled(tile, rows, cols, size):
    t = cv2.resize(tile, (size, size))
    return np.vstack([np.hstack([t] * cols)] * rows)


def test_one_face_end_to_end(astronaut):
    pipe, model = make_pipeline()
    results = [pipe.process(astronaut, i * 0.04) for i in range(5)]
    assert results[0].faces == []  # tentative until min_hits = 2
    faces = [r.faces[0] for r in results[1:]]
    assert len({f.face_id for f in faces}) == 1  # one stable id (ids are process-wide, so not always "f1")
    last = faces[-1]
    assert last.detected and last.landmarks.shape == (5, 2) and last.detection_score > 0.8
    assert last.window_frames == 4 and last.window_seconds == pytest.approx(0.12) and last.warmed_up
    assert not faces[0].warmed_up  # 1 frame < min_frames 3
    assert last.expression in LABELS and last.frame_estimate is not None
    assert last.estimate.expression_probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert set(STAGES) <= set(results[-1].timings_ms) and results[-1].timings_ms["total"] > 0
    assert model.head.calls[-1] == [(4, 3)]


def test_all_faces_of_a_frame_in_one_encoder_batch_and_one_head_call(face_tile):
    # budget off: every face is encoded on every frame (with a budget, the faces the scheduler picks
    # still go in one batch; tests/test_perception_scheduling.py covers that)
    pipe, model = make_pipeline(compute__budget_ms=0.0)
    frame = tiled(face_tile, 2, 2, 160)
    for i in range(3):
        result = pipe.process(frame, i * 0.04)
    assert len(result.faces) == 4 and len({f.face_id for f in result.faces}) == 4
    assert model.encoder.batches == [4, 4]  # frame 0 tentative; then one encode call per frame, all faces
    assert len(model.head.calls[-1]) == 4  # one head call for all windows


def test_fifty_faces_are_capped_at_max_faces_largest_first(face_tile):
    pipe, model = make_pipeline(detection__max_faces=6, detection__max_side=1000, compute__budget_ms=0.0)
    small = tiled(face_tile, 5, 10, 96)  # 50 faces of 96 px
    frame = small.copy()
    big = cv2.resize(face_tile, (192, 192))
    frame[0:192, 0:192] = big  # one larger face replaces a 2x2 block of small ones
    assert len(YuNetDetector(max_side=1000, min_score=0.3).detect(small)) >= 40  # really ~50 faces there
    for i in range(2):
        result = pipe.process(frame, i * 0.04)
    assert len(result.faces) == 6 and model.encoder.batches[-1] == 6
    widths = [f.box[2] for f in result.faces]
    assert widths == sorted(widths, reverse=True) and widths[0] > 1.5 * widths[-1]


@pytest.mark.parametrize("frame, reason", [
    (None, "None"), (np.zeros((0, 0, 3), np.uint8), "empty"), (np.zeros((10, 10, 2), np.uint8), "channels"),
    (np.zeros((10, 10, 3), np.float32) + np.nan, "NaN"), ("not an image", "numpy"),
])
def test_bad_frames_are_skipped_with_a_reason_not_raised(frame, reason, caplog):
    pipe, _ = make_pipeline()
    with caplog.at_level(logging.WARNING):
        result = pipe.process(frame, 1.0)
    assert result.faces == [] and reason in result.skipped_reason
    assert "skipped" in caplog.text
    ok = pipe.process(np.zeros((48, 64, 3), np.uint8), 1.04)  # and it keeps working
    assert ok.skipped_reason is None


def test_non_finite_stamp_is_skipped():
    pipe, _ = make_pipeline()
    assert "stamp" in pipe.process(np.zeros((8, 8, 3), np.uint8), float("nan")).skipped_reason


@pytest.mark.parametrize("encoding", ["gray", "bgra", "rgb", "odd"])
def test_gray_bgra_rgb_and_odd_sizes_still_find_the_face(astronaut, encoding):
    pipe, _ = make_pipeline()
    if encoding == "gray":
        frame, enc = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), "mono8"
    elif encoding == "bgra":
        frame, enc = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA), "bgra8"
    elif encoding == "rgb":
        frame, enc = astronaut[..., ::-1].copy(), "rgb8"
    else:
        frame, enc = np.ascontiguousarray(astronaut[3:390, 1:478]), "bgr8"  # 477 x 387
    results = [pipe.process(frame, i * 0.04, enc) for i in range(3)]
    assert results[-1].skipped_reason is None and len(results[-1].faces) == 1


def test_no_faces_gives_an_empty_result_and_no_model_call():
    pipe, model = make_pipeline()
    rng = np.random.default_rng(0)
    for i in range(3):
        result = pipe.process(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), i * 0.04)
        assert result.faces == [] and result.skipped_reason is None
    assert model.encoder.batches == [] and model.head.calls == []


def test_nan_from_the_model_drops_that_face_estimate_for_that_frame(face_tile, caplog):
    pipe, model = make_pipeline()
    frame = tiled(face_tile, 1, 2, 160)
    for i in range(3):
        pipe.process(frame, i * 0.04)
    model.head.nan_index = 0
    with caplog.at_level(logging.WARNING):
        result = pipe.process(frame, 0.12)
    bad = [f for f in result.faces if f.frame_estimate is None]
    good = [f for f in result.faces if f.frame_estimate is not None]
    assert len(bad) == 1 and len(good) == 1 and "non-finite" in caplog.text
    assert np.all(np.isfinite(bad[0].estimate.expression_probs))  # the last good aggregate is kept
    assert bad[0].expression in LABELS
    model.head.nan_index = None
    assert all(f.frame_estimate is not None for f in pipe.process(frame, 0.16).faces)


def test_encoder_failure_is_logged_and_the_pipeline_survives(astronaut, caplog):
    pipe, model = make_pipeline()
    for i in range(3):
        pipe.process(astronaut, i * 0.04)
    model.encoder.fail = True
    with caplog.at_level(logging.WARNING):
        result = pipe.process(astronaut, 0.12)
    assert "encoder failed" in caplog.text and result.skipped_reason is None
    assert len(result.faces) == 1 and result.faces[0].frame_estimate is None


def test_detect_every_k_frames_and_buffers_freed_when_tracks_end():
    cfg = PipelineConfig()
    cfg.detection.every = 3
    cfg.quality.abstain = False  # the flat grey "face" would be withheld as blurred
    model = AffectModel(FakeEncoder(), FakeHead(), "fake", "numpy")
    det = ScriptedDetector()
    pipe = PerceptionPipeline(cfg, model, detector=det)
    frame = np.full((200, 200, 3), 128, np.uint8)
    det.next = [Detection(box=np.array([50, 50, 60, 60], np.float32), score=0.9)]
    seen = []
    for i in range(9):
        r = pipe.process(frame, i * 0.1)
        seen.append([(f.face_id, f.detected) for f in r.faces])
    face_id = seen[3][0][0]
    assert seen[0] == [] and seen[3] == [(face_id, True)] and seen[4] == [(face_id, False)]
    assert len(model.encoder.batches) == 2  # encoded only on detector frames 3 and 6
    assert len(pipe.buffers) == 1 and len(pipe.aggregators) == 1
    det.next = []
    for i in range(9, 30):
        r = pipe.process(frame, i * 0.1)
    assert r.faces == [] and len(pipe.buffers) == 0 and len(pipe.aggregators) == 0


def test_stamp_going_backwards_resets_the_state(astronaut, caplog):
    pipe, _ = make_pipeline()
    for i in range(4):
        before = pipe.process(astronaut, 10 + i * 0.04)
    with caplog.at_level(logging.WARNING):
        r0 = pipe.process(astronaut, 0.0)
    r1 = pipe.process(astronaut, 0.04)
    assert "backwards" in caplog.text and r0.faces == []
    old_id = before.faces[0].face_id
    assert [f.face_id for f in r1.faces] == [f"f{int(old_id[1:]) + 1}"] and r1.faces[0].window_frames == 1
