"""The embedded model on real faces (astronaut, cap12 webcam video), its AU proxies, VA, head and factory.

Properties of each expression net's outputs are checked for both: the default (face-api's net) and
``fer2013`` (the mini-Xception, the default before; its original assertions are kept for it).
"""
from __future__ import annotations

import logging
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from dfer_ros import assets
from dfer_ros.estimators import default_model as dm
from dfer_ros.estimators.blendshape_aus import ABAW_AUS, AU_RULES, blendshapes_to_aus
from dfer_ros.estimators.circumplex import Circumplex, entropy_confidence
from dfer_ros.estimators.factory import MODEL_BUILDERS, create_model, register_model
from dfer_ros.estimators.fer_mini_xception import FER_LABELS
from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.perception.alignment import align_faces
from dfer_ros.perception.types import Detection

AU = {name: 7 + i for i, name in enumerate(ABAW_AUS)}  # column of each AU in the embedding
EXPR = {name: i for i, name in enumerate(FER_LABELS)}
NEUTRAL_FRAMES = (0, 20, 40, 60)  # cap12: relaxed face at the start
OPEN_MOUTH_FRAMES = (120, 165, 300, 345)  # cap12: brows up, jaw dropped (checked by eye)


def _detect(bgr: np.ndarray) -> Detection:
    import yuface

    conf, boxes, marks = yuface.detect(np.ascontiguousarray(bgr))
    assert len(conf), "no face found"
    i = int(np.argmax(conf))
    return Detection(boxes[i].astype(np.float32), float(conf[i]) / 100.0, marks[i].reshape(5, 2).astype(np.float32))


@pytest.fixture(scope="module")
def model():
    return create_model("default")


@pytest.fixture(scope="module")
def fer_model():
    return create_model("fer2013")


@pytest.fixture(scope="module")
def faces():
    """{name: (bgr image, detection)} for the astronaut and a few cap12 frames."""
    wanted = set(NEUTRAL_FRAMES + OPEN_MOUTH_FRAMES)
    out = {}
    astronaut = np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])
    out["astronaut"] = (astronaut, _detect(astronaut))
    capture = cv2.VideoCapture(str(assets.sample_video()))
    for index in range(max(wanted) + 1):
        ok, frame = capture.read()
        assert ok, f"cap12 ended at frame {index}"
        if index in wanted:
            out[index] = (frame, _detect(frame))
    capture.release()
    return out


def _embed(model, faces):
    names = list(faces)
    crops = np.concatenate([align_faces(img, [det], model.encoder.crop_spec) for img, det in faces.values()])
    emb = model.encoder.encode(crops)  # one batched call, as the pipeline does
    return dict(zip(names, emb))


@pytest.fixture(scope="module")
def embeddings(model, faces):
    return _embed(model, faces)


@pytest.fixture(scope="module")
def fer_embeddings(fer_model, faces):
    return _embed(fer_model, faces)


@pytest.mark.parametrize("name", ["default", "fer2013"])
def test_model_shape(name, model, fer_model):
    model = {"default": model, "fer2013": fer_model}[name]
    assert model.name.startswith(f"{name}: ")
    assert model.encoder.crop_spec == CropSpec(size=256, face_scale=2.0, color="rgb")
    assert model.encoder.embedding_dim == 19
    assert model.backend == "onnxruntime" and model.head.min_frames == 3
    assert model.encoder.encode(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0, 19)
    with pytest.raises(ValueError, match="256"):
        model.encoder.encode(np.zeros((1, 64, 64, 3), np.uint8))


@pytest.mark.parametrize("name", ["default", "fer2013"])
def test_astronaut_is_happy_with_positive_valence(name, model, embeddings, fer_model, fer_embeddings):
    model, embeddings = {"default": (model, embeddings), "fer2013": (fer_model, fer_embeddings)}[name]
    emb = embeddings["astronaut"]
    est = model.head.predict([np.stack([emb] * 3)])[0]
    print(f"astronaut: happy {est.expression_probs[EXPR['happy']]:.3f}, valence {est.valence:.2f}, "
          f"arousal {est.arousal:.2f}, confidence {est.va_confidence:.2f}")
    assert est.top_expression == "happy"
    assert est.expression_labels == FER_LABELS
    assert est.valence > 0.5 and est.has_va
    assert est.au_names == ABAW_AUS and est.au_probs.shape == (12,)


