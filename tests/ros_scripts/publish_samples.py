"""Publishes every sample message on topic samples/<TypeName> until interrupted (for the DDS test)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rclpy  # noqa: E402

from dfer_ros.ros.session import ros_session  # noqa: E402
from rclpy.executors import ExternalShutdownException  # noqa: E402

from message_samples import make_samples  # noqa: E402


def main() -> None:
    with ros_session(sys.argv):
        node = rclpy.create_node("dfer_sample_publisher")
        samples = make_samples()
        publishers = {name: node.create_publisher(type(msg), f"samples/{name}", 10) for name, msg in samples.items()}

        def publish_all() -> None:
            for name, msg in samples.items():
                publishers[name].publish(msg)

        node.create_timer(0.05, publish_all)
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass


if __name__ == "__main__":
    main()
