"""Every custom message goes from one process to another over real DDS with its fields intact."""
from __future__ import annotations

import pytest

from message_samples import make_samples
from ros_helpers import REPO, read_log, ros_process, wait_until

from dfer_ros.ros.session import ros_session

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")


def test_messages_import_without_environment():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import rclpy, dfer_ros.msg; print(dfer_ros.msg.FaceAffectArray.__name__)"],
                            env={"PATH": "/usr/bin:/bin"}, cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FaceAffectArray"


def test_every_message_type_crosses_processes_intact(ros_env, tmp_path):
    expected = make_samples()
    received: dict = {}
    log = tmp_path / "publisher.log"
    with ros_session():
        node = rclpy.create_node("dfer_sample_listener")
        for name, msg in expected.items():
            node.create_subscription(type(msg), f"samples/{name}",
                                     lambda m, name=name: received.setdefault(name, m), 10)
        with ros_process([str(REPO / "tests" / "ros_scripts" / "publish_samples.py")], ros_env, log) as proc:
            def spin_once():
                assert proc.poll() is None, f"publisher exited early:\n{read_log(log)}"
                rclpy.spin_once(node, timeout_sec=0.1)

            wait_until(lambda: len(received) == len(expected), 30, spin_once,
                       f"all {len(expected)} message types (got {sorted(received)})")
        node.destroy_node()
    for name, msg in expected.items():
        assert received[name] == msg, f"{name} changed in transit: {received[name]} != {msg}"
    assert received["FaceAffect"].expression.labels[4] == "happiness"
    assert list(received["FaceAffect"].action_units.active) == [False, True, True]
    assert received["FaceAffect"].quality.yaw == -62.5 and received["FaceAffect"].abstained
    events = received["ExpressionEventArray"].events
    assert [e.kind for e in events] == [rclpy_msg().ExpressionEvent.ONSET, rclpy_msg().ExpressionEvent.OFFSET]
    assert events[1].offset.sec == 1700000001 and events[1].end_reason == "relaxed"


def test_samples_cover_every_message_file():
    from message_samples import make_samples

    names = {p.stem for p in (REPO / "msg").glob("*.msg")}
    assert names == set(make_samples()), f"msg/ and the samples differ: {sorted(names ^ set(make_samples()))}"


def rclpy_msg():
    from dfer_ros import msg

    return msg