def test_cap12_open_mouth_scores_surprise_over_neutral_frames_fer2013(fer_model, fer_embeddings):
    model, embeddings = fer_model, fer_embeddings
    neutral = np.stack([embeddings[i] for i in NEUTRAL_FRAMES])
    opened = np.stack([embeddings[i] for i in OPEN_MOUTH_FRAMES])
    for name, rows in (("neutral", neutral), ("open mouth", opened)):
        print(f"cap12 {name}: surprise {np.round(rows[:, EXPR['surprise']], 3)}, "
              f"neutral {np.round(rows[:, EXPR['neutral']], 3)}, AU25 {np.round(rows[:, AU['AU25']], 2)}, "
              f"AU26 {np.round(rows[:, AU['AU26']], 2)}")
    assert neutral[:, EXPR["surprise"]].max() < 0.1
    assert opened[:, EXPR["surprise"]].min() > 0.3
    assert (opened[:, EXPR["surprise"]].mean() - neutral[:, EXPR["surprise"]].mean()) > 0.4
    assert all(FER_LABELS[int(np.argmax(row[:7]))] == "neutral" for row in neutral)
    est = model.head.predict([opened[:3]])[0]
    assert est.arousal > 0.3  # surprise sits high on the arousal axis


def test_cap12_open_mouth_scores_surprise_over_neutral_frames_default(model, embeddings):
    """The same frames through face-api's net (temperature-calibrated): relaxed frames neutral, with little
    surprise; brows-up/open-mouth frames surprise, by a wider margin than the mini-Xception's."""
    neutral = np.stack([embeddings[i] for i in NEUTRAL_FRAMES])
    opened = np.stack([embeddings[i] for i in OPEN_MOUTH_FRAMES])
    for name, rows in (("neutral", neutral), ("open mouth", opened)):
        print(f"cap12 {name}: surprise {np.round(rows[:, EXPR['surprise']], 3)}, "
              f"neutral {np.round(rows[:, EXPR['neutral']], 3)}")
    assert all(FER_LABELS[int(np.argmax(row[:7]))] == "neutral" for row in neutral)
    assert neutral[:, EXPR["neutral"]].min() > 0.6 and neutral[:, EXPR["surprise"]].max() < 0.15
    assert all(FER_LABELS[int(np.argmax(row[:7]))] == "surprise" for row in opened)
    assert opened[:, EXPR["surprise"]].min() > 0.5
    assert (opened[:, EXPR["surprise"]].mean() - neutral[:, EXPR["surprise"]].mean()) > 0.6
    relaxed = model.head.predict([neutral[:3]])[0]
    assert abs(relaxed.valence) < 0.1  # a relaxed face reads valence near 0 (the mini-Xception: sad-leaning)
    est = model.head.predict([opened[:3]])[0]
    assert est.arousal > 0.3  # surprise sits high on the arousal axis


def test_action_units_follow_the_faces(embeddings):
    smile = embeddings["astronaut"]
    neutral = np.stack([embeddings[i] for i in NEUTRAL_FRAMES])
    opened = np.stack([embeddings[i] for i in OPEN_MOUTH_FRAMES])
    print(f"AU12 smile {smile[AU['AU12']]:.2f} vs neutral max {neutral[:, AU['AU12']].max():.2f}; "
          f"AU6 smile {smile[AU['AU6']]:.2f} vs neutral max {neutral[:, AU['AU6']].max():.2f}")
    assert np.isfinite(neutral[:, 7:]).all() and np.isfinite(opened[:, 7:]).all()
    assert smile[AU["AU12"]] > neutral[:, AU["AU12"]].max() + 0.5
    assert smile[AU["AU6"]] > neutral[:, AU["AU6"]].max() + 0.2
    for au in ("AU25", "AU26"):
        assert opened[:, AU[au]].min() > neutral[:, AU[au]].max() + 0.1, au
    # brows go up with the surprise
    assert opened[:2, AU["AU1"]].mean() > neutral[:, AU["AU1"]].mean() + 0.1


def test_derived_expression_crop_matches_a_direct_64px_crop(fer_model, faces):
    """The 64 px grey crop cut from the 256 px landmarker crop equals the aligner's own face_scale-1 crop."""
    model = fer_model
    image, det = faces[0]
    derived = model.encoder.expression_crops(align_faces(image, [det], model.encoder.crop_spec))[0]
    direct = align_faces(image, [det], CropSpec(64, 1.0, "gray"))[0, ..., 0]
    diff = np.abs(derived.astype(float) - direct.astype(float))
    print(f"derived vs direct 64px crop: mean |diff| {diff.mean():.2f} grey levels")
    assert diff.mean() < 4.0
    probs = model.encoder.net.predict(np.stack([derived, direct]))
    assert np.abs(probs[0] - probs[1]).max() < 0.15


