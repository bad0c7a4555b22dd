"""The real ``ros2`` command line tools (ros2cli 0.32.2: ros2run, ros2lifecycle, ros2param, ros2service, ros2topic)
against dfer_node, typed as a user types them (``--no-daemon`` so that no daemon outlives the test; each call
discovers the graph itself and is repeated while it says the node is not found yet).

The node is started with ``ros2 run dfer_ros dfer_node`` (autostart off, REP-155 on, with the real hri_msgs built
from ../shared/ros2_sources) and driven through its lifecycle with ``ros2 lifecycle set``; this process feeds it a
real face (skimage's astronaut) so that ``ros2 topic echo --once`` has faces to show on ``faces/affect`` and on the
six REP-155 topics, and ``ros2 topic hz`` a rate to measure. The tests run in file order: the lifecycle first.
"""
from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

import ros2_stack

ros2_stack.require(pytest, "ros2cli", "ros2param", "ros2lifecycle", "ros2topic", "ros2service", "ros2run")

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/cli"
NODE = f"{NS}/dfer_node"
IMAGE = f"{NS}/camera/image"


@pytest.fixture(scope="module")
def env(ros_env):
    return ros2_stack.hri_env(ros2_stack.hri_msgs_prefix(pytest), ros2_stack.ros2_env(ros_env))


