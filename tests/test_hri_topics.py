"""REP-155 (ROS4HRI) output of dfer_node over real DDS, against the real hri_msgs 2.0.0.

``hri_msgs`` has no wheel; ``make setup`` builds it from the upstream sources in ../shared/ros2_sources into a
prefix of its own (tests/ros2_stack.py; a robot's installed package is used where it is importable, and the tests
skip with the reason where neither exists). The node runs as a subprocess with
``hri.enabled:=true``; this process feeds it real face frames (cap12) with stamps it chooses, then blank frames
until the face ends, and checks that /humans/faces/tracked and the per-face topics appear and disappear with the
face, carrying the same values as the node's own faces/affect message for the same image, and that a lifecycle
deactivate withdraws them (an empty tracked list).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from dfer_ros.ros.hri_publisher import AU_CODES, au_code, facs_arrays, rep155_expression

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/hri_itest"
IMAGE = f"{NS}/camera/image"
TIMEOUT = 60.0


# --- the mapping, without ROS ------------------------------------------------------------------------------
def test_expression_labels_map_to_the_hri_msgs_constants():
    expected = {"angry": "angry", "disgust": "disgusted", "fear": "scared", "happy": "happy", "sad": "sad",
                "surprise": "surprised", "neutral": "neutral", "Happiness": "happy", "Anger": "angry",
                "Disappointment": "disappointed", "contempt": "contempt", "joy": "happy", "Other": "other", "": ""}
    assert {label: rep155_expression(label) for label in expected} == expected


def test_facs_arrays_are_indexed_by_au_code():
    assert [au_code(n) for n in ("AU1", "AU12", "au 26", "AU04", "AU99", "blink")] == [1, 12, 26, 4, None, None]
    intensity, confidence = facs_arrays(["AU1", "AU12", "AU25", "mouth_open"], [0.2, 0.9, float("nan"), 1.0])
    assert len(intensity) == len(confidence) == AU_CODES
    assert intensity[1] == pytest.approx(0.2) and confidence[1] == pytest.approx(0.6)
    assert intensity[12] == pytest.approx(0.9) and confidence[12] == pytest.approx(0.8)
    assert intensity[25] == 0.0 and confidence[25] == 0.0  # NaN: not estimated
    assert sum(1 for c in confidence if c) == 2


# --- over DDS ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hri_prefix():
    import ros2_stack

    return ros2_stack.hri_msgs_prefix(pytest)


@pytest.fixture(scope="module")
def frames():
    from ros_helpers import sample_frames

    return sample_frames(12)


def test_faces_appear_and_disappear_on_the_rep155_topics(ros_env, hri_prefix, frames, tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    import ros2_stack
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dfer_ros.msg import FaceAffectArray
    from dfer_ros.ros.conversions import array_to_image, stamp_to_seconds
    from dfer_ros.ros.session import ros_session
    from ros_helpers import read_log, ros_process, wait_until

    hri = ros2_stack.import_hri_msgs(hri_prefix)
    log_path = tmp_path / "dfer_node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={NS}", "-r", f"image:={IMAGE}",
            "-p", "hri.enabled:=true", "-p", "image_qos.reliability:=reliable", "-p", "image_qos.depth:=10",
            "-p", "tracking.lost_seconds:=0.5"]
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    with ros_session(), ros_process(args, ros2_stack.hri_env(hri_prefix, ros_env), log_path) as proc:
        node = rclpy.create_node("dfer_hri_probe")
        affect, tracked, expressions, facs = {}, {}, {}, {}
        node.create_subscription(FaceAffectArray, f"{NS}/faces/affect",
                                 lambda m: affect.__setitem__(stamp_to_seconds(m.header.stamp), m), reliable)
        tracked_in_order = []
        node.create_subscription(hri.IdsList, "/humans/faces/tracked", lambda m: (
            tracked.__setitem__(stamp_to_seconds(m.header.stamp), m), tracked_in_order.append(m)), reliable)
        image_pub = node.create_publisher(Image, IMAGE, reliable)
        stamp = [time.time() - 3600.0]

        def spin():
            assert proc.poll() is None, f"dfer_node exited with {proc.returncode}:\n{read_log(log_path)}"
            rclpy.spin_once(node, timeout_sec=0.05)

        def wait(condition, what, timeout=TIMEOUT):
            try:
                wait_until(condition, timeout, spin, what)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- node log (tail) ---\n{read_log(log_path)[-3000:]}") from None

        def process(frame, step=0.04):
            """Publish one frame; wait for its faces/affect and /humans/faces/tracked messages."""
            stamp[0] = round(stamp[0] + step, 6)
            msg = array_to_image(frame, "bgr8")
            sec = int(stamp[0])
            msg.header.stamp = Time(sec=sec, nanosec=int(round((stamp[0] - sec) * 1e9)))
            msg.header.frame_id = "hri_camera"
            image_pub.publish(msg)
            s = stamp[0]
            wait(lambda: s in affect and s in tracked, f"faces/affect and /humans/faces/tracked for stamp {s}")
            return s

        def publishers(topic):
            return [i for i in node.get_publishers_info_by_topic(topic) if i.node_name == "dfer_node"]

        wait(lambda: image_pub.get_subscription_count() >= 1, "dfer_node to subscribe to the images", timeout=120)
        # a real face: it gets an id, and its per-face topics appear
        face_id = None
        for frame in frames[:8]:
            s = process(frame)
            if affect[s].faces:
                face_id = affect[s].faces[0].face_id
        assert face_id, "no face tracked in the real video frames"
        assert list(tracked[s].ids) == [f.face_id for f in affect[s].faces] == [face_id]
        assert tracked[s].header.frame_id == "hri_camera"
        expression_topic, facs_topic = f"/humans/faces/{face_id}/expression", f"/humans/faces/{face_id}/facs"
        wait(lambda: publishers(expression_topic) and publishers(facs_topic), "the per-face topics to appear")
        assert publishers(expression_topic)[0].topic_type == "hri_msgs/msg/Expression"
        assert publishers(facs_topic)[0].topic_type == "hri_msgs/msg/FacialActionUnits"
        sub_e = node.create_subscription(hri.Expression, expression_topic,
                                         lambda m: expressions.__setitem__(stamp_to_seconds(m.header.stamp), m), reliable)
        sub_f = node.create_subscription(hri.FacialActionUnits, facs_topic,
                                         lambda m: facs.__setitem__(stamp_to_seconds(m.header.stamp), m), reliable)
        wait(lambda: sub_e.get_publisher_count() >= 1 and sub_f.get_publisher_count() >= 1,
             "our per-face subscriptions to match")
        constants = {getattr(hri.Expression, c) for c in dir(hri.Expression)
                     if c.isupper() and isinstance(getattr(hri.Expression, c), str)}
        assert {"neutral", "happy", "surprised", "scared", "disgusted"} <= constants
        # the per-face values are the node's own results for the same image
        checked = 0
        for frame in frames[8:12]:
            s = process(frame)
            if not affect[s].faces:
                continue
            wait(lambda: s in expressions and s in facs, f"expression and facs of {face_id} for stamp {s}")
            face, e, f = affect[s].faces[0], expressions[s], facs[s]
            assert face.face_id == face_id
            assert e.expression == rep155_expression(face.expression.expression)
            assert e.expression in constants, f"{e.expression!r} is none of the hri_msgs/Expression constants"
            assert e.valence == pytest.approx(face.valence_arousal.valence, abs=1e-6)
            assert e.arousal == pytest.approx(face.valence_arousal.arousal, abs=1e-6)
            assert e.confidence == pytest.approx(face.expression.confidence, abs=1e-6)
            assert len(f.intensity) == len(f.confidence) == AU_CODES
            assert face.action_units.names, "the default model estimates action units"
            for name, p in zip(face.action_units.names, face.action_units.probabilities):
                assert f.intensity[au_code(name)] == pytest.approx(p, abs=1e-6), name
                assert f.confidence[au_code(name)] == pytest.approx(abs(2 * p - 1), abs=1e-6), name
            assert f.intensity[hri.FacialActionUnits.LIP_CORNER_PULLER] == pytest.approx(
                dict(zip(face.action_units.names, face.action_units.probabilities))["AU12"], abs=1e-6)
            checked += 1
        assert checked >= 3
        # REP-155 persons: the face's person id (re-identification) is tracked, and its face_id topic names the face
        persons = {}
        sub_p = node.create_subscription(hri.IdsList, "/humans/persons/tracked",
                                         lambda m: persons.__setitem__(stamp_to_seconds(m.header.stamp), m), reliable)
        wait(lambda: sub_p.get_publisher_count() >= 1, "/humans/persons/tracked to match")
        s = process(frames[11])
        wait(lambda: s in persons, f"/humans/persons/tracked for stamp {s}")
        person_id = affect[s].faces[0].person_id
        assert person_id and list(persons[s].ids) == [person_id]
        # ... and known to the system (/humans/persons/known: in view or not)
        known = {}
        sub_k = node.create_subscription(hri.IdsList, "/humans/persons/known",
                                         lambda m: known.__setitem__(stamp_to_seconds(m.header.stamp), m), reliable)
        wait(lambda: sub_k.get_publisher_count() >= 1, "/humans/persons/known to match")
        s = process(frames[-1])
        wait(lambda: s in known, f"/humans/persons/known for stamp {s}")
        assert list(known[s].ids) == [person_id]
        from rclpy.qos import DurabilityPolicy
        from std_msgs.msg import String

        face_ids = []
        node.create_subscription(String, f"/humans/persons/{person_id}/face_id", lambda m: face_ids.append(m.data),
                                 QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        wait(lambda: face_ids, f"the latched /humans/persons/{person_id}/face_id")
        assert face_ids[-1] == face_id
        # lifecycle deactivate: every face ends for REP-155 consumers (empty list, per-face topics withdrawn)
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        change_state = node.create_client(ChangeState, f"{NS}/dfer_node/change_state")
        wait(change_state.service_is_ready, "the lifecycle change_state service")

        def transition(transition_id):
            future = change_state.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
            wait(future.done, f"lifecycle transition {transition_id}")
            assert future.result().success, transition_id

        seen_before = len(tracked_in_order)
        transition(Transition.TRANSITION_DEACTIVATE)
        wait(lambda: any(not m.ids for m in tracked_in_order[seen_before:]), "an empty tracked list on deactivate")
        wait(lambda: not publishers(expression_topic) and not publishers(facs_topic),
             "the per-face topics to be withdrawn on deactivate")
        transition(Transition.TRANSITION_ACTIVATE)
        for frame in frames[:4]:
            s = process(frame)
        assert affect[s].faces and list(tracked[s].ids) == [f.face_id for f in affect[s].faces]
        face_id = affect[s].faces[0].face_id
        expression_topic, facs_topic = f"/humans/faces/{face_id}/expression", f"/humans/faces/{face_id}/facs"
        wait(lambda: publishers(expression_topic) and publishers(facs_topic), "the per-face topics after activate")
        # no face any more: after tracking.lost_seconds of stamp time the face ends and its topics go away
        blank = np.zeros_like(frames[0])
        for _ in range(3):
            s = process(blank, step=0.4)
        assert affect[s].faces == [] and list(tracked[s].ids) == []
        wait(lambda: not publishers(expression_topic) and not publishers(facs_topic),
             "the per-face topics of the ended face to disappear")
        assert publishers("/humans/faces/tracked"), "the tracked list stays advertised"
        node.destroy_node()
    assert proc.returncode == 0, f"dfer_node exit code {proc.returncode} after SIGINT:\n{read_log(log_path)}"


def test_enabled_without_hri_msgs_is_reported_not_fatal(monkeypatch):
    from dfer_ros.ros import hri_publisher

    monkeypatch.setattr(hri_publisher, "hri_msgs_available", lambda: False)
    assert hri_publisher.create_if_enabled(object(), True) is None
    assert hri_publisher.missing_parts(True, None) == (hri_publisher.UNAVAILABLE,)
    assert "hri_msgs" in hri_publisher.UNAVAILABLE
    assert hri_publisher.missing_parts(False, None) == ()
    assert hri_publisher.create_if_enabled(object(), False) is None


def test_node_without_hri_msgs_runs_and_says_why_in_diagnostics(ros_env, tmp_path):
    """hri.enabled with no hri_msgs (this venv): the node still activates, and /diagnostics names the reason."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    from diagnostic_msgs.msg import DiagnosticArray

    from dfer_ros.ros.diagnostics import diagnostic_values
    from dfer_ros.ros.session import ros_session
    from ros_helpers import read_log, ros_process, wait_until

    env = {k: v for k, v in ros_env.items() if k != "PYTHONPATH"}  # no stand-in hri_msgs for this process
    log_path = tmp_path / "dfer_node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", "__ns:=/hri_missing", "-p", "hri.enabled:=true",
            "-p", "diagnostics_period:=0.5"]
    with ros_session(), ros_process(args, env, log_path) as proc:
        node = rclpy.create_node("dfer_hri_missing_probe")
        seen = []
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: seen.append(diagnostic_values(m))
                                 if m.status and m.status[0].name.startswith("/hri_missing/dfer_node") else None, 10)

        def spin():
            assert proc.poll() is None, f"dfer_node exited with {proc.returncode}:\n{read_log(log_path)}"
            rclpy.spin_once(node, timeout_sec=0.1)

        wait_until(lambda: any(d.get("state") == "active" for d in seen), 120, spin, "the node to become active")
        active = [d for d in seen if d.get("state") == "active"][-1]
        assert "hri_msgs" in active.get("missing_parts", ""), active
        assert not node.get_publishers_info_by_topic("/humans/faces/tracked")
        node.destroy_node()
    assert "hri_msgs" in read_log(log_path)
    assert proc.returncode == 0


def test_the_real_hri_msgs_agrees_with_the_publisher(hri_prefix):
    """Against the real hri_msgs 2.0.0: FacialActionUnits has fixed float32[99] arrays (the publisher fills 99), and
    every label of the two shipped models (face-api's, FER2013's) is published as one of hri_msgs/Expression's
    string constants."""
    import ros2_stack

    hri = ros2_stack.import_hri_msgs(hri_prefix)
    fields = hri.FacialActionUnits.get_fields_and_field_types()
    assert fields["intensity"] == fields["confidence"] == f"float[{AU_CODES}]"
    constants = {value for name, value in vars(hri.Expression).items()
                 if name.isupper() and isinstance(value, str)}
    from dfer_ros import vocabulary

    ours = {rep155_expression(label) for label in vocabulary.FACEAPI_EXPRESSION_LABELS + vocabulary.FER2013_LABELS}
    assert len(ours) == 7 and ours <= constants, sorted(ours - constants)
