"""Hostile start-up inputs leave dfer_node up with the reason (or, where ROS itself cannot start, one line
with the reason and exit 2), never a traceback:

* a ``pipeline_config`` file that is not UTF-8, nested 50,000 deep or holds ``.inf`` (in-process: the node is
  built, configure fails with the reason, diagnostics at ERROR);
* a SIGINT that is already pending when the node's interpreter starts (what a SIGINT during start-up becomes
  when the ROS wheels' start-up hook re-executes the interpreter with the signal blocked): before, the signal
  stayed blocked and the node ran on; now it exits 0 without a traceback (real subprocess);
* a ROS_DOMAIN_ID that is not a number, or too large for Fast DDS's ports;
* an RMW_IMPLEMENTATION that is not installed (rcl ended the process on ``import rclpy``, exit 102).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from dfer_ros.ros.diagnostics import to_diagnostic_array  # noqa: E402
from dfer_ros.ros.node import DferNode  # noqa: E402
from dfer_ros.ros.processes import wait_for_exit  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from ros_helpers import REPO, read_log  # noqa: E402

BAD_PIPELINE_CONFIGS = {
    "not_utf8": (b"\xff\xfe", "not UTF-8"),
    "nested_50000": (b"a: " + b"[" * 50_000 + b"]" * 50_000, "nested more than"),
    "infinite": (b"detection:\n  min_score: .inf\n", "not a finite number"),
}


@pytest.mark.parametrize("name", sorted(BAD_PIPELINE_CONFIGS))
def test_a_hostile_pipeline_config_leaves_the_node_unconfigured_with_the_reason(tmp_path, name):
    content, reason = BAD_PIPELINE_CONFIGS[name]
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(content)
    with ros_session([]):
        node = DferNode(parameter_overrides=[Parameter("autostart", value=False),
                                             Parameter("pipeline_config", value=str(path))])
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            status = to_diagnostic_array(node.stats.snapshot(), "/dfer_node", Time(sec=1)).status[0]
            assert status.level == DiagnosticStatus.ERROR
            assert "pipeline_config" in status.message and reason in status.message and str(path) in status.message
        finally:
            node.destroy_node()


def _hold_and_raise_sigint():
    """In the child before exec: SIGINT blocked and pending, as the start-up hook hands it across its re-exec."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("module", ["dfer_ros.ros.node_entry", "dfer_ros.ros.node"])
def test_a_sigint_pending_at_interpreter_start_ends_the_node_with_exit_0(ros_env, tmp_path, module):
    log = tmp_path / "node.log"
    args = [sys.executable, "-m", module, "--ros-args", "-r", "__ns:=/pending_sigint"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=ros_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_hold_and_raise_sigint)
    try:
        code = wait_for_exit(proc, 60.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = read_log(log)
    assert code == 0, f"exit code {code} (None: still running 60 s after a SIGINT):\n{text}"
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "active: processing" not in text, text


@pytest.mark.parametrize("value, reason", [("abc", "is not a whole number"), ("999", "is above 232")])
def test_a_bad_ros_domain_id_is_one_line_with_the_reason_not_a_traceback(ros_env, tmp_path, value, reason):
    """rcl raised RCLError with a traceback for 'abc'; Fast DDS ended the process from native code for 999."""
    proc = subprocess.run([sys.executable, "-m", "dfer_ros.ros.node_entry", "--ros-args", "-r", "__ns:=/bad_domain"],
                          env={**ros_env, "ROS_DOMAIN_ID": value}, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "dfer_node: cannot start ROS: ROS_DOMAIN_ID" in proc.stderr and reason in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("variable", ["RMW_IMPLEMENTATION", "RCL_ASSERT_RMW_ID_MATCHES"])
def test_an_rmw_that_is_not_installed_is_one_line_with_the_choices_not_a_native_exit(ros_env, variable):
    """Before: rcl's library constructor printed its own error on ``import rclpy`` and exited 102."""
    proc = subprocess.run([sys.executable, "-m", "dfer_ros.ros.node_entry", "--ros-args", "-r", "__ns:=/bad_rmw"],
                          env={**ros_env, "RMW_IMPLEMENTATION": "", variable: "rmw_nonexistent"}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"dfer_node: cannot start ROS: {variable}='rmw_nonexistent' is not an installed rmw")
    assert "rmw_fastrtps_cpp" in lines[0]  # the implementation the ROS wheels install, offered as the choice
    assert "Traceback" not in proc.stderr and "exiting with 102" not in proc.stderr


def test_lost_images_renew_the_image_reader_only_when_the_node_grew_by_more_than_an_allowed_image():
    """Best-effort DDS drops the first oversized sample after growing the reader's buffers to it, so the node
    never sees it; the message-lost event plus the node's anonymous memory growth tells that from network loss."""
    from types import SimpleNamespace

    from dfer_ros.ros.memory import anonymous_rss_bytes

    with ros_session([]):
        node = DferNode(parameter_overrides=[Parameter("autostart", value=False),
                                             Parameter("max_image_pixels", value=1_000_000)])
        try:
            now = anonymous_rss_bytes()
            assert now > 0
            node._anon_at_subscribe = now + 50_000_000  # no growth since the reader was made: ordinary loss
            node._on_images_lost(SimpleNamespace(total_count=2, total_count_change=2))
            assert node._images_lost_unchecked and node.stats.images_lost == 2
            node._check_reader_growth(anonymous_rss_bytes())  # what the next diagnostics period does, after a trim
            assert not node._renew_image_reader and not node._images_lost_unchecked
            node._anon_at_subscribe = now - 5_000_000  # grew 5 MB: more than one 1,000,000-pixel image at 4 B/px
            node._on_images_lost(SimpleNamespace(total_count=3, total_count_change=1))
            node._check_reader_growth(anonymous_rss_bytes())
            assert node._renew_image_reader and node.stats.images_lost == 3
            values = to_diagnostic_array(node.stats.snapshot(), "/dfer_node", Time(sec=1)).status[0].values
            assert {v.key: v.value for v in values}["images_lost"] == "3"
        finally:
            node.destroy_node()
