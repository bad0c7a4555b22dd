"""The offline output bag: FrameResults -> the node's messages (``ros.conversions``) -> rclpy CDR bytes ->
rosbags bag (mcap and sqlite3); read back with the custom types registered from the .msg files, and the
stored bytes deserialize with rclpy too (the two CDR implementations agree both ways)."""
from __future__ import annotations

import numpy as np
import pytest

from dfer_ros import bag_io
from dfer_ros.perception.types import AffectEstimate, FaceResult, FrameResult

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _face(face_id: str, stamp: float, happy: float, valence: float) -> FaceResult:
    probs = np.full(7, (1 - happy) / 6, np.float32)
    probs[3] = happy
    est = AffectEstimate(LABELS, probs, valence=valence, arousal=-0.25, va_confidence=0.8,
                         au_names=("AU6", "AU12"), au_probs=np.array([0.2, 0.9], np.float32))
    return FaceResult(face_id=face_id, stamp=stamp, box=np.array([10.4, 20.6, 50, 60], np.float32),
                      detection_score=0.9, detected=True, landmarks=np.arange(10, dtype=np.float32).reshape(5, 2),
                      frame_estimate=est, estimate=est, expression="happy", expression_confidence=happy,
                      window_frames=4, window_seconds=0.12, warmed_up=True)


def _results() -> list[FrameResult]:
    faces = [_face("f1", 1000.0, 0.7, 0.5), _face("f2", 1000.0, 0.4, -0.5)]
    return [FrameResult(stamp=1000.0, frame_index=0, faces=faces),
            FrameResult(stamp=1000.04, frame_index=1, faces=[])]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_results_bag_reads_back_with_custom_types(tmp_path, storage):
    from dfer_ros.ros.bag_record import ResultsBagWriter

    out = tmp_path / "out"
    with ResultsBagWriter(out, storage) as writer:
        for r in _results():
            writer.write(r, "camera", int(round(r.stamp * 1e9)))
    info = bag_io.bag_info(out)
    assert info.storage == storage
    assert info.topics["/faces/affect"] == ("dfer_ros/msg/FaceAffectArray", 2)
    assert info.topics["/faces/tracked"] == ("dfer_ros/msg/TrackedFaces", 2)
    msgs = [(t, ns, m) for t, _, ns, m in bag_io.read_messages(out, ["/faces/affect"])]
    (_, ns0, first), (_, ns1, second) = msgs
    assert ns0 == 1000 * 10**9 and ns1 == 1000_040_000_000
    assert first.header.stamp.sec == 1000 and first.header.frame_id == "camera"
    assert [f.face_id for f in first.faces] == ["f1", "f2"] and list(second.faces) == []
    f1 = first.faces[0]
    assert (f1.roi.x_offset, f1.roi.y_offset, f1.roi.width, f1.roi.height) == (10, 21, 50, 60)
    assert list(f1.expression.labels) == list(LABELS) and f1.expression.expression == "happy"
    assert f1.expression.probabilities[3] == pytest.approx(0.7)
    assert f1.valence_arousal.valence == pytest.approx(0.5) and f1.valence_arousal.arousal == pytest.approx(-0.25)
    assert list(f1.action_units.names) == ["AU6", "AU12"] and list(f1.action_units.active) == [False, True]
    np.testing.assert_allclose(f1.landmarks, np.arange(10))
    tracked = [m for _, _, _, m in bag_io.read_messages(out, ["/faces/tracked"])][0]
    assert list(tracked.face_ids) == ["f1", "f2"]


def test_bag_bytes_deserialize_with_rclpy(tmp_path):
    """Bytes written by rosbags deserialize in rclpy into the generated class, and vice versa."""
    from rclpy.serialization import deserialize_message, serialize_message

    from dfer_ros.msg import FaceAffectArray
    from dfer_ros.ros.bag_record import ResultsBagWriter

    out = tmp_path / "out"
    with ResultsBagWriter(out, "mcap") as writer:
        writer.write(_results()[0], "camera", 1000 * 10**9)
    raw = [d for t, _, _, d in bag_io.read_raw(out, ["/faces/affect"])][0]
    msg = deserialize_message(raw, FaceAffectArray)
    assert [f.face_id for f in msg.faces] == ["f1", "f2"]
    assert msg.faces[1].valence_arousal.valence == pytest.approx(-0.5)
    # the other way: rosbags re-serializes its object; rclpy reads it back as the same message
    # (bytes may differ in alignment padding, which Fast CDR leaves uninitialised)
    store = bag_io.dfer_typestore()
    ours = [m for _, _, _, m in bag_io.read_messages(out, ["/faces/affect"])][0]
    again = deserialize_message(bytes(store.serialize_cdr(ours, "dfer_ros/msg/FaceAffectArray")), FaceAffectArray)
    assert again == msg
    assert deserialize_message(serialize_message(again), FaceAffectArray) == msg
