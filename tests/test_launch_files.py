"""What can be checked of the launch files without ROS 2's launch packages (see test_launch.py for the real run):
they compile, define generate_launch_description, and declare the arguments docs/camera.md documents."""
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
            "use_sim_time"} <= declared


# --- the launch files executed against stand-ins of launch / launch_ros (tests/launch_stand_in.py) -------------
from launch_stand_in import (ProcessExited, entities_of_type, load_launch_description,  # noqa: E402
                             run_events)


def _demo(tmp_path):
    return load_launch_description(LAUNCH_DIR / "dfer_demo.launch.py", tmp_path)


def _video_publisher(description):
    nodes = [n for n in entities_of_type(description, "Node") if n.kwargs.get("executable") == "video_publisher"]
    assert len(nodes) == 1
    return nodes[0]


def test_demo_ctrl_c_shuts_the_launch_down_once(tmp_path):
    """Ctrl-C: the launch is shutting down when the publisher exits; no second Shutdown may follow."""
    _, description = _demo(tmp_path)
    publisher = _video_publisher(description)
    assert "on_exit" not in publisher.kwargs, "on_exit=Shutdown() fires a second Shutdown after Ctrl-C"
    # run_events raises RuntimeError("Cannot shutdown a ROS adapter that is not running") on a second Shutdown
    assert run_events(description, ["sigint", ProcessExited(publisher, returncode=0)]) == 1
    assert run_events(description, ["sigint", ProcessExited(publisher, returncode=-2)]) == 1


def test_demo_ends_when_the_video_ends(tmp_path):
    _, description = _demo(tmp_path)
    publisher = _video_publisher(description)
    assert run_events(description, [ProcessExited(publisher, returncode=0)]) == 1
    assert run_events(description, [ProcessExited(publisher, returncode=0), "sigint"]) == 1  # Ctrl-C after the end


def test_demo_exit_handler_logic(tmp_path):
    module, _ = _demo(tmp_path)

    class Context:
        is_shutdown = False

    actions = module.end_launch_when_publisher_exits(ProcessExited(None, 3), Context())
    assert [type(a).__name__ for a in actions] == ["Shutdown"] and "code 3" in actions[0].kwargs["reason"]
    Context.is_shutdown = True
    assert not module.end_launch_when_publisher_exits(ProcessExited(None, 0), Context())


def _parameter_dicts(node):
    return [p for p in node.kwargs.get("parameters", []) if isinstance(p, dict)]


@pytest.mark.parametrize("name", ["dfer.launch.py", "dfer_demo.launch.py"])
def test_launch_argument_values_reach_the_node_with_an_explicit_type(name, tmp_path):
    """A LaunchConfiguration given as a parameter value is YAML-parsed by launch_ros unless wrapped in
    ParameterValue(value_type=...): model:=2024 would become an integer and video:= (empty) null."""
    _, description = load_launch_description(LAUNCH_DIR / name, tmp_path)
    nodes = entities_of_type(description, "Node") + entities_of_type(description, "LifecycleNode")
    assert nodes
    for node in nodes:
        for params in _parameter_dicts(node):
            for key, value in params.items():
                if type(value).__name__ == "LaunchConfiguration":
                    pytest.fail(f"{name}: parameter {key!r} is an untyped LaunchConfiguration")
                if type(value).__name__ == "ParameterValue":
                    assert value.kwargs.get("value_type") in (str, bool, int, float), (name, key)


def test_model_and_backend_are_strings(tmp_path):
    _, description = load_launch_description(LAUNCH_DIR / "dfer.launch.py", tmp_path)
    (node,) = entities_of_type(description, "LifecycleNode")
    params = {k: v for d in _parameter_dicts(node) for k, v in d.items()}
    for key, argument in (("model", "model"), ("backend", "backend")):
        value = params[key]
        assert type(value).__name__ == "ParameterValue" and value.kwargs["value_type"] is str
        assert value.args[0].args[0] == argument
    assert params["hri.enabled"].kwargs["value_type"] is bool
    assert node.kwargs["executable"] == "dfer_node" and node.kwargs["package"] == "dfer_ros"
