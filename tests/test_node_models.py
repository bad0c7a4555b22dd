"""dfer_node with a CLIP-adapter model given by its config YAML (``model:=models/tiny_test.yaml``, torch
backend): the model-path branch of the node end to end, on frames of the real face video."""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
pytest.importorskip("torch", reason="the CLIP-adapter config model runs on the torch backend")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.msg import FaceAffectArray  # noqa: E402
from dfer_ros.ros.conversions import array_to_image  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import REPO, read_log, ros_process, wait_until  # noqa: E402


def test_clip_adapter_config_model_in_the_node(ros_env, tmp_path):
    import cv2

    from dfer_ros import assets

    config = REPO / "models" / "tiny_test.yaml"
    if not config.is_file():
        pytest.skip(f"{config} is missing")
    try:
        capture = cv2.VideoCapture(str(assets.sample_video()))
    except assets.AssetError as exc:
        pytest.skip(f"sample video missing: {exc}")
    frames = [capture.read()[1] for _ in range(12)]
    capture.release()
    ns, log = "/clip_model", tmp_path / "node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", f"model:={config}",
            "-p", "backend:=torch", "-p", "image_qos.reliability:=reliable"]
    with ros_session():
        node = rclpy.create_node("dfer_clip_probe")
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(Image, f"{ns}/image", reliable)
        results: list = []
        sub = node.create_subscription(FaceAffectArray, f"{ns}/faces/affect", results.append, reliable)
        with ros_process(args, ros_env, log) as proc:
            def spin():
                assert proc.poll() is None, f"dfer_node exited:\n{read_log(log)}"
                rclpy.spin_once(node, timeout_sec=0.05)

            wait_until(lambda: pub.get_subscription_count() >= 1 and sub.get_publisher_count() >= 1, 150, spin,
                       "the node to configure the CLIP model")
            sent = [0]

            def publish_next():  # one frame at a time: the next goes out when the previous got its result
                if len(results) >= sent[0]:
                    msg = array_to_image(frames[sent[0] % len(frames)], "bgr8")
                    msg.header.stamp = Time(sec=100 + sent[0] // 25, nanosec=(sent[0] % 25) * 40_000_000)
                    pub.publish(msg)
                    sent[0] += 1
                spin()

            wait_until(lambda: any(r.faces for r in results), 90, publish_next, "a result with a face")
            node.destroy_node()
        assert proc.returncode == 0, read_log(log)
    face = next(r for r in results if r.faces).faces[0]
    labels = list(face.expression.labels)
    assert labels and all(label == label.lower() for label in labels)
    assert face.expression.expression in labels
    assert sum(face.expression.probabilities) == pytest.approx(1.0, abs=1e-3)
    assert "clip" in read_log(log)
