"""dfer_node as a real subprocess, talking over real DDS to this test process.

One node process serves the whole module (loading the model takes seconds). Frames are the real face
video (cap12); the test publishes them with stamps it chooses and waits for the result carrying each
stamp, so nothing depends on timing. Stamps only increase (the pipeline resets on a backward jump) and
stay in the past of the wall clock, so the video publisher's real stamps later on are newer still.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.msg import (FaceActionUnitsArray, FaceAffectArray, FaceExpressionArray,  # noqa: E402
                          FaceValenceArousalArray, TrackedFaces)
from dfer_ros.ros.conversions import array_to_image, stamp_to_seconds  # noqa: E402
from dfer_ros.ros.diagnostics import diagnostic_values  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import NodeProcessProbe, read_log, ros_process, sample_frames, wait_until  # noqa: E402

NS = "/itest"
IMAGE = f"{NS}/camera/image"
TIMEOUT = 60.0


def _time(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


@pytest.fixture(scope="module")
def frames():
    return sample_frames(40)


class Harness(NodeProcessProbe):
    """The test side: publishes images, records every output message by stamp, reads diagnostics."""

    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path
        self.node = rclpy.create_node("dfer_itest_probe")
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, IMAGE, reliable)
        self.outputs: dict[str, dict[float, object]] = {}
        self.output_subs = []
        for topic, kind in (("faces/affect", FaceAffectArray), ("faces/expression", FaceExpressionArray),
                            ("faces/valence_arousal", FaceValenceArousalArray),
                            ("faces/action_units", FaceActionUnitsArray), ("faces/tracked", TrackedFaces)):
            store = self.outputs.setdefault(topic, {})
            self.output_subs.append(self.node.create_subscription(
                kind, f"{NS}/{topic}", lambda m, s=store: s.__setitem__(stamp_to_seconds(m.header.stamp), m), reliable))
        self.diagnostics: list[dict[str, str]] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.params = AsyncParameterClient(self.node, f"{NS}/dfer_node")
        self.stamp = time.time() - 3600.0  # in the past of the wall clock, increasing

    def _on_diag(self, msg):
        if msg.status and msg.status[0].name.startswith(f"{NS}/dfer_node"):
            self.diagnostics.append(diagnostic_values(msg))

    def next_stamp(self, step: float = 0.04) -> float:
        self.stamp = round(self.stamp + step, 6)
        return self.stamp

    def publish(self, frame, step: float = 0.04, encoding: str = "bgr8") -> float:
        stamp = self.next_stamp(step)
        msg = array_to_image(frame, encoding)
        msg.header.stamp = _time(stamp)
        msg.header.frame_id = "itest_camera"
        self.pub.publish(msg)
        return stamp

    def result(self, stamp: float):
        return self.outputs["faces/affect"].get(stamp)

    def process(self, frame, step: float = 0.04):
        """Publish one frame and wait for its result on every output topic; returns the affect message."""
        stamp = self.publish(frame, step)
        self.wait(lambda: all(stamp in store for store in self.outputs.values()), f"results for stamp {stamp}")
        return self.result(stamp)

    def log_has(self, text: str) -> bool:
        return text in read_log(self.log_path)

    def set_params(self, **values):
        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        self.wait(future.done, f"set_parameters {values}")
        return future.result().results


@pytest.fixture(scope="module")
def harness(ros_env, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("node") / "dfer_node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={NS}", "-r", f"image:={IMAGE}",
            "-p", "image_qos.reliability:=reliable", "-p", "image_qos.depth:=10", "-p", "publish_debug_image:=true",
            "-p", "diagnostics_period:=0.5", "-p", "warn_throttle_seconds:=0.0",
            "-p", "subscribe_compressed:=true", "-r", f"image/compressed:={IMAGE}/compressed"]
    with ros_session():
        with ros_process(args, ros_env, log_path) as proc:
            h = Harness(proc, log_path)
            h.wait(lambda: any(d.get("state") == "active" for d in h.diagnostics), "the node to become active",
                   timeout=120)
            h.wait(lambda: h.pub.get_subscription_count() >= 1, "the node's image subscription to match")
            h.wait(lambda: all(sub.get_publisher_count() >= 1 for sub in h.output_subs),
                   "the node's output publishers to match our subscriptions")
            h.wait(h.params.services_are_ready, "the parameter services")
            yield h
            h.node.destroy_node()
        assert proc.returncode == 0, f"dfer_node exit code {proc.returncode} after SIGINT:\n{read_log(log_path)}"


def test_real_face_video_gives_stamped_results_with_a_stable_id(harness, frames):
    stamps, results = [], []
    for frame in frames[:16]:
        results.append(harness.process(frame))
        stamps.append(harness.stamp)
    for msg, stamp in zip(results, stamps):
        assert stamp_to_seconds(msg.header.stamp) == pytest.approx(stamp, abs=1e-6)
        assert msg.header.frame_id == "itest_camera"
        for face in msg.faces:
            assert face.header == msg.header and face.expression.header == msg.header
    with_faces = [m for m in results if m.faces]
    assert len(with_faces) >= 10, "the face in the real video was not tracked"
    assert {f.face_id for m in with_faces for f in m.faces} == {with_faces[0].faces[0].face_id}, "face id changed"
    last = with_faces[-1].faces[0]
    assert last.warmed_up and last.expression.expression in last.expression.labels
    assert 0.0 <= last.expression.confidence <= 1.0 and sum(last.expression.probabilities) == pytest.approx(1, abs=1e-3)
    assert -1.0 <= last.valence_arousal.valence <= 1.0 and last.roi.width > 40
    # every estimate carries its age: the expression within its refresh floor (0 on a machine with time to
    # spare), the action units (every 3rd image of the face, on the worker thread, merged one image later)
    # never on the image they were computed from
    assert 0.0 <= last.expression.estimate_age <= 0.5 + 1e-6
    assert last.valence_arousal.estimate_age == pytest.approx(last.expression.estimate_age)
    assert 0.0 < last.action_units.estimate_age <= 2.0 + 1e-6
    tracked = harness.outputs["faces/tracked"][stamps[-1]]
    assert list(tracked.face_ids) == [last.face_id]
    # /diagnostics says how old the oldest published estimate of a period was (the refresh floor kept)
    harness.wait(lambda: any("estimate_age_max_s" in d for d in harness.diagnostics), "an estimate age in /diagnostics")
    ages = [float(d["estimate_age_max_s"]) for d in harness.diagnostics if "estimate_age_max_s" in d]
    assert all(0.0 <= a <= 0.5 + 1e-6 for a in ages)


def test_parameter_updates_are_validated_and_reach_the_pipeline(harness, frames):
    ok, = harness.set_params(**{"detection.min_face_size": 4000})
    assert ok.successful, ok.reason
    bad, = harness.set_params(**{"detection.low_score_threshold": 0.95})
    assert not bad.successful and "detection.score_threshold" in bad.reason
    bad_range, = harness.set_params(au_threshold=2.0)
    assert not bad_range.successful and bad_range.reason
    read_only, = harness.set_params(model="/elsewhere")
    assert not read_only.successful
    # min_face_size 4000: no detection any more; the track ends after lost_seconds of stamp time
    msgs = [harness.process(frames[16 + i], step=0.6) for i in range(3)]
    assert msgs[-1].faces == [], "the face is still reported although detection is off"
    ok, = harness.set_params(**{"detection.min_face_size": 24})
    assert ok.successful
    msgs = [harness.process(frame) for frame in frames[20:26]]
    assert msgs[-1].faces, "face not found again after restoring detection.min_face_size"
    assert harness.log_has("pipeline parameters updated: detection.min_face_size")


BAD_IMAGES = [
    ("encoding yuv422", dict(encoding="yuv422", width=8, height=8, step=16, size=128), "unsupported encoding 'yuv422'"),
    ("16-bit mono", dict(encoding="16UC1", width=8, height=8, step=16, size=128), "encoding '16UC1' rejected"),
    ("step too small", dict(encoding="bgr8", width=400, height=300, step=1000, size=300_000),
     "step 1000 is smaller than width*channels"),
    ("truncated", dict(encoding="bgr8", width=400, height=300, step=1200, size=1200 * 299), "truncated data"),
    ("0x0", dict(encoding="bgr8", width=0, height=0, step=0, size=0), "empty image (0x0)"),
    ("7680x4320", dict(encoding="bgr8", width=7680, height=4320, step=7680 * 3, size=7680 * 4320 * 3),
     "max_image_pixels"),  # a real 99.5 MB frame over DDS, rejected before decoding
]


@pytest.mark.parametrize("case, fields, words", BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_bad_image_is_logged_and_the_next_good_frame_is_processed(harness, frames, case, fields, words):
    msg = Image(encoding=fields["encoding"], width=fields["width"], height=fields["height"], step=fields["step"])
    msg.data = bytes(fields["size"])
    msg.header.stamp = _time(harness.next_stamp())
    harness.pub.publish(msg)
    harness.wait(lambda: harness.log_has(words), f"a warning naming '{words}' in the node log")
    good = harness.process(frames[26])
    assert good is not None
    harness.wait(lambda: any(int(d.get("bad_images", 0)) >= 1 for d in harness.diagnostics),
                 "the bad image in the diagnostics")


def test_stale_frames_are_dropped_and_counted(harness, frames):
    before = max(int(d["dropped_stale"]) for d in harness.diagnostics)
    stamps = [harness.publish(frames[i % len(frames)]) for i in range(40)]  # a burst, much faster than 30 Hz
    harness.wait(lambda: harness.result(stamps[-1]) is not None, "the result of the newest frame of the burst")
    processed = [s for s in stamps if harness.result(s) is not None]
    assert len(processed) < len(stamps), "every frame of the burst was processed: nothing was dropped"
    harness.wait(lambda: int(harness.diagnostics[-1]["dropped_stale"]) > before,
                 "the diagnostics to count the stale drops")
    diag = harness.diagnostics[-1]
    # frames the subscription's own history (depth 10) overwrote never reach the node, so only the ones
    # it received and replaced unprocessed are counted: more than before, at most the burst's unprocessed
    assert before < int(diag["dropped_stale"]) <= before + len(stamps) - len(processed)
    assert diag["backend"] == "onnxruntime" and "default" in diag["model"]


def test_compressed_images_are_processed(harness, frames):
    import cv2

    from sensor_msgs.msg import CompressedImage

    pub = harness.node.create_publisher(CompressedImage, f"{IMAGE}/compressed",
                                        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    harness.wait(lambda: pub.get_subscription_count() >= 1, "the node's compressed-image subscription")
    ok, jpeg = cv2.imencode(".jpg", frames[28])
    stamp = harness.next_stamp()
    msg = CompressedImage(format="jpeg", data=jpeg.tobytes())
    msg.header.stamp, msg.header.frame_id = _time(stamp), "compressed_camera"
    pub.publish(msg)
    harness.wait(lambda: harness.result(stamp) is not None, "the result of the compressed image")
    result = harness.result(stamp)
    assert result.header.frame_id == "compressed_camera" and len(result.faces) == 1
    harness.node.destroy_publisher(pub)


def test_debug_image_is_annotated_and_stamped(harness, frames):
    got = {}
    sub = harness.node.create_subscription(Image, f"{NS}/debug_image", lambda m: got.setdefault("msg", m),
                                           QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    harness.wait(lambda: harness.node.get_publishers_info_by_topic(f"{NS}/debug_image") and
                 sub.get_publisher_count() >= 1, "the debug_image publisher")
    stamp = None

    def publish_until_received():
        nonlocal stamp
        if "msg" not in got:
            stamp = harness.publish(frames[27])
        harness.spin()

    wait_until(lambda: "msg" in got, TIMEOUT, publish_until_received, "a debug image")
    msg = got["msg"]
    image = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width * 3]
    assert msg.encoding == "bgr8" and (msg.width, msg.height) == (400, 300)
    assert not np.array_equal(image.reshape(300, 400, 3), frames[27]), "debug image has no drawing on it"
    harness.node.destroy_subscription(sub)


def test_node_survives_the_video_source_stopping_and_restarting(harness, ros_env, tmp_path):
    harness.node.destroy_publisher(harness.pub)  # our source goes away entirely
    for run in range(2):
        log = tmp_path / f"video_publisher_{run}.log"
        since = time.time() - 1.0
        args = ["-m", "dfer_ros.ros.video_publisher", "--ros-args", "-r", f"image:={IMAGE}",
                "-p", "max_frames:=12", "-p", "reliable:=true", "-p", "wait_for_subscribers:=1",
                "-p", f"frame_id:=video_run_{run}"]
        with ros_process(args, ros_env, log) as proc:
            def from_this_run():
                return [m for s, m in harness.outputs["faces/affect"].items()
                        if s > since and m.header.frame_id == f"video_run_{run}"]
            harness.wait(lambda: len(from_this_run()) >= 3, f"results from video publisher run {run}")
            harness.wait(lambda: proc.poll() is not None, "the video publisher to exit at the end of its frames")
            assert proc.returncode == 0, read_log(log)
    harness.wait(lambda: harness.diagnostics[-1].get("state") == "active", "a fresh diagnostics message")
