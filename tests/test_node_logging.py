"""Logging of the node: the core's Python ``logging`` records reach the ROS logger (level, node name, /rosout)
and are counted in diagnostics; MediaPipe's native stderr lines are kept out of the terminal unless asked for."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from ros_helpers import wait_until


def test_core_warning_reaches_rosout_with_level_and_node_name():
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from dfer_ros.ros.log_bridge import RosLogBridge
    from dfer_ros.ros.session import ros_session

    with ros_session([]):
        node = rclpy.create_node("log_bridge_probe", namespace="/log_test")
        got, counted = [], []
        node.create_subscription(Log, "/rosout", got.append, QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        bridge = RosLogBridge(node.get_logger(), on_warning=counted.append)
        try:
            core = logging.getLogger("dfer_ros.perception.front_end")
            core.debug("below the ROS level: not sent")
            core.warning("detector runs are %.2f s apart", 1.84)
            wait_until(lambda: any("detector runs" in m.msg for m in got), 20,
                       lambda: rclpy.spin_once(node, timeout_sec=0.05), "the warning on /rosout")
        finally:
            bridge.close()
            node.destroy_node()
    (msg,) = [m for m in got if "detector runs" in m.msg]
    assert msg.level == Log.WARN and msg.name == "log_test.log_bridge_probe"
    assert msg.msg == "[perception.front_end] detector runs are 1.84 s apart"
    assert not any("below the ROS level" in m.msg for m in got)
    assert [r.levelno for r in counted] == [logging.WARNING]
    assert logging.getLogger("dfer_ros").propagate  # detached: as it was


def test_bridge_follows_the_ros_level_and_restores_the_logger():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    from rclpy.logging import LoggingSeverity, get_logger

    from dfer_ros.ros.log_bridge import RosLogBridge

    ros_logger = get_logger("log_bridge_level_probe")
    ros_logger.set_level(LoggingSeverity.DEBUG)
    python_logger = logging.getLogger("dfer_ros")
    before = (python_logger.level, python_logger.propagate, list(python_logger.handlers))
    bridge = RosLogBridge(ros_logger)
    assert python_logger.level == logging.DEBUG and not python_logger.propagate
    bridge.close()
    assert (python_logger.level, python_logger.propagate, list(python_logger.handlers)) == before


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


CAPTURE = """
    import logging, os, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(levelname)s %(message)s")
    from dfer_ros.native_logs import native_stderr_to_log
    with native_stderr_to_log(logging.getLogger("dfer_ros.t"), "native"):
        os.write(2, b"W0000 native chatter\\n")
    os.write(2, b"after\\n")
"""


def test_native_stderr_goes_to_debug_log_unless_switched_on():
    quiet = _run(CAPTURE, DFER_NATIVE_LOGS="")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "after\n"
    assert "DEBUG native: W0000 native chatter" in quiet.stdout
    shown = _run(CAPTURE, DFER_NATIVE_LOGS="1")
    assert shown.stderr == "W0000 native chatter\nafter\n" and "native:" not in shown.stdout


def test_mediapipe_landmarker_prints_nothing_to_stderr():
    """The real MediaPipe Face Landmarker (as the default model loads it): its W0000/INFO lines stay off stderr."""
    pytest.importorskip("mediapipe", reason="mediapipe is not installed; run make setup")
    code = """
        import sys
        from dfer_ros.estimators.blendshape_aus import BlendshapeActionUnits
        model = BlendshapeActionUnits()
        print("created", flush=True)
    """
    quiet = _run(code, DFER_NATIVE_LOGS="")
    assert quiet.returncode == 0 and "created" in quiet.stdout, quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    shown = _run(code, DFER_NATIVE_LOGS="1")
    assert "inference_feedback_manager" in shown.stderr or "TensorFlow Lite" in shown.stderr, shown.stderr
