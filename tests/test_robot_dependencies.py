"""The robot path's dependencies are complete: every third-party module dfer_ros imports is either a rosdep key
in package.xml, a pip requirement in requirements/robot.txt (or requirements/no-deps.txt), or an optional extra
named here with the reason. A new import fails this test until it is classified."""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "dfer_ros"

# import name -> rosdep key (package.xml)
ROSDEP = {
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "builtin_interfaces": "builtin_interfaces",
    "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "lifecycle_msgs": "lifecycle_msgs", "rosgraph_msgs": "rosgraph_msgs", "ament_index_python": "ament_index_python",
    "launch": "launch", "launch_ros": "launch_ros",
    "numpy": "python3-numpy", "cv2": "python3-opencv", "scipy": "python3-scipy", "yaml": "python3-yaml",
    "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm", "h5py": "python3-h5py",
}
# import name -> pip distribution (requirements/robot.txt or requirements/no-deps.txt)
PIP = {"onnxruntime": "onnxruntime", "onnx": "onnx", "yuface": "yuface", "rosbags": "rosbags",
       "mediapipe": "mediapipe"}
# optional on a robot, with the reason
OPTIONAL = {
    "torch": "CLIP-adapter training/export and the torch backend: pip install .[torch]",
    "transformers": "CLIP-adapter models: .[torch] extra", "peft": "LoRA adapters: .[torch] extra",
    "safetensors": "CLIP-adapter checkpoints: .[torch] extra",
    "tensorrt": "TensorRT backend: JetPack's Python bindings", "cuda": "TensorRT backend: cuda-python on JetPack",
    "skimage": "tests and benchmarks only (test_depend python3-skimage)",
    "hri_msgs": "REP-155 output, only with hri.enabled (ros-jazzy-hri-msgs)",
}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module name -> the dfer_ros files importing it (module level or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("dfer_ros", "__future__"):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _package_xml_keys() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for e in root if e.tag in ("depend", "exec_depend", "build_depend", "buildtool_depend")}


def _requirement_names(*files: str) -> set[str]:
    names = set()
    for name in files:
        for line in (REPO / "requirements" / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                names.add(re.split(r"[=<>!~\[ ]", line)[0].lower())
    return names


def test_every_third_party_import_is_classified():
    unknown = {name: sorted(files) for name, files in _third_party_imports().items()
               if name not in ROSDEP and name not in PIP and name not in OPTIONAL}
    assert not unknown, f"imports with no rosdep key, robot.txt entry or optional reason: {unknown}"


def test_rosdep_keys_are_in_package_xml():
    keys = _package_xml_keys()
    imported = _third_party_imports()
    missing = {name: key for name, key in ROSDEP.items() if name in imported and key not in keys}
    assert not missing, f"package.xml lacks these rosdep keys: {missing}"
    for ros_dependency in ("launch", "launch_ros"):  # the launch files import them
        assert ros_dependency in keys


def test_pip_requirements_are_in_robot_txt():
    pip_names = _requirement_names("robot.txt", "no-deps.txt")
    imported = _third_party_imports()
    missing = {name: dist for name, dist in PIP.items() if name in imported and dist not in pip_names}
    assert not missing, f"requirements/robot.txt lacks: {missing}"
    # what rosdep provides is not installed twice (pip over apt breaks apt's numpy/OpenCV builds)
    assert not pip_names & {"numpy", "opencv-python", "opencv-python-headless", "scipy", "pyyaml"}


def test_robot_txt_pins_match_the_lock():
    lock = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            lock[name.strip().lower()] = version.strip()
    for line in (REPO / "requirements" / "robot.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            assert lock.get(name.lower()) == version, f"robot.txt pins {name}=={version}, the lock {lock.get(name.lower())}"


def test_package_xml_is_valid_for_catkin_pkg():
    """What ament_cmake (package_xml_2_cmake) and rosdep parse: a redundant or malformed entry stops the build."""
    from catkin_pkg.package import parse_package

    package = parse_package(str(REPO / "package.xml"))  # raises InvalidPackage with the reasons
    assert package.name == "dfer_ros"
