"""The host-local ROS environment every script and test uses, and the shared-memory clean-up."""
from __future__ import annotations

import fcntl
import os
import xml.etree.ElementTree as ET

from dfer_ros.ros import environment


def test_local_env_keeps_dds_on_this_host(tmp_path):
    env = environment.local_ros_env(domain_id=42, log_dir=tmp_path, base={"ROS_LOCALHOST_ONLY": "1", "PATH": "/bin"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "ROS_LOCALHOST_ONLY" not in env  # it would make Jazzy ignore the discovery range
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == env["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert env["ROS_DOMAIN_ID"] == "42" and env["ROS_LOG_DIR"] == str(tmp_path)
    # the profile: built-in (UDP) transports off, one shared-memory transport
    ns = {"p": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(env["FASTRTPS_DEFAULT_PROFILES_FILE"]).getroot()
    assert root.find(".//p:participant/p:rtps/p:useBuiltinTransports", ns).text == "false"
    assert [t.text for t in root.findall(".//p:transport_descriptor/p:type", ns)] == ["SHM"]


def test_domain_pick_skips_domains_in_use(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "domains_in_use", lambda: {5, 6})
    assert environment.pick_domain_id(seed=4) == 7
    assert environment.pick_domain_id(seed=10) == 11


def _segment(name: str) -> list[str]:
    paths = [f"/dev/shm/{name}", f"/dev/shm/{name}_el"]
    for path in paths:
        open(path, "wb").close()
    return paths


def test_clean_removes_only_segments_nobody_holds():
    stale = _segment(f"fastrtps_dfertest_stale_{os.getpid()}")
    live = _segment(f"fastrtps_dfertest_live_{os.getpid()}")
    holder = os.open(live[1], os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a live Fast DDS participant does
    try:
        environment.clean_shared_memory()
        assert not any(os.path.exists(p) for p in stale)
        assert all(os.path.exists(p) for p in live)
    finally:
        os.close(holder)
        for path in live:
            os.unlink(path)


def _ament_prefix(tmp_path, *names):
    folder = tmp_path / "share" / "ament_index" / "resource_index" / "rmw_typesupport"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("rosidl_typesupport_c")
    return str(tmp_path)


def test_installed_rmw_implementations_come_from_the_ament_index(tmp_path):
    prefix = _ament_prefix(tmp_path, "rmw_cyclonedds_cpp", "rmw_fastrtps_cpp", "rmw_implementation")
    names = environment.installed_rmw_implementations({"AMENT_PREFIX_PATH": prefix})
    assert "rmw_cyclonedds_cpp" in names and "rmw_fastrtps_cpp" in names
    assert "rmw_implementation" not in names  # the loader, not an implementation


def test_rmw_problem_names_the_variable_and_the_installed_choices(tmp_path):
    prefix = _ament_prefix(tmp_path, "rmw_cyclonedds_cpp")
    base = {"AMENT_PREFIX_PATH": prefix}
    assert environment.rmw_problem(base) == ""
    assert environment.rmw_problem({**base, "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == ""
    problem = environment.rmw_problem({**base, "RMW_IMPLEMENTATION": "rmw_nonexistent"})
    assert problem.startswith("RMW_IMPLEMENTATION='rmw_nonexistent' is not an installed rmw implementation")
    assert "rmw_cyclonedds_cpp" in problem
    problem = environment.rmw_problem({**base, "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp",
                                       "RCL_ASSERT_RMW_ID_MATCHES": "rmw_fastrtps_cpp"})
    assert "differ" in problem
    assert environment.environment_problem({**base, "RMW_IMPLEMENTATION": "x"}) == environment.rmw_problem(
        {**base, "RMW_IMPLEMENTATION": "x"})
