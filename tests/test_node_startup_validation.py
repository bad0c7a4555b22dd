"""Start-up parameter values are checked like run-time changes: a choice-valued parameter given a value
outside its choices makes configure fail with the reason, at ERROR level in the diagnostics (the node
stays alive for a fix and a retry). In-process: no DDS traffic is needed for this."""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from dfer_ros.ros.diagnostics import to_diagnostic_array  # noqa: E402
from dfer_ros.ros.node import DferNode  # noqa: E402
from dfer_ros.ros.parameters import all_parameter_specs  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402

CHOICE_SPECS = [s for s in all_parameter_specs() if s.choices]


def test_there_are_choice_valued_parameters():
    assert {"image_qos.reliability", "backend"} <= {s.name for s in CHOICE_SPECS}


@pytest.mark.parametrize("spec", CHOICE_SPECS, ids=[s.name for s in CHOICE_SPECS])
def test_a_start_up_value_outside_the_choices_fails_configure_with_the_reason(spec):
    with ros_session([]):
        node = DferNode(parameter_overrides=[Parameter("autostart", value=False), Parameter(spec.name, value="foo")])
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            status = to_diagnostic_array(node.stats.snapshot(), "/dfer_node", Time(sec=1)).status[0]
            assert status.level == DiagnosticStatus.ERROR
            assert spec.name in status.message and "'foo'" in status.message
        finally:
            node.destroy_node()
