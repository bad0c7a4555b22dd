"""Per-track embedding buffers and temporal aggregation."""
import logging

import numpy as np
import pytest

from dfer_ros.perception.aggregation import Aggregators, TrackAggregator
from dfer_ros.perception.config import AggregationConfig, BufferConfig
from dfer_ros.perception.track_buffer import TrackBuffer, TrackBuffers
from dfer_ros.perception.types import AffectEstimate

LABELS = ("neutral", "happy", "surprise")


def test_window_is_bounded_in_frames():
    buf = TrackBuffer(max_frames=4, max_seconds=0, gap_reset_seconds=1.0)
    for i in range(10):
        buf.append(i * 0.04, np.full(3, i, np.float32))
    w = buf.window()
    assert w.shape == (4, 3) and list(w[:, 0]) == [6, 7, 8, 9]  # oldest first
    assert buf.seconds == pytest.approx(0.12)


def test_window_is_bounded_in_seconds():
    buf = TrackBuffer(max_frames=100, max_seconds=0.5, gap_reset_seconds=1.0)
    for i in range(30):
        buf.append(i * 0.1, np.zeros(2, np.float32))
    assert len(buf) == 6 and buf.seconds == pytest.approx(0.5)


def test_head_max_frames_caps_the_window():
    bufs = TrackBuffers(BufferConfig(window_frames=16), max_frames=8)
    for i in range(20):
        bufs.append("f1", i * 0.04, np.zeros(2))
    assert len(bufs.get("f1")) == 8


def test_gap_resets_the_buffer():
    buf = TrackBuffer(max_frames=16, max_seconds=0, gap_reset_seconds=0.5)
    for i in range(5):
        assert buf.append(i * 0.1, np.zeros(2)) is None
    reason = buf.append(1.2, np.ones(2))
    assert reason and "gap" in reason
    assert len(buf) == 1 and buf.window()[0, 0] == 1.0 and buf.resets == 1


def test_duplicate_stamp_replaces_the_last_embedding():
    buf = TrackBuffer(max_frames=16, max_seconds=0, gap_reset_seconds=0.5)
    buf.append(0.0, np.zeros(2))
    buf.append(0.0, np.ones(2))
    assert len(buf) == 1 and buf.window()[0, 0] == 1.0


def test_freed_when_the_track_ends_and_time_going_back_resets_all(caplog):
    bufs = TrackBuffers(BufferConfig())
    for i in range(3):
        bufs.check_time(i * 0.1)
        bufs.append("f1", i * 0.1, np.zeros(2))
        bufs.append("f2", i * 0.1, np.zeros(2))
    bufs.free("f1")
    assert bufs.ids() == ["f2"] and "f1" not in bufs
    with caplog.at_level(logging.WARNING):
        assert bufs.check_time(0.0) is True
    assert len(bufs) == 0 and "backwards" in caplog.text


def estimate(probs, valence=0.0, au=0.5):
    return AffectEstimate(LABELS, np.asarray(probs, np.float32), valence=valence, arousal=0.1,
                          va_confidence=1.0, au_names=("AU12",), au_probs=np.array([au], np.float32))


def noisy_stream(seed, n=300, fps=25):
    """True label neutral for 6 s, then surprise; each frame's probs are noisy so the top label flickers."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = np.array([0.5, 0.2, 0.3]) if i < n // 2 else np.array([0.3, 0.2, 0.5])
        p = np.clip(base + rng.normal(0, 0.12, 3), 0.01, None)
        out.append((i / fps, estimate(p / p.sum(), valence=float(rng.normal(0, 0.3)))))
    return out


def count_flips(config, stream):
    agg = TrackAggregator(config)
    labels = [agg.update(est, t)[1] for t, est in stream]
    return sum(a != b for a, b in zip(labels, labels[1:])), labels, agg


def test_aggregation_flips_less_than_raw_and_follows_the_change():
    stream = noisy_stream(0)
    raw_flips, raw_labels, _ = count_flips(AggregationConfig(enabled=False), stream)
    flips, labels, agg = count_flips(AggregationConfig(), stream)
    assert raw_flips > 20
    assert flips <= 3 < raw_flips
    assert labels[140] == "neutral" and labels[-1] == "surprise"
    assert agg.flips == flips
    # per-frame values stay available: the raw labels are exactly the frames' argmax
    assert raw_labels == [est.top_expression for _, est in stream]


def test_smoothing_is_stamp_driven_same_at_5_and_30_fps():
    def after_one_second(fps):
        agg = TrackAggregator(AggregationConfig(half_life_seconds=0.5))
        agg.update(estimate([1, 0, 0], valence=-1.0, au=0.0), 0.0)
        out = None
        for i in range(1, fps + 1):
            out = agg.update(estimate([0, 0, 1], valence=1.0, au=1.0), i / fps)
        return out[0]

    a, b = after_one_second(5), after_one_second(30)
    # two half-lives: 75 % of the way to the new value at either rate
    assert a.valence == pytest.approx(0.5, abs=1e-6) and b.valence == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_allclose(a.expression_probs, [0.25, 0, 0.75], atol=1e-6)
    np.testing.assert_allclose(b.au_probs, [0.75], atol=1e-6)


def test_hysteresis_needs_margin_and_duration():
    agg = TrackAggregator(AggregationConfig(half_life_seconds=0.01, switch_margin=0.1, switch_min_seconds=0.5))
    assert agg.update(estimate([0.6, 0.1, 0.3]), 0.0)[1] == "neutral"
    assert agg.update(estimate([0.42, 0.1, 0.48]), 0.1)[1] == "neutral"  # beats it, but by < margin
    for t in (0.2, 0.4, 0.6):
        assert agg.update(estimate([0.2, 0.1, 0.7]), t)[1] == "neutral"  # margin, but not long enough
    label, conf = agg.update(estimate([0.2, 0.1, 0.7]), 0.75)[1:]
    assert label == "surprise" and conf == pytest.approx(0.7, abs=1e-3)


def test_nan_valence_keeps_the_last_value_and_aggregators_are_freed():
    aggs = Aggregators(AggregationConfig())
    aggs.update("f1", estimate([1, 0, 0], valence=0.5), 0.0)
    out = aggs.update("f1", estimate([1, 0, 0], valence=float("nan")), 0.1)[0]
    assert out.valence == pytest.approx(0.5)
    aggs.free("f1")
    assert len(aggs) == 0 and aggs.last("f1") is None