def test_derived_expression_crop_matches_a_direct_112px_crop(model, faces):
    """The default net's 112 px RGB crop, cut from the same 256 px crop, equals the aligner's direct crop."""
    image, det = faces[0]
    derived = model.encoder.expression_crops(align_faces(image, [det], model.encoder.crop_spec))[0]
    direct = align_faces(image, [det], CropSpec(112, model.encoder.config.expression_face_scale, "rgb"))[0]
    assert derived.shape == direct.shape == (112, 112, 3)
    diff = np.abs(derived.astype(float) - direct.astype(float))
    print(f"derived vs direct 112px crop: mean |diff| {diff.mean():.2f} levels")
    assert diff.mean() < 4.0
    probs = model.encoder.net.predict(np.stack([derived, direct]))
    assert np.abs(probs[0] - probs[1]).max() < 0.15


def test_no_face_in_crop_gives_nan_action_units_not_an_error(model):
    flat = np.full((2, 256, 256, 3), 127, np.uint8)
    emb = model.encoder.encode(flat)
    assert np.isfinite(emb).all()  # the pipeline drops faces with non-finite embeddings
    assert (emb[:, 7:] == dm.AU_MISSING).all()
    est = model.head.predict([emb])[0]
    assert est.au_names == () and est.au_probs.size == 0  # left out, not NaN (the pipeline rejects NaN)
    assert est.has_va and np.isfinite(est.expression_probs).all()
    # one good frame in the window is enough
    good = model.head.predict([np.concatenate([np.r_[emb[0, :7], np.full(12, 0.2)][None], emb])])[0]
    assert good.au_names == ABAW_AUS and good.au_probs == pytest.approx(np.full(12, 0.2))


