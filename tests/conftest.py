"""Suite-wide settings. The ROS environment is applied before any test module imports rclpy:
DDS on this host only (project Fast DDS profile, LOCALHOST discovery), logs under build/,
a private domain id for this test run."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

# ROS 2's launch package, imported by the launch_testing / launch_pytest pytest plugins (installed with the real
# launch system), makes every logger created after its import a LaunchLogger that does not propagate: the
# project's log records would then reach neither caplog nor a handler on "dfer_ros". Loggers created from here
# on are plain ones again (launch's own loggers then also propagate; nothing here depends on them not doing so).
logging.setLoggerClass(logging.Logger)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from dfer_ros.ros.environment import apply_local_ros_env, clean_shared_memory  # noqa: E402

ROS_ENV = apply_local_ros_env(domain_id=int(os.environ["DFER_TEST_DOMAIN_ID"]) if "DFER_TEST_DOMAIN_ID" in os.environ else None,
                              log_dir=REPO / "build" / "ros_log" / "tests")


def pytest_report_header(config):
    return (f"ROS: domain {ROS_ENV['ROS_DOMAIN_ID']}, discovery {ROS_ENV['ROS_AUTOMATIC_DISCOVERY_RANGE']}, "
            f"Fast DDS profile {ROS_ENV['FASTRTPS_DEFAULT_PROFILES_FILE']}, logs {ROS_ENV['ROS_LOG_DIR']}")


def pytest_sessionfinish(session, exitstatus):
    clean_shared_memory()


@pytest.fixture(scope="session")
def ros_env() -> dict:
    """The environment for ROS subprocesses started by tests."""
    return dict(ROS_ENV)


@pytest.fixture(scope="session")
def cap12():
    """The real webcam face video cap12 (400x300, 25 fps, 1337 frames); the test skips when it is not fetched."""
    from dfer_ros.assets import AssetError, sample_video

    try:
        return sample_video()
    except AssetError as exc:
        pytest.skip(f"sample video missing: {exc}")
