"""Lifecycle behaviour of dfer_node as a subprocess: manual configure/activate, a model that fails to load,
sim time from /clock, and a clean exit (code 0) on SIGINT."""
from __future__ import annotations


import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.msg import FaceAffectArray  # noqa: E402
from dfer_ros.ros.conversions import array_to_image  # noqa: E402
from dfer_ros.ros.diagnostics import diagnostic_values  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import read_log, ros_process, wait_until  # noqa: E402

TIMEOUT = 60.0


class Probe:
    """Test-side node: lifecycle service clients, an image publisher, output and diagnostics subscribers."""

    def __init__(self, ns: str, proc, log_path):
        self.ns, self.proc, self.log_path = ns, proc, log_path
        self.node = rclpy.create_node("dfer_lifecycle_probe" + ns.replace("/", "_"))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, f"{ns}/image", reliable)
        self.affect: list = []
        self.node.create_subscription(FaceAffectArray, f"{ns}/faces/affect", self.affect.append, reliable)
        self.diagnostics: list = []
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: self.diagnostics.append(m) if m.status and m.status[0].name.startswith(f"{ns}/dfer_node") else None,
            50)
        self.get_state = self.node.create_client(GetState, f"{ns}/dfer_node/get_state")
        self.change_state = self.node.create_client(ChangeState, f"{ns}/dfer_node/change_state")

    def spin(self):
        assert self.proc.poll() is None, f"dfer_node exited with {self.proc.returncode}:\n{read_log(self.log_path)}"
        rclpy.spin_once(self.node, timeout_sec=0.05)

    def wait(self, condition, what, timeout=TIMEOUT):
        wait_until(condition, timeout, self.spin, what)

    def call(self, client, request):
        self.wait(client.service_is_ready, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait(future.done, f"a reply from {client.srv_name}")
        return future.result()

    def state(self) -> str:
        return self.call(self.get_state, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self.call(self.change_state, ChangeState.Request(transition=Transition(id=transition_id))).success

    def values(self) -> dict:
        return diagnostic_values(self.diagnostics[-1]) if self.diagnostics else {}


def _frame_msg(stamp_sec: int):
    import numpy as np

    msg = array_to_image(np.full((120, 160, 3), 90, np.uint8), "bgr8")
    msg.header.stamp = Time(sec=stamp_sec)
    return msg


def test_autostart_false_waits_for_configure_and_activate(ros_env, tmp_path):
    ns = "/lc_manual"
    log = tmp_path / "node.log"
    # the image QoS made reliable through rclpy's QoS overrides instead of image_qos.reliability
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", "autostart:=false",
            "-p", f"qos_overrides.{ns}/image.subscription.reliability:=reliable", "-p", "diagnostics_period:=0.3",
            "-p", "with_action_units:=false"]
    with ros_session():
        with ros_process(args, ros_env, log) as proc:
            probe = Probe(ns, proc, log)
            assert probe.state() == "unconfigured"
            assert probe.pub.get_subscription_count() == 0  # no image subscription before configure
            assert probe.transition(Transition.TRANSITION_CONFIGURE)
            assert probe.state() == "inactive"
            probe.wait(lambda: probe.pub.get_subscription_count() >= 1, "the image subscription after configure")
            info, = probe.node.get_subscriptions_info_by_topic(f"{ns}/image")
            assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE, "QoS override not applied"
            probe.wait(lambda: probe.node.count_publishers(f"{ns}/faces/affect") >= 1, "the affect publisher")
            stamp = 1000

            def publish_and_spin():
                nonlocal stamp
                stamp += 1
                probe.pub.publish(_frame_msg(stamp))
                probe.spin()

            wait_until(lambda: int(probe.values().get("ignored_inactive", 0)) >= 3, TIMEOUT, publish_and_spin,
                       "images counted as ignored while inactive")
            assert probe.affect == [], "the node published while inactive"
            assert probe.transition(Transition.TRANSITION_ACTIVATE)
            assert probe.state() == "active"
            wait_until(lambda: len(probe.affect) >= 2, TIMEOUT, publish_and_spin, "results once active")
            assert probe.affect[-1].faces == []  # a grey frame: one message per image, no face
            assert probe.transition(Transition.TRANSITION_DEACTIVATE) and probe.state() == "inactive"
            assert probe.transition(Transition.TRANSITION_CLEANUP) and probe.state() == "unconfigured"
            probe.wait(lambda: probe.pub.get_subscription_count() == 0, "the image subscription to go on cleanup")
            probe.node.destroy_node()
        assert proc.returncode == 0, f"exit code {proc.returncode} after SIGINT:\n{read_log(log)}"


def test_missing_model_fails_configure_but_the_node_lives_on_sim_time(ros_env, tmp_path):
    ns = "/lc_broken"
    log = tmp_path / "node.log"
    missing = tmp_path / "no_such_export"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", f"model:={missing}",
            "-p", "use_sim_time:=true", "-p", "diagnostics_period:=0.5"]
    with ros_session():
        with ros_process(args, ros_env, log) as proc:
            probe = Probe(ns, proc, log)
            probe.wait(lambda: "configure failed" in read_log(log), "the configure failure in the log")
            text = read_log(log)
            assert str(missing) in text and "does not exist" in text
            assert probe.state() == "unconfigured"
            assert not probe.transition(Transition.TRANSITION_CONFIGURE)  # retried: still the same reason
            # sim time: the diagnostics timer runs on /clock, and its stamps are sim time
            clock_pub = probe.node.create_publisher(Clock, "/clock", 10)
            sim = [500.0]

            def tick():
                sim[0] += 0.1
                clock_pub.publish(Clock(clock=Time(sec=int(sim[0]), nanosec=int((sim[0] % 1) * 1e9))))
                probe.spin()

            wait_until(lambda: any(500 <= m.header.stamp.sec < 600 for m in probe.diagnostics), TIMEOUT, tick,
                       "diagnostics stamped with the simulated clock")
            values = probe.values()
            assert values["state"] == "unconfigured" and "does not exist" in values["last_error"]
            assert probe.diagnostics[-1].status[0].level == probe.diagnostics[-1].status[0].ERROR
            probe.node.destroy_node()
        assert proc.returncode == 0, f"exit code {proc.returncode} after SIGINT:\n{read_log(log)}"


