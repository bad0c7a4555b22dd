"""The ament_cmake install a robot gets from `colcon build`: messages AND the Python package, launch and config.

colcon itself and a ROS install are not here, so this runs the same CMake project that colcon would
(DFER_INSTALL_PYTHON_SOURCES=ON, its default) into a fresh prefix against the venv's ROS wheels, then
imports both halves of the package from that prefix in a clean interpreter.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    # build from a copy of the tracked files, as a robot's workspace would hold them: this checkout keeps
    # the venv (and so numpy's include folder) inside the source folder, which CMake refuses to export
    source = tmp_path_factory.mktemp("src") / "dfer_ros"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    build = tmp_path_factory.mktemp("build")
    prefix = tmp_path_factory.mktemp("install")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    steps = [
        ["cmake", str(source), f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}"],
        ["cmake", "--build", ".", "-j", str(os.cpu_count() or 2)],
        ["cmake", "--install", "."],
    ]
    for step in steps:
        result = subprocess.run(step, cwd=build, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(step)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return prefix


def test_install_tree_has_messages_sources_launch_and_config(prefix):
    site = prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(VENV)
    assert (site / "dfer_ros" / "msg" / "_face_affect_array.py").is_file()
    assert (site / "dfer_ros" / "perception" / "pipeline.py").is_file()
    assert (site / "dfer_ros" / "ros" / "node.py").is_file()
    share = prefix / "share" / "dfer_ros"
    for relative in ("package.xml", "launch/dfer.launch.py", "config/dfer.yaml", "config/fastdds_localhost.xml",
                     "models/clip_vitb16_abaw.yaml", "msg/FaceAffect.msg"):
        assert (share / relative).is_file(), relative
    assert os.access(prefix / "lib" / "dfer_ros" / "dfer_node", os.X_OK)  # where `ros2 run dfer_ros dfer_node` looks
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "dfer_ros").is_file()


def test_installed_package_imports_from_the_prefix(prefix):
    site = prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(VENV)
    code = ("import dfer_ros.msg, dfer_ros.perception.pipeline as p; from dfer_ros.msg import FaceAffectArray; "
            "m = FaceAffectArray(); print(p.__file__); print(type(m).__name__)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "LD_LIBRARY_PATH": str(prefix / "lib")}
    result = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    module_file, type_name = result.stdout.split()
    assert module_file.startswith(str(site)) and type_name == "FaceAffectArray"
