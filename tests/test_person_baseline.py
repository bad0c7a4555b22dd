"""Per-person expression baselines (perception.baseline): a resting face that reads sad becomes neutral relative
to itself, a change from it (a smile) still reads as that change, only calm frames move the baseline, and
nothing is published before the baseline has its calm seconds. Time is driven by the test."""
from __future__ import annotations

import numpy as np
import pytest

from dfer_ros.perception.baseline import PersonBaselines
from dfer_ros.perception.config import BaselineConfig

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def probs(**mass) -> np.ndarray:
    p = np.full(len(LABELS), 0.02)
    for label, value in mass.items():
        p[LABELS.index(label)] = value
    return p / p.sum()


def feed(b: PersonBaselines, key: str, p: np.ndarray, seconds: float, start: float = 0.0, arousal: float = -0.2,
         rate: float = 10.0) -> float:
    t = start
    for _ in range(int(seconds * rate)):
        t += 1.0 / rate
        b.update(key, t, LABELS, p, arousal)
    return t


def top(p) -> str:
    return LABELS[int(np.argmax(p))]


def test_resting_sad_face_reads_neutral_relative_to_itself_and_a_smile_still_reads_happy():
    b = PersonBaselines(BaselineConfig(enabled=True, min_calm_seconds=2.0))
    resting = probs(sad=0.6, neutral=0.3)
    assert b.relative("p1", LABELS, resting) is None  # nothing before any calm time
    feed(b, "p1", resting, 1.0)
    assert b.relative("p1", LABELS, resting) is None  # 1 s < min_calm_seconds
    feed(b, "p1", resting, 2.0, start=1.0)
    rel = b.relative("p1", LABELS, resting)
    assert top(resting) == "sad" and top(rel) == "neutral"
    assert rel[LABELS.index("neutral")] == pytest.approx(0.8, abs=1e-3)  # the neutral reference
    smile = probs(happy=0.5, sad=0.2, neutral=0.2)
    assert top(b.relative("p1", LABELS, smile)) == "happy"
    assert b.relative("p2", LABELS, resting) is None  # per person


def test_only_calm_frames_move_the_baseline_and_forget_drops_it():
    b = PersonBaselines(BaselineConfig(enabled=True, min_calm_seconds=1.0, calm_max_arousal=0.3))
    neutral = probs(neutral=0.9)
    t = feed(b, "p1", neutral, 2.0)
    feed(b, "p1", probs(surprise=0.9), 5.0, start=t, arousal=0.8)  # aroused: ignored
    assert top(b.relative("p1", LABELS, neutral)) == "neutral"
    assert top(b.relative("p1", LABELS, probs(surprise=0.9))) == "surprise"
    b.forget("p1")
    assert b.relative("p1", LABELS, neutral) is None and len(b) == 0


def test_pipeline_publishes_relative_expression_per_person_and_forget_drops_it():
    """The real default model on the webcam video, re-identification on: the relative expression appears once
    the person's baseline has its calm seconds, in the face result and the JSONL record; forgetting the person
    drops descriptors and baseline alike."""
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.evaluation.predictions import face_record
    from dfer_ros.perception.config import PipelineConfig
    from ros_helpers import sample_frames

    config = PipelineConfig()
    config.baseline.enabled = True
    config.baseline.min_calm_seconds = 0.5
    config.baseline.calm_max_arousal = 1.0  # every image counts as calm: the test is about the plumbing
    pipe = build_pipeline(config, "default")
    try:
        if not pipe.reid.active:
            pytest.skip(f"re-identification unavailable: {pipe.reid.status().reason}")
        faces = []
        for i, frame in enumerate(sample_frames(30)):
            result = pipe.process(frame, i / 25.0)
            faces += result.faces
        last = faces[-1]
        assert last.person_id and last.relative_expression in LABELS
        assert last.relative_expression_probs.sum() == pytest.approx(1.0, abs=1e-4)
        record = face_record(29, last)
        assert record["relative_expression"] == last.relative_expression
        assert set(record["relative_expression_probs"]) == set(last.estimate.expression_labels)
        assert not any(f.relative_expression for f in faces[:5])  # not before min_calm_seconds
        assert pipe.forget_person(last.person_id)
        assert len(pipe.baselines) == 0 and last.person_id not in pipe.reid.gallery
    finally:
        pipe.close()
