"""launch_pytest test of ``launch/dfer.launch.py`` (runs where ROS 2 Jazzy with launch_pytest is installed).

Here (ROS from PyPI wheels) ``launch``, ``launch_ros`` and ``launch_pytest`` do not exist, so the module is
skipped with that reason. On a robot: ``colcon build --packages-select dfer_ros`` then
``colcon test --packages-select dfer_ros`` or ``python -m pytest tests/test_launch.py`` in the sourced
workspace. The tests launch the node through the real launch file and check that it activates by itself
(autostart), subscribes to the remapped image topic, answers images fed to that topic on its namespaced output
``/launch_test/faces/affect`` with the face in them, and that Ctrl-C on ``dfer_demo.launch.py`` ends the launch
with exit code 0 (the publisher's exit after the shutdown must not trigger a second one). What can be checked
without ROS 2's launch packages is in tests/test_launch_files.py.
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

LAUNCH_DIR = Path(__file__).resolve().parent.parent / "launch"
LAUNCH_FILE = LAUNCH_DIR / "dfer.launch.py"
IMAGE_TOPIC = "/launch_test/image_raw"
OUTPUT_TOPIC = "/launch_test/faces/affect"  # the node's relative faces/affect under namespace launch_test


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
        from ros_helpers import feed_face_until_result

        feed_face_until_result(rclpy, node, IMAGE_TOPIC, OUTPUT_TOPIC, "launch_test_camera")
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_demo_launch_ctrl_c_exits_0(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) on dfer_demo.launch.py: exit code 0 and no
    "Cannot shutdown a ROS adapter that is not running" from a second Shutdown."""
    import os
    import signal
    import subprocess
    import sys

    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = Path(get_package_share_directory("dfer_ros"))
    except PackageNotFoundError:
        pytest.skip("dfer_ros is not installed in a sourced workspace (colcon build; source install/setup.bash)")
    script = ("import sys, launch\n"
              "from launch.launch_description_sources import PythonLaunchDescriptionSource\n"
              "description = launch.LaunchDescription([launch.actions.IncludeLaunchDescription(\n"
              f"    PythonLaunchDescriptionSource({str(share / 'launch' / 'dfer_demo.launch.py')!r}),\n"
              "    launch_arguments={'loop': 'true', 'debug_image': 'false'}.items())])\n"
              "service = launch.LaunchService(argv=[])\n"
              "service.include_launch_description(description)\n"
              "sys.exit(service.run())\n")
    log = tmp_path / "launch.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    rclpy.init()
    try:
        probe = rclpy.create_node("dfer_demo_launch_probe")
        states = []
        probe.create_subscription(DiagnosticArray, "/diagnostics", lambda m: states.extend(
            kv.value for s in m.status if "/demo/dfer_node" in s.name for kv in s.values if kv.key == "state"), 10)
        deadline = time.monotonic() + 90
        while "active" not in states and time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(probe, timeout_sec=0.1)
        assert "active" in states, f"the demo's dfer_node did not become active:\n{log.read_text()[-3000:]}"
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
        probe.destroy_node()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        rclpy.try_shutdown()
    text = log.read_text()
    assert "Cannot shutdown a ROS adapter" not in text and "Caught exception" not in text, text[-3000:]
    assert code == 0, f"launch exit code {code}:\n{text[-3000:]}"
