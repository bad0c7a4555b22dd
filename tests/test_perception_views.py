"""A stage with several views of a crop (the expression net's crop and its mirror image) runs all of them on a face's
first update and one per update after that (``compute.alternate_views``), so the temporal head's mean over frames
averages them at a fraction of the cost; ``alternate_views: false`` runs all of them every time. Scripted frames and
stamps: nothing depends on time."""
from __future__ import annotations

import numpy as np
import pytest
from perception_fakes import BrightnessEncoder, ScriptedDetector, SoftmaxHead, face

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.model_interface import ALL_OUTPUTS, ALL_VIEWS, AffectModel, EncoderStage
from dfer_ros.perception.pipeline import PerceptionPipeline

DT = 1.0 / 30.0


class TwoViewEncoder(BrightnessEncoder):
    """The brightness encoder with two views: view 1 reads the crop's mirror image (here the same brightness)."""

    def __init__(self):
        self.calls: list[tuple[int, object]] = []  # (crops, views or None)

    @property
    def stages(self):
        return (EncoderStage("encoder", slice(0, self.embedding_dim), ALL_OUTPUTS, views=2),)

    def encode_stage(self, stage, crops, views=None):
        self.calls.append((len(crops), None if views is None else [int(v) for v in views]))
        return self.encode(crops if views is None else np.where(np.asarray(views)[:, None, None] == 1,
                                                               crops[:, :, ::-1], crops))


def pipeline(alternate: bool):
    config = PipelineConfig()
    config.quality.abstain = False
    config.compute.alternate_views = alternate
    detector = ScriptedDetector()
    encoder = TwoViewEncoder()
    model = AffectModel(encoder, SoftmaxHead(), "fake", "numpy")
    return PerceptionPipeline(config, model, detector=detector), detector, encoder


def _frame() -> np.ndarray:
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[40:140, 40:140] = np.random.default_rng(1).integers(0, 255, (100, 100, 3), np.uint8)
    return frame


def still_face_calls(alternate: bool, frames: int = 31) -> list:
    """The encoder's (crops, views) calls over ``frames`` frames of one still face."""
    pipe, det, encoder = pipeline(alternate)
    det.next = [face(50, 50, 80)]
    frame = _frame()
    for i in range(frames):
        pipe.process(frame, i * DT)
    return encoder.calls


def test_a_face_gets_all_views_first_then_one_view_per_update_in_turn():
    views = [v for _, v in still_face_calls(alternate=True)]
    assert views[0] == [ALL_VIEWS]
    assert views[1:] == [[k % 2] for k in range(len(views) - 1)]
    assert len(views) >= 6  # a still face at its 0.1 s period over one second


def test_a_face_that_joins_later_starts_with_all_views_and_the_others_keep_their_turn():
    pipe, det, encoder = pipeline(alternate=True)
    frame = _frame()
    det.next = [face(50, 50, 80)]
    for i in range(10):
        pipe.process(frame, i * DT)
    before = len(encoder.calls)
    det.next = [face(50, 50, 80), face(200, 60, 80)]
    frame = frame.copy()
    frame[60:140, 200:280] = 200  # the newcomer is in the image (scans wait while it stays the same)
    for i in range(10, 20):
        pipe.process(frame, i * DT)
    joined = [v for n, v in encoder.calls[before:] if v is not None and ALL_VIEWS in v]
    assert joined, "the new face's first update runs all views"
    assert all(v.count(ALL_VIEWS) == 1 for v in joined)  # only the new face's, never the old face's again


def test_alternate_views_off_runs_every_view_on_every_update():
    calls = still_face_calls(alternate=False)
    assert calls and all(views is None for _, views in calls)


def test_a_reset_timeline_starts_again_from_all_views():
    pipe, det, encoder = pipeline(alternate=True)
    det.next = [face(50, 50, 80)]
    frame = _frame()
    for i in range(10):
        pipe.process(frame, 100.0 + i * DT)
    start = len(encoder.calls)
    for i in range(10):  # the stamps jump back (a bag loop): every track and its count starts again
        pipe.process(frame, i * DT)
    assert encoder.calls[start][1] == [ALL_VIEWS]