def test_missing_landmarker_runs_without_aus_and_says_so_once(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(dm, "_warned_no_action_units", False)
    caplog.set_level(logging.WARNING, logger=dm.__name__)
    first = dm.build_default_model(landmarker_task_path=str(tmp_path / "missing.task"), expression_net="fer2013")
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # mediapipe not importable at all
    second = dm.build_default_model(expression_net="fer2013")
    third = dm.build_default_model()
    warnings = [r for r in caplog.records if "WITHOUT action units" in r.getMessage()]
    assert len(warnings) == 1 and "missing.task" in warnings[0].getMessage()
    assert third.encoder.crop_spec == CropSpec(112, 1.0, "rgb") and not third.encoder.has_action_units
    for model in (first, second, third):
        side = model.encoder.crop_spec.size
        if model is not third:
            assert model.encoder.crop_spec == CropSpec(64, 1.0, "gray") and not model.encoder.has_action_units
        crops = np.full((1, side, side, 3), 100, np.uint8)
        emb = model.encoder.encode(crops)
        assert emb.shape == (1, 19) and (emb[0, 7:] == dm.AU_MISSING).all() and np.isfinite(emb).all()
        est = model.head.predict([emb])[0]
        assert est.au_names == () and est.au_probs.size == 0
        assert "AU" not in model.name


def test_head_weights_newest_frames_and_ignores_missing_aus():
    head = dm.DefaultTemporalHead(dm.DefaultModelConfig(au_every_n_frames=1), has_action_units=True)
    happy, sad = np.eye(7)[EXPR["happy"]], np.eye(7)[EXPR["sad"]]
    aus = lambda v: np.full(12, v)  # noqa: E731
    window = np.stack([np.r_[sad, aus(0.9)]] * 5 + [np.r_[happy, aus(dm.AU_MISSING)], np.r_[happy, aus(0.1)]])
    est = head.predict([window.astype(np.float32)])[0]
    # newest three frames weigh 1, 1/2, 1/4: happy has 1.5 / 1.75
    assert est.expression_probs[EXPR["happy"]] == pytest.approx(1.5 / 1.75, abs=1e-6)
    assert est.top_expression == "happy"
    # AUs: the newest three frames THAT HAVE them (the missing one is skipped, not counted): 0.1, 0.9, 0.9
    assert est.au_probs == pytest.approx(np.full(12, (0.1 * 1 + 0.9 * 0.5 + 0.9 * 0.25) / 1.75), abs=1e-6)
    assert len(head.predict([])) == 0
    with pytest.raises(ValueError, match="19"):
        head.predict([np.zeros((3, 7), np.float32)])


def test_landmarker_runs_on_every_nth_frame_and_head_spans_its_frames():
    class CountingLandmarker:
        calls = 0

        def __call__(self, crops):
            CountingLandmarker.calls += 1
            return np.full((len(crops), 12), 0.5, np.float32)

    config = dm.DefaultModelConfig(au_every_n_frames=3)
    encoder = dm.DefaultFrameEncoder(dm.FaceApiExpressionNet(), CountingLandmarker(), config)
    crops = np.zeros((2, config.landmarker_size, config.landmarker_size, 3), np.uint8)
    rows = [encoder.encode(crops)[0] for _ in range(7)]
    assert CountingLandmarker.calls == 3  # frames 0, 3 and 6
    with_aus = [i for i, row in enumerate(rows) if (row[7:] >= 0).all()]
    assert with_aus == [0, 3, 6]
    head = dm.DefaultTemporalHead(config, has_action_units=True)
    # frames 1, 2, 4, 5 carry no AUs; the head still reports the AUs of frames 0, 3, 6
    estimate = head.predict([np.stack(rows)])[0]
    assert estimate.au_names == dm.ABAW_AUS
    assert estimate.au_probs == pytest.approx(np.full(12, 0.5), abs=1e-6)
    with pytest.raises(ValueError, match="au_every_n_frames"):
        dm.DefaultModelConfig(au_every_n_frames=0)


def test_stages_fill_their_own_columns_and_head_averages_each_part_separately():
    class FixedLandmarker:
        def __call__(self, crops):
            out = np.full((len(crops), 12), 0.3, np.float32)
            out[1:] = np.nan  # no face found in the second crop
            return out

    config = dm.DefaultModelConfig()
    encoder = dm.DefaultFrameEncoder(dm.FerMiniXception(), FixedLandmarker(), config)
    assert [s.name for s in encoder.stages] == ["expression", "action_units"]
    expr_stage, au_stage = encoder.stages
    assert au_stage.background and not expr_stage.background and au_stage.min_frames_between == 3
    assert expr_stage.crop_spec == CropSpec(128, 1.0, "gray") and au_stage.crop_spec is None
    crops = np.zeros((2, config.landmarker_size, config.landmarker_size, 3), np.uint8)
    expr = encoder.encode_stage("expression", np.zeros((2, 128, 128, 3), np.uint8))
    aus = encoder.encode_stage("action_units", crops)
    assert expr.shape == (2, 7) and np.allclose(expr.sum(1), 1.0, atol=1e-5)
    assert aus.shape == (2, 12) and (aus[0] == 0.3).all() and (aus[1] == dm.AU_MISSING).all()
    with pytest.raises(ValueError, match="stage"):
        encoder.encode_stage("descriptor", crops)
    with pytest.raises(ValueError, match="128"):
        encoder.encode_stage("expression", crops)  # the landmarker framing is not the expression stage's
    # a window where the newest rows carry only AUs (the landmarker ran on a frame the net skipped)
    happy = np.eye(7)[EXPR["happy"]]
    missing = lambda n: np.full(n, dm.AU_MISSING)  # noqa: E731
    window = np.stack([np.r_[happy, missing(12)]] + [np.r_[missing(7), np.full(12, 0.3)]] * 4)
    est = dm.DefaultTemporalHead(config, has_action_units=True).predict([window.astype(np.float32)])[0]
    assert est.top_expression == "happy" and est.expression_probs[EXPR["happy"]] == pytest.approx(1.0)
    assert est.au_probs == pytest.approx(np.full(12, 0.3), abs=1e-6)


def test_expression_framing_matches_the_centre_of_the_landmarker_crop(faces):
    """The expression stage's own 128 px crop is the central half of the 256 px landmarker crop: the same
    probabilities (up to interpolation at the border pixels) at a quarter of the alignment cost."""
    model = create_model("default")
    image, face = faces["astronaut"]
    big = align_faces(image, [face], model.encoder.crop_spec)
    own = align_faces(image, [face], model.encoder.stages[0].crop_spec)
    from_big = model.encoder.net.predict(model.encoder.expression_crops(big))
    from_own = model.encoder.encode_stage("expression", own)
    assert np.abs(from_big - from_own).max() < 0.02
    model.close()


def test_circumplex_coordinates_and_confidence():
    circ = Circumplex(FER_LABELS)
    v, a, c = circ(np.eye(7))
    assert v[EXPR["happy"]] > 0.9 and abs(a[EXPR["happy"]]) < 0.3
    assert v[EXPR["sad"]] < -0.5 and a[EXPR["sad"]] < 0
    assert a[EXPR["surprise"]] > 0.8 and a[EXPR["angry"]] > 0.8 and a[EXPR["fear"]] > 0.8
    assert v[EXPR["angry"]] < 0 and v[EXPR["fear"]] < 0 and v[EXPR["disgust"]] < 0
    assert (v[EXPR["neutral"]], a[EXPR["neutral"]]) == (0.0, 0.0)
    np.testing.assert_allclose(c, 1.0, atol=1e-6)
    assert (np.abs(v) <= 1).all() and (np.abs(a) <= 1).all()
    assert entropy_confidence(np.full(7, 1 / 7)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(KeyError, match="contempt"):
        Circumplex(("happy", "contempt"))


def test_au_rules_cover_the_abaw_set():
    names = ["browInnerUp", "browOuterUpLeft", "browOuterUpRight", "browDownLeft", "browDownRight",
             "cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft", "eyeSquintRight", "mouthUpperUpLeft",
             "mouthUpperUpRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
             "mouthRollUpper", "mouthRollLower", "mouthPressLeft", "mouthPressRight", "jawOpen",
             "mouthLowerDownLeft", "mouthLowerDownRight"]
    assert tuple(AU_RULES) == ABAW_AUS
    zeros = blendshapes_to_aus(dict.fromkeys(names, 0.0))
    assert (zeros == 0).all()
    # eye squint alone is AU7, not AU6
    squint = blendshapes_to_aus({**dict.fromkeys(names, 0.0), "eyeSquintLeft": 0.8, "eyeSquintRight": 0.8})
    assert squint[ABAW_AUS.index("AU7")] == pytest.approx(0.8) and squint[ABAW_AUS.index("AU6")] == 0.0
    jaw = blendshapes_to_aus({**dict.fromkeys(names, 0.0), "jawOpen": 0.6})
    assert jaw[ABAW_AUS.index("AU25")] == pytest.approx(0.6) and jaw[ABAW_AUS.index("AU26")] == pytest.approx(0.6)


def test_factory_names_and_hook(monkeypatch):
    with pytest.raises(ValueError, match="known models: .*default"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown default-model option"):
        create_model("default", colour="blue")
    with pytest.raises(ValueError, match="onnxruntime"):
        create_model("default", backend="torch")
    with pytest.raises(ValueError, match="expression_net.*faceapi"):
        create_model("default", expression_net="vgg")
    with pytest.raises(ValueError, match="temperature"):
        create_model("fer2013", temperature=2.0)
    monkeypatch.setitem(MODEL_BUILDERS, "dummy", None)
    register_model("dummy", lambda backend, **options: ("built", backend, options))
    assert create_model("dummy", backend="torch", config="x.yaml") == ("built", "torch", {"config": "x.yaml"})


def test_config_from_yaml(tmp_path):
    good = tmp_path / "default.yaml"
    good.write_text("average_frames: 5\nwith_action_units: false\n")
    cfg = dm.DefaultModelConfig.from_yaml(good)
    assert cfg.average_frames == 5 and not cfg.with_action_units
    bad = tmp_path / "bad.yaml"
    bad.write_text("average_frame: 5\n")
    with pytest.raises(ValueError, match="bad.yaml.*average_frame"):
        dm.DefaultModelConfig.from_yaml(bad)


@pytest.mark.parametrize("with_action_units", [False, True])
def test_pipeline_keeps_faces_with_and_without_action_units(faces, with_action_units, caplog):
    """Through the perception pipeline: embeddings stay finite, so no face is dropped in either mode."""
    from dfer_ros.perception.config import PipelineConfig
    from dfer_ros.perception.pipeline import PerceptionPipeline

    model = create_model("default", with_action_units=with_action_units)
    config = PipelineConfig()
    config.compute.budget_ms = 0.0  # every face, every frame: what is checked here must not depend on timing
    pipe = PerceptionPipeline(config.validate(), model)
    image = faces["astronaut"][0]
    caplog.set_level(logging.WARNING)
    for i in range(4):
        result = pipe.process(image, i * 0.04)
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]
    (face,) = result.faces
    assert face.frame_estimate is not None and face.frame_estimate.top_expression == "happy"
    assert face.estimate.valence > 0.5
    assert len(face.estimate.au_probs) == (12 if with_action_units else 0)