def test_corrupt_model_folder_fails_configure_with_the_reason(ros_env, tmp_path):
    ns = "/lc_corrupt"
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text('{"format": "dfer-clip-export", "image_tower": ')  # cut off mid-file
    log = tmp_path / "node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-p", f"model:={export}"]
    with ros_session():
        with ros_process(args, ros_env, log) as proc:
            probe = Probe(ns, proc, log)
            probe.wait(lambda: "configure failed" in read_log(log), "the configure failure in the log")
            assert "not valid JSON" in read_log(log) and str(export / "manifest.json") in read_log(log)
            assert probe.state() == "unconfigured"
            probe.node.destroy_node()
        assert proc.returncode == 0, f"exit code {proc.returncode} after SIGINT:\n{read_log(log)}"


@pytest.mark.parametrize("value, words", [("3.0", "out of range"), ("1", "expecting type 'DOUBLE'")])
def test_bad_start_up_parameter_exits_with_a_clear_error(ros_env, value, words):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dfer_ros.ros.node", "--ros-args", "-p", f"au_threshold:={value}",
                             "-p", "autostart:=false"], env=ros_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "invalid parameter" in result.stderr and "au_threshold" in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


def test_low_latency_preset_layers_over_the_defaults(ros_env, tmp_path):
    from ros_helpers import REPO

    every, half_life = started_node_parameters(ros_env, tmp_path, "preset", [
        "--params-file", str(REPO / "config" / "dfer.yaml"),
        "--params-file", str(REPO / "config" / "dfer_low_latency.yaml")],
        ["detection.every", "aggregation.half_life_seconds"])
    assert every.integer_value == 2  # from the preset
    assert half_life.double_value == 0.4  # from dfer.yaml, untouched by the preset


def test_fill_budget_preset_layers_over_the_defaults(ros_env, tmp_path):
    from ros_helpers import REPO

    fill, period, budget = started_node_parameters(ros_env, tmp_path, "fill", [
        "--params-file", str(REPO / "config" / "dfer.yaml"),
        "--params-file", str(REPO / "config" / "dfer_fill_budget.yaml")],
        ["compute.fill_budget", "compute.expression_period", "compute.budget_ms"])
    assert fill.bool_value is True and period.double_value == 0.0  # from the preset
    assert budget.double_value == 16.0  # from dfer.yaml, untouched by the preset


def started_node_parameters(ros_env, tmp_path, namespace: str, ros_args: list[str], names: list[str]):
    """Start dfer_node in ``/<namespace>`` with ``ros_args``, read the parameters ``names`` through its
    parameter service, stop it (it must exit cleanly) and return the values."""
    from rclpy.parameter_client import AsyncParameterClient

    log = tmp_path / "node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:=/{namespace}", *ros_args]
    with ros_session():
        node = rclpy.create_node(f"dfer_{namespace}_probe")
        with ros_process(args, ros_env, log) as proc:
            client = AsyncParameterClient(node, f"/{namespace}/dfer_node")

            def spin():
                assert proc.poll() is None, f"dfer_node exited with {proc.returncode}:\n{read_log(log)}"
                rclpy.spin_once(node, timeout_sec=0.05)

            wait_until(lambda: client.services_are_ready(), TIMEOUT, spin, "the node's parameter services")
            future = client.get_parameters(names)
            wait_until(future.done, TIMEOUT, spin, "the parameter values")
            values = future.result().values
        assert proc.returncode == 0, f"exit code {proc.returncode} after SIGINT:\n{read_log(log)}"
        node.destroy_node()
    return values


def test_pipeline_config_is_not_overridden_by_the_default_params_file(ros_env, tmp_path):
    """Under the default launch file's params file (config/dfer.yaml) the pipeline_config file gives the
    pipeline parameters; an explicit -p still wins over it."""
    from ros_helpers import REPO

    pipeline_yaml = tmp_path / "pipeline.yaml"
    pipeline_yaml.write_text("detection:\n  every: 3\naggregation:\n  half_life_seconds: 0.9\n")
    every, half_life = started_node_parameters(ros_env, tmp_path, "pipecfg", [
        "--params-file", str(REPO / "config" / "dfer.yaml"),
        "-p", f"pipeline_config:={pipeline_yaml}", "-p", "aggregation.half_life_seconds:=0.7"],
        ["detection.every", "aggregation.half_life_seconds"])
    assert every.integer_value == 3  # from the pipeline_config file
    assert half_life.double_value == 0.7  # the explicit -p wins over the file


def test_ctrl_c_while_the_model_loads_exits_cleanly(ros_env, tmp_path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "dfer_ros.ros.node"], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:  # the first log line comes from configure, while the node is being built
            seen.append(line)
            if "dfer_node" in line:
                proc.send_signal(signal.SIGINT)
                break
        assert proc.wait(timeout=60) == 0, "".join(seen) + proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in "".join(seen)
