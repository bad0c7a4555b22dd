"""Helpers for tests that talk to real ROS processes over DDS: start subprocesses, wait on conditions."""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from dfer_ros.ros.processes import start_python, stop

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_until(condition: Callable[[], bool], timeout: float, step: Callable[[], None], what: str) -> None:
    """Call ``step`` (e.g. one executor spin) until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        step()


@contextmanager
def ros_process(args: list[str], env: dict, log_path: Path) -> Iterator[subprocess.Popen]:
    """Run ``python args...`` with the test ROS environment; stop it with SIGINT (clean shutdown) at exit."""
    proc = start_python(args, env, log_path, cwd=REPO)
    try:
        yield proc
    finally:
        stop(proc, timeout=10)


def read_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace") if log_path.exists() else ""


class NodeProcessProbe:
    """Base of the test nodes that talk to one ``dfer_node`` subprocess: ``spin`` once (failing with the node's
    log if it exited), ``wait`` for a condition (failing with the tail of its log). Subclasses set ``proc``,
    ``log_path`` and ``node``."""

    timeout = 60.0

    def spin(self):
        assert self.proc.poll() is None, f"dfer_node exited with {self.proc.returncode}:\n{read_log(self.log_path)}"
        import rclpy

        rclpy.spin_once(self.node, timeout_sec=0.05)

    def wait(self, condition, what, timeout=None):
        try:
            wait_until(condition, self.timeout if timeout is None else timeout, self.spin, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- node log (tail) ---\n{read_log(self.log_path)[-3000:]}") from None


def sample_frames(count: int, start: int = 0) -> list:
    """``count`` frames of the real face video (cap12, one face) from frame ``start``; skips the test if missing."""
    import cv2
    import pytest

    from dfer_ros import assets

    try:
        path = assets.sample_video()
    except assets.AssetError as exc:
        pytest.skip(f"sample video missing: {exc}")
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok, f"cannot read {path}"
        out.append(frame)
    capture.release()
    return out


def feed_face_until_result(rclpy, node, image_topic: str, output_topic: str, frame_id: str):
    """Publish a real face (skimage's astronaut) on ``image_topic`` until the node answers on ``output_topic``
    (a FaceAffectArray topic) with a tracked face and the image's frame_id; returns that message."""
    import numpy as np
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from skimage import data as skimage_data

    from dfer_ros.msg import FaceAffectArray
    from dfer_ros.ros.conversions import array_to_image

    rgb = np.ascontiguousarray(skimage_data.astronaut())
    results = []
    node.create_subscription(FaceAffectArray, output_topic, results.append,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    publisher = node.create_publisher(Image, image_topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + 60
    sent = 0
    while not any(r.faces for r in results) and time.monotonic() < deadline:
        msg = array_to_image(rgb, "rgb8")
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = frame_id
        publisher.publish(msg)
        sent += 1
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
    assert results, f"nothing on {output_topic} after {sent} images: the namespace or the remapping did not apply"
    with_face = [r for r in results if r.faces]
    assert with_face, f"{len(results)} results on {output_topic}, none with the astronaut's face"
    assert with_face[-1].header.frame_id == frame_id
    assert with_face[-1].faces[0].face_id and with_face[-1].faces[0].roi.width > 50
    return with_face[-1]