@pytest.fixture(scope="module")
def node_process(env, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("ros2_cli") / "dfer_node.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [ros2_stack.ros2_executable(), "run", "dfer_ros", "dfer_node", "--ros-args", "-r", f"__ns:={NS}",
             "-r", f"image:={IMAGE}", "-p", "autostart:=false", "-p", "hri.enabled:=true"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log_path
    finally:
        ros2_stack.stop_group(proc)


@pytest.fixture
def ros2(node_process, env):
    """``ros2(*args)`` -> its output (stdout and stderr); fails with the node's log if the node has died."""
    proc, log_path = node_process

    def run(*args, timeout: float = 90.0) -> str:
        assert proc.poll() is None, f"dfer_node exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
        result = ros2_stack.run_ros2(list(args), env, timeout=timeout)
        return result.stdout

    return run


def test_ros2_lifecycle_get_and_set(ros2):
    assert ros2("lifecycle", "get", NODE, "--no-daemon").strip() == "unconfigured [1]"
    assert "Transitioning successful" in ros2("lifecycle", "set", NODE, "configure", "--no-daemon")
    assert ros2("lifecycle", "get", NODE, "--no-daemon").strip() == "inactive [2]"
    assert "Transitioning successful" in ros2("lifecycle", "set", NODE, "activate", "--no-daemon")
    assert ros2("lifecycle", "get", NODE, "--no-daemon").strip() == "active [3]"


def test_ros2_service_call_of_an_invalid_transition_id_is_refused(ros2, node_process):
    out = ros2("service", "call", f"{NODE}/change_state", "lifecycle_msgs/srv/ChangeState", "{transition: {id: 99}}")
    assert "success=False" in out, out
    assert ros2("lifecycle", "get", NODE, "--no-daemon").strip() == "active [3]"
    log = node_process[1].read_text()
    assert "lifecycle transition id 99 refused" in log, log[-2000:]


def test_ros2_param_list_and_describe(ros2):
    names = {line.strip() for line in ros2("param", "list", NODE, "--no-daemon").splitlines()}
    assert {"au_threshold", "model", "backend", "hri.enabled", "publish_debug_image", "use_sim_time"} <= names
    described = ros2("param", "describe", NODE, "au_threshold", "--no-daemon")
    assert "Type: double" in described and "Min value: 0.0" in described and "Max value: 1.0" in described, described
    assert "Read only: true" in ros2("param", "describe", NODE, "model", "--no-daemon")


@pytest.mark.parametrize("value, answer", [
    ("0.7", "Set parameter successful"),
    ("1.5", "Setting parameter failed: Parameter au_threshold out of range Min: 0.0, Max: 1.0, value: 1.5"),
    ("hello", "Setting parameter failed: Wrong parameter type, expected 'Type.DOUBLE' got 'Type.STRING'"),
], ids=["valid", "out of range", "wrong type"])
def test_ros2_param_set(ros2, value, answer):
    before = ros2("param", "get", NODE, "au_threshold", "--no-daemon").strip()
    out = ros2("param", "set", NODE, "au_threshold", value, "--no-daemon")
    assert answer in out, out
    after = ros2("param", "get", NODE, "au_threshold", "--no-daemon").strip()
    assert after == ("Double value is: 0.7" if value == "0.7" else before), after


def test_ros2_param_set_of_a_read_only_parameter_is_refused(ros2):
    out = ros2("param", "set", NODE, "model", "fer2013", "--no-daemon")
    assert "Setting parameter failed: Trying to set a read-only parameter: model." in out, out
    assert ros2("param", "get", NODE, "model", "--no-daemon").strip() == "String value is: default"


def test_ros2_service_call_of_the_forget_services(ros2):
    out = ros2("service", "call", f"{NODE}/forget_person", "dfer_ros/srv/ForgetPerson", "{person_id: p99}")
    assert "success=False" in out and "p99" in out, out
    out = ros2("service", "call", f"{NODE}/forget_all_people", "dfer_ros/srv/ForgetAllPeople", "{}")
    assert re.search(r"forgotten=\d+", out), out


@pytest.fixture(scope="module")
def face_feed(node_process):
    """Publish the astronaut's face on the node's image topic at 10 Hz from a thread, while the tests run."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from skimage import data as skimage_data

    from dfer_ros.ros.conversions import array_to_image

    rgb = np.ascontiguousarray(skimage_data.astronaut())
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("cli_face_feed", context=context)
    publisher = node.create_publisher(Image, IMAGE, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))

    def publish():
        msg = array_to_image(rgb, "rgb8")
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = "cli_camera"
        publisher.publish(msg)

    node.create_timer(0.1, publish)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        executor.shutdown()
        thread.join(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _echo_once_until(ros2, topic: str, condition, timeout: float = 90.0, *extra) -> str:
    """``ros2 topic echo --once TOPIC`` repeated until its message satisfies ``condition`` (e.g. holds a face)."""
    deadline = time.monotonic() + timeout
    while True:
        out = ros2("topic", "echo", "--once", topic, *extra, "--no-daemon", timeout=timeout)
        if condition(out):
            return out
        assert time.monotonic() < deadline, f"no message on {topic} satisfied the test within {timeout:.0f} s:\n{out}"


def _ids(out: str) -> list[str]:
    """The ``ids`` list of an hri_msgs/IdsList as ``ros2 topic echo`` prints it."""
    match = re.search(r"^ids:\s*\n((?:- .*\n?)+)", out, re.M)
    return [line[2:].strip().strip("'") for line in match.group(1).splitlines()] if match else []


def test_ros2_topic_echo_once_of_faces_affect_and_the_rep155_topics(ros2, face_feed):
    out = _echo_once_until(ros2, f"{NS}/faces/affect", lambda o: re.search(r"face_id: \S+", o) is not None)
    face_id = re.search(r"face_id: (\S+)", out).group(1).strip("'")
    assert "frame_id: cli_camera" in out and "expression:" in out, out

    tracked = _echo_once_until(ros2, "/humans/faces/tracked", lambda o: bool(_ids(o)))
    assert face_id in _ids(tracked), tracked
    expression = ros2("topic", "echo", "--once", f"/humans/faces/{face_id}/expression", "--no-daemon")
    assert re.search(r"^expression: \S+", expression, re.M) and "valence:" in expression and "arousal:" in expression
    facs = ros2("topic", "echo", "--once", f"/humans/faces/{face_id}/facs", "--no-daemon")
    intensity = re.search(r"^intensity:\s*\n((?:- .*\n?)+)", facs, re.M)
    assert intensity is not None and len(intensity.group(1).splitlines()) == 99, facs  # float32[99], FACS codes

    persons = _echo_once_until(ros2, "/humans/persons/tracked", lambda o: bool(_ids(o)))
    person_id = _ids(persons)[0]
    assert re.fullmatch(r"p\d+", person_id), persons
    known = _echo_once_until(ros2, "/humans/persons/known", lambda o: person_id in _ids(o))
    assert person_id in _ids(known), known
    face_of_person = ros2("topic", "echo", "--once", f"/humans/persons/{person_id}/face_id",
                          "--qos-durability", "transient_local", "--qos-reliability", "reliable", "--no-daemon")
    assert re.search(rf"^data: '?{re.escape(face_id)}'?$", face_of_person, re.M), face_of_person


def test_ros2_topic_hz_of_faces_affect(node_process, env, face_feed):
    """``ros2 topic hz`` prints the rate of faces/affect (the node answers every fed image: about 10 Hz)."""
    proc = subprocess.Popen([ros2_stack.ros2_executable(), "topic", "hz", f"{NS}/faces/affect", "--window", "10"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    try:
        while not any("average rate:" in line for line in lines) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)  # polling the reader's output, not a timing assumption
    finally:
        ros2_stack.stop_group(proc)
        reader.join(timeout=10)
    rates = [float(m.group(1)) for line in lines for m in [re.search(r"average rate: ([\d.]+)", line)] if m]
    assert rates, f"ros2 topic hz printed no rate within 90 s:\n{''.join(lines)}"
    print(f"ros2 topic hz {NS}/faces/affect: {rates}")
    assert all(r > 0 for r in rates)