@pytest.mark.parametrize("views", [[0], [1], [ALL_VIEWS]])
def test_the_default_expression_net_runs_the_view_asked_for(views):
    from dfer_ros.estimators.faceapi_expression import FaceApiExpressionNet

    both = FaceApiExpressionNet(temperature=3.0, flip_average=True)
    one = FaceApiExpressionNet(temperature=3.0, flip_average=False)
    crops = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3)).astype(np.uint8)
    plain, mirrored = one.logits(crops), one.logits(crops[:, :, ::-1])
    wanted = {0: plain, 1: mirrored, ALL_VIEWS: (plain + mirrored) / 2}[views[0]]
    got = both.logits(crops, np.array(views * 3))
    np.testing.assert_allclose(got, wanted, atol=1e-4)
    mixed = both.logits(crops, np.array([0, 1, ALL_VIEWS]))  # one batch, each crop its own view
    np.testing.assert_allclose(mixed, np.stack([plain[0], mirrored[1], (plain[2] + mirrored[2]) / 2]), atol=1e-4)
    with pytest.raises(ValueError, match="views"):
        both.logits(crops, np.array([0, 2, 0]))


class ExpressionAndUnitsEncoder(BrightnessEncoder):
    """Expression stage = (darkness, brightness); a dearer "action_units" stage = brightness again, recorded."""

    embedding_dim = 3

    def __init__(self):
        self.unit_calls = 0

    @property
    def stages(self):
        return (EncoderStage("expression", slice(0, 2), ("expression", "valence_arousal"), cost_hint_ms=1.0),
                EncoderStage("action_units", slice(2, 3), ("action_units",), cost_hint_ms=10.0))

    def encode_stage(self, stage, crops, views=None):
        values = self.encode(crops)
        if stage == "action_units":
            self.unit_calls += 1
            return values[:, 1:2]
        return values[:, :2]


class ExpressionOnlyHead(SoftmaxHead):
    def predict(self, windows):
        return super().predict([w[:, :2] for w in windows])


def test_an_expression_onset_refreshes_the_action_units_at_once():
    """The whole face brightens evenly (its grey view, mean removed, does not change), so only the expression net
    sees it, at its own period; the onset it gives refreshes the action units on the next frame, long before their
    0.5 s period."""
    config = PipelineConfig()
    config.quality.abstain = False
    config.compute.action_units_period = 0.5
    config.compute.action_units_max_age = 2.0
    config.events.exclude_labels = ["dark"]  # the calm state, like "neutral"
    detector = ScriptedDetector()
    encoder = ExpressionAndUnitsEncoder()
    pipe = PerceptionPipeline(config, AffectModel(encoder, ExpressionOnlyHead(), "fake", "numpy"), detector=detector)
    detector.next = [face(50, 50, 80)]
    dark = np.full((240, 320, 3), 40, np.uint8)
    dark[40:140, 40:140] = np.random.default_rng(1).integers(20, 60, (100, 100, 3), np.uint8)
    bright = dark.copy()
    bright[40:140, 40:140] += 150  # the same texture, evenly brighter
    runs_at, onset_at = [], None
    for i in range(60):
        before = encoder.unit_calls
        result = pipe.process(dark if i < 20 else bright, i * DT)
        if encoder.unit_calls > before:
            runs_at.append(i)
        if onset_at is None and any(e.kind == "onset" for e in result.events):
            onset_at = i
    assert onset_at is not None and onset_at > 20
    after = [i for i in runs_at if i > onset_at]
    assert after and after[0] == onset_at + 1, (onset_at, runs_at)
    previous = max(i for i in runs_at if i <= onset_at)
    assert (onset_at + 1 - previous) * DT < 0.5 - DT, (previous, onset_at, runs_at)  # not its period: the onset
