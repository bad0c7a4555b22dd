"""colcon, for real: ``colcon build --packages-select dfer_ros`` on a workspace holding a clone of this repository,
then, in a clean shell that sources only the ROS underlay and the workspace's ``install/setup.bash``,
``ros2 launch dfer_ros dfer.launch.py`` answering a real face image, and Ctrl-C exiting 0.

colcon comes from PyPI (requirements/colcon.txt, installed by ``make setup`` into .venv/opt/colcon); the launch
system and ros2cli from ../shared/ros2_sources (tests/ros2_stack.py). Here the project venv stands in for
``/opt/ros/jazzy``: the clean shell's "underlay" is ``AMENT_PREFIX_PATH=<venv>`` and ``<venv>/bin`` first on PATH
(the wheels ship no setup.bash), the rest comes from ``source install/setup.bash``. The venv holds a dfer_ros of its
own (``make setup``), so the test checks that the shell resolves the workspace's package, not the venv's.
The clone is of the committed HEAD: uncommitted edits are not in it.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ros2_stack

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
NS = "/colcon"
IMAGE = f"{NS}/camera/image"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    colcon = ros2_stack.colcon_executable()
    if colcon is None:
        pytest.skip("colcon is not installed: run make setup (it installs requirements/colcon.txt)")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("no git checkout to clone")
    ws = tmp_path_factory.mktemp("colcon_ws")
    subprocess.run(["git", "clone", "-q", str(REPO), str(ws / "src" / "dfer_ros")], check=True, timeout=300)
    env = {"HOME": str(ws), "PATH": f"{VENV / 'bin'}:/usr/bin:/bin", "AMENT_PREFIX_PATH": str(VENV),
           "LANG": "C.UTF-8"}
    result = subprocess.run([colcon, "build", "--packages-select", "dfer_ros", "--event-handlers", "console_direct-",
                             "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
                            cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    print(result.stdout[-2000:])
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Finished <<< dfer_ros" in result.stdout and (ws / "install" / "setup.bash").is_file(), result.stdout
    return ws


def _clean_shell(ws: Path, ros_env: dict, command: str) -> tuple[list, dict]:
    """``bash -c`` in an environment with nothing but the ROS underlay (the venv) and the DDS settings of the tests:
    in the workspace folder (not this checkout: ``python3 -c`` puts the current folder first on sys.path), source
    the workspace, then ``command``."""
    from dfer_ros import assets

    env = {key: value for key, value in ros_env.items()
           if key.startswith(("ROS_", "RMW_", "FASTRTPS_", "FASTDDS_", "RCUTILS_"))}
    env.update({"HOME": str(ws / "home"), "PATH": f"{VENV / 'bin'}:/usr/bin:/bin", "AMENT_PREFIX_PATH": str(VENV),
                "DFER_CACHE_DIR": str(assets.cache_dir()),  # what `ros2 run dfer_ros fetch_assets` fetched
                "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"})
    return ["bash", "-c", f"cd {shlex.quote(str(ws))} && source install/setup.bash && {command}"], env


def test_sourced_workspace_resolves_its_own_package(workspace, ros_env):
    ros2_stack.require(pytest, "ros2pkg")
    command, env = _clean_shell(workspace, ros_env, "ros2 pkg prefix dfer_ros && "
                                "python3 -c 'import dfer_ros.msg, dfer_ros.ros.node as n; print(n.__file__)' && "
                                "echo AMENT_PREFIX_PATH=$AMENT_PREFIX_PATH")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix, module, ament = result.stdout.split()
    print(result.stdout)
    installed = workspace / "install" / "dfer_ros"
    assert Path(prefix) == installed
    assert Path(module).is_relative_to(installed), module
    assert ament.split("=", 1)[1].split(":")[0] == str(installed), ament


def test_ros2_launch_from_the_sourced_workspace_answers_a_face(workspace, ros_env, tmp_path):
    ros2_stack.require(pytest, "launch", "launch_ros", "ros2launch")
    import rclpy

    from ros_helpers import feed_face_until_result

    command, env = _clean_shell(workspace, ros_env,
                                f"exec ros2 launch dfer_ros dfer.launch.py namespace:={NS[1:]} image:={IMAGE}")
    with ros2_stack.LaunchProcess([], env, tmp_path / "launch.log", command=command) as launched:
        rclpy.init()
        try:
            node = rclpy.create_node("colcon_probe")
            feed_face_until_result(rclpy, node, IMAGE, f"{NS}/faces/affect", "colcon_camera")  # asserts the face
            node.destroy_node()
        finally:
            rclpy.try_shutdown()
        code = launched.ctrl_c()
        text = launched.output()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
