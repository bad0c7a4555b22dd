"""dfer_node ends cleanly on any SIGINT/SIGTERM sequence: exit code 0, no traceback, no error-level log and
no "publisher's context is invalid" warning. Covered: a signal while the autostart configure loads the model
(repeated), two SIGINTs within 0.3 s while frames are being processed (what ``ros2 launch`` sends without a
terminal), and SIGTERM then SIGINT. The node runs as a subprocess over real DDS with real face frames."""
from __future__ import annotations

import signal
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.msg import FaceAffectArray  # noqa: E402
from dfer_ros.ros.conversions import array_to_image  # noqa: E402
from dfer_ros.ros.processes import start_python, wait_for_exit  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import REPO, read_log, sample_frames, wait_until  # noqa: E402

TIMEOUT = 60.0
BAD_WORDS = ("Traceback", "[ERROR]", "context is invalid", "RCLError", "KeyboardInterrupt")


def _assert_clean_exit(proc, log) -> None:
    code = wait_for_exit(proc, TIMEOUT)
    if code is None:
        proc.kill()
        proc.wait()
    text = read_log(log)
    assert code == 0, f"exit code {code}:\n{text}"
    for word in BAD_WORDS:
        assert word not in text, f"{word!r} in the node log:\n{text}"


def _start(ns: str, ros_env, log):
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", "image_qos.reliability:=reliable"]
    # MediaPipe's own "InitGoogle" line marks configure loading the landmarker: let it through (dfer_ros.native_logs)
    return start_python(args, dict(ros_env, DFER_NATIVE_LOGS="1"), log, cwd=REPO)


@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGINT, signal.SIGINT), (signal.SIGTERM,)],
                         ids=["sigint", "double-sigint", "sigterm"])
def test_a_signal_during_the_autostart_configure_exits_cleanly(ros_env, tmp_path, signals):
    """Three runs whose signals land while configure loads the model (MediaPipe's landmarker announces itself
    in the log during configure; a run where configure had already finished does not count)."""
    hits = 0
    for run in range(8):
        log = tmp_path / f"node_{run}.log"
        proc = _start(f"/shutdown_configure_{run}", ros_env, log)
        try:
            wait_until(lambda: "InitGoogle" in read_log(log) or proc.poll() is not None, TIMEOUT,
                       lambda: time.sleep(0.002), "the landmarker loading during configure")
            for sig in signals:
                proc.send_signal(sig)
                time.sleep(0.1)
            _assert_clean_exit(proc, log)
            hits += "active: processing images" not in read_log(log)  # stopped before it was activated
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if hits == 3:
            break
    assert hits == 3, f"only {hits} of {run + 1} runs were signalled during configure"


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT)],
                         ids=["double-sigint", "sigterm-sigint"])
def test_signals_while_frames_are_processed_exit_cleanly(ros_env, tmp_path, signals):
    ns = "/shutdown_busy"
    log = tmp_path / "node.log"
    frames = sample_frames(20)
    with ros_session():
        probe = rclpy.create_node("shutdown_busy_probe")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub = probe.create_publisher(Image, f"{ns}/image", reliable)
        results: list = []
        probe.create_subscription(FaceAffectArray, f"{ns}/faces/affect", results.append, reliable)
        proc = _start(ns, ros_env, log)
        try:
            stamp = [time.time() - 100.0]

            def publish_and_spin():
                assert proc.poll() is None, read_log(log)
                stamp[0] += 0.04
                msg = array_to_image(frames[len(results) % len(frames)], "bgr8")
                msg.header.stamp = Time(sec=int(stamp[0]), nanosec=int((stamp[0] % 1) * 1e9))
                pub.publish(msg)
                rclpy.spin_once(probe, timeout_sec=0.01)

            wait_until(lambda: sum(bool(m.faces) for m in results) >= 5, TIMEOUT, publish_and_spin,
                       "results with the face")
            for _ in range(5):  # keep the worker busy: frames in flight when the signals land
                publish_and_spin()
            for sig in signals:
                proc.send_signal(sig)
                time.sleep(0.1)  # two signals within 0.3 s
            _assert_clean_exit(proc, log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        probe.destroy_node()
