"""launch_pytest test of ``launch/dfer.launch.py`` (runs where ROS 2 Jazzy with launch_pytest is installed).

Here (ROS from PyPI wheels) ``launch``, ``launch_ros`` and ``launch_pytest`` do not exist, so the module is
skipped with that reason. On a robot: ``colcon build --packages-select dfer_ros`` then
``colcon test --packages-select dfer_ros`` or ``python -m pytest tests/test_launch.py`` in the sourced
workspace. The test launches the node through the real launch file and checks that it activates by
itself (autostart), subscribes to the remapped image topic and publishes diagnostics.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest is not importable (ROS 2 launch/launch_ros/launch_pytest are not on "
    "PyPI; this test runs on a machine with ROS 2 Jazzy installed)")

import launch  # noqa: E402
import launch_ros  # noqa: E402,F401
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parent.parent / "launch" / "dfer.launch.py"
IMAGE_TOPIC = "/launch_test/image_raw"


@launch_pytest.fixture
def launch_description():
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
            launch_arguments={"image": IMAGE_TOPIC, "namespace": "launch_test", "debug_image": "false"}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=launch_description)
def test_node_activates_and_reports_diagnostics():
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    rclpy.init()
    try:
        node = rclpy.create_node("dfer_launch_test_probe")
        states: list[str] = []
        node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: states.extend(kv.value for s in m.status if "dfer_node" in s.name
                                    for kv in s.values if kv.key == "state"), 10)
        deadline = time.monotonic() + 60
        while "active" not in states and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert "active" in states, f"dfer_node did not become active (diagnostic states seen: {states})"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = node.get_subscriptions_info_by_topic(IMAGE_TOPIC)
            if any(i.node_name == "dfer_node" for i in info):
                break
            rclpy.spin_once(node, timeout_sec=0.1)
        info = node.get_subscriptions_info_by_topic(IMAGE_TOPIC)
        assert any(i.node_name == "dfer_node" and i.topic_type == "sensor_msgs/msg/Image" for i in info), \
            f"no dfer_node subscription of sensor_msgs/msg/Image on {IMAGE_TOPIC}: {info}"
        node.destroy_node()
    finally:
        rclpy.try_shutdown()

