"""What can be checked of the launch files without ROS 2's launch packages: they compile, define
generate_launch_description, and declare the arguments docs/camera.md documents. Everything they do is tested under
the real launch system in test_launch.py (its stand-ins of launch/launch_ros are gone)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAUNCH_DIR = Path(__file__).resolve().parent.parent / "launch"


@pytest.mark.parametrize("path", sorted(LAUNCH_DIR.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_file_compiles_and_has_an_entry_point(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), "exec")
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_main_launch_file_declares_the_documented_arguments():
    tree = ast.parse((LAUNCH_DIR / "dfer.launch.py").read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}
    assert {"image", "params_file", "model", "backend", "namespace", "debug_image", "autostart",
            "use_sim_time", "hri", "hri_mode"} <= declared
