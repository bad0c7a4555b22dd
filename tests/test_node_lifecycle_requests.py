"""Every ~/change_state request, by id or by label, valid in the current state or not, gets an answer and
leaves dfer_node running (what a lifecycle manager such as nav2's sends: ids). Face ids issued after any
number of cleanup/configure cycles are new: never one seen before in the process."""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402

from dfer_ros.ros.conversions import array_to_image  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import read_log, ros_process, sample_frames, wait_until  # noqa: E402
from test_node_lifecycle import TIMEOUT, Probe  # noqa: E402

T = Transition


def _by_label(probe: Probe, label: str) -> bool:
    return probe.call(probe.change_state, ChangeState.Request(transition=Transition(label=label))).success


def _face_ids(probe: Probe, frames, stamp: list) -> set:
    """Publish real face frames until some result carries a face; the ids of those results."""
    before = len(probe.affect)
    index = [0]

    def publish_and_spin():
        stamp[0] += 0.04
        msg = array_to_image(frames[index[0] % len(frames)], "bgr8")
        index[0] += 1
        msg.header.stamp = Time(sec=int(stamp[0]), nanosec=int((stamp[0] % 1) * 1e9))
        probe.pub.publish(msg)
        probe.spin()

    wait_until(lambda: sum(bool(m.faces) for m in probe.affect[before:]) >= 3, TIMEOUT, publish_and_spin,
               "results with the face")
    return {f.face_id for m in probe.affect[before:] for f in m.faces}


def test_invalid_transitions_by_id_or_label_are_refused_and_the_node_lives_on(ros_env, tmp_path):
    ns = "/lc_requests"
    log = tmp_path / "node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", "image_qos.reliability:=reliable",
            "-p", "with_action_units:=false", "-p", "diagnostics_period:=0.3"]
    with ros_session():
        with ros_process(args, ros_env, log) as proc:
            probe = Probe(ns, proc, log)
            probe.wait(lambda: probe.state() == "active", "autostart to activate the node")
            # invalid while active, by id: configure, cleanup, activate, an unconfigured-only shutdown, unknown ids
            for transition_id in (T.TRANSITION_CONFIGURE, T.TRANSITION_CLEANUP, T.TRANSITION_ACTIVATE,
                                  T.TRANSITION_UNCONFIGURED_SHUTDOWN, 99, 255):
                assert not probe.transition(transition_id), f"transition id {transition_id} accepted while active"
                assert probe.state() == "active"
            assert not _by_label(probe, "configure") and not _by_label(probe, "no_such_transition")
            assert probe.transition(T.TRANSITION_DEACTIVATE) and probe.state() == "inactive"
            assert not probe.transition(T.TRANSITION_DEACTIVATE), "deactivate twice accepted"
            assert probe.transition(T.TRANSITION_CLEANUP) and probe.state() == "unconfigured"
            assert not probe.transition(T.TRANSITION_ACTIVATE), "activate while unconfigured accepted"
            assert not probe.transition(T.TRANSITION_CLEANUP), "cleanup while unconfigured accepted"
            assert probe.state() == "unconfigured"
            assert "refused" in read_log(log)

            # shutdown twice: the second is refused and the node still answers
            assert probe.transition(T.TRANSITION_UNCONFIGURED_SHUTDOWN) and probe.state() == "finalized"
            for transition_id in (T.TRANSITION_UNCONFIGURED_SHUTDOWN, T.TRANSITION_ACTIVE_SHUTDOWN, T.TRANSITION_CONFIGURE):
                assert not probe.transition(transition_id)
            assert not _by_label(probe, "shutdown")
            assert probe.state() == "finalized"
            probe.node.destroy_node()
        assert proc.returncode == 0, f"exit code {proc.returncode} after SIGINT:\n{read_log(log)}"
        text = read_log(log)
        assert "Traceback" not in text and "RCLError" not in text, text



def test_face_ids_after_three_cleanup_configure_cycles_are_all_new(ros_env, tmp_path):
    ns = "/lc_ids"
    log = tmp_path / "node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", "image_qos.reliability:=reliable",
            "-p", "with_action_units:=false", "-p", "autostart:=false"]
    frames = sample_frames(12)
    stamp = [time.time() - 3600.0]
    with ros_session():
        with ros_process(args, ros_env, log) as proc:
            probe = Probe(ns, proc, log)
            seen: list[set] = []
            for cycle in range(4):
                assert probe.transition(T.TRANSITION_CONFIGURE) and probe.transition(T.TRANSITION_ACTIVATE)
                probe.wait(lambda: probe.pub.get_subscription_count() >= 1, "the image subscription")
                ids = _face_ids(probe, frames, stamp)
                for old in seen:
                    assert not ids & old, f"cycle {cycle}: face ids {sorted(ids & old)} were issued before"
                seen.append(ids)
                assert probe.transition(T.TRANSITION_DEACTIVATE) and probe.transition(T.TRANSITION_CLEANUP)

            probe.node.destroy_node()
        assert proc.returncode == 0, f"exit code {proc.returncode} after SIGINT:\n{read_log(log)}"
