"""video_publisher in-process: frames of a file become bgr8 Images with node-clock stamps, at most
``max_frames``, looping when asked, with the configured frame_id; the end of the file is reported."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.ros.conversions import image_to_array, stamp_to_seconds  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from dfer_ros.ros.video_publisher import VideoPublisher  # noqa: E402
from ros_helpers import wait_until  # noqa: E402


def _video(path, count=3, size=(64, 48)):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 50.0, size)
    for i in range(count):
        writer.write(np.full((size[1], size[0], 3), 40 + 80 * i, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("loop, max_frames, expected", [(False, 0, 3), (True, 7, 7)])
def test_video_frames_are_published_with_stamps(tmp_path, loop, max_frames, expected):
    video = _video(tmp_path / "three.mp4")
    received: list = []
    with ros_session():
        publisher = VideoPublisher(parameter_overrides=[
            Parameter("video", value=str(video)), Parameter("loop", value=loop),
            Parameter("max_frames", value=max_frames), Parameter("frame_id", value="test_cam"),
            Parameter("reliable", value=True), Parameter("wait_for_subscribers", value=1)])
        listener = rclpy.create_node("video_listener")
        listener.create_subscription(Image, "image", received.append,
                                     QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        executor = SingleThreadedExecutor()
        executor.add_node(publisher)
        executor.add_node(listener)
        wait_until(lambda: publisher.finished and len(received) >= expected, 30,
                   lambda: executor.spin_once(timeout_sec=0.05), f"{expected} frames and the end of the video")
        for _ in range(5):  # nothing more arrives after the end
            executor.spin_once(timeout_sec=0.02)
        assert publisher.rate == pytest.approx(50.0)
        publisher.capture.release()
        executor.shutdown()
        publisher.destroy_node()
        listener.destroy_node()
    assert len(received) == expected and publisher.frames_sent == expected
    stamps = [stamp_to_seconds(m.header.stamp) for m in received]
    assert all(b > a for a, b in zip(stamps, stamps[1:])) and stamps[0] > 1e9  # real (wall) clock stamps
    assert {m.header.frame_id for m in received} == {"test_cam"}
    frames = [image_to_array(m)[0] for m in received]
    assert all(m.encoding == "bgr8" and f.shape == (48, 64, 3) for m, f in zip(received, frames))
    means = [int(f.mean()) for f in frames]
    assert means[0] < means[1] < means[2]  # file order
    if loop:
        assert abs(means[3] - means[0]) <= 3  # back to the first frame after the end
