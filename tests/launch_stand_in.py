"""Stand-ins for ROS 2's ``launch``, ``launch_ros`` and ``ament_index_python.packages``, to load our launch files
where those packages are not installable (ROS from PyPI wheels) and check what they declare and wire up.

Each stand-in class only records its constructor arguments; ``run_events`` replays a sequence of launch events
the way launch's event loop and launch_ros's ROS adapter treat them (a second Shutdown event shuts the adapter
down twice, which launch_ros answers with "Cannot shutdown a ROS adapter that is not running").
"""
from __future__ import annotations

import importlib.util
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class Recorded:
    """A launch entity stand-in: keeps ``args`` and ``kwargs``."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __repr__(self):
        return f"{type(self).__name__}({self.args}, {self.kwargs})"


def _classes(*names: str) -> dict[str, type]:
    return {name: type(name, (Recorded,), {}) for name in names}


class LaunchDescription(Recorded):
    @property
    def entities(self) -> list:
        return list(self.args[0]) if self.args else []


@contextmanager
def stand_in_modules(share_dir: Path) -> Iterator[None]:
    """Replace launch, launch_ros and ament_index_python.packages in sys.modules while the block runs."""
    made = {}

    def module(name: str, **attrs) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        made[name] = mod
        return mod

    actions = module("launch.actions", **_classes("DeclareLaunchArgument", "IncludeLaunchDescription",
                                                  "RegisterEventHandler", "Shutdown", "OpaqueFunction",
                                                  "EmitEvent", "LogInfo"))
    handlers = module("launch.event_handlers", **_classes("OnProcessExit", "OnShutdown", "OnProcessStart"))
    sources = module("launch.launch_description_sources", **_classes("PythonLaunchDescriptionSource"))
    substitutions = module("launch.substitutions", **_classes("LaunchConfiguration", "PathJoinSubstitution",
                                                              "TextSubstitution"))
    module("launch", LaunchDescription=LaunchDescription, actions=actions, event_handlers=handlers,
           launch_description_sources=sources, substitutions=substitutions)
    ros_actions = module("launch_ros.actions", **_classes("Node", "LifecycleNode"))
    descriptions = module("launch_ros.parameter_descriptions", **_classes("ParameterValue"))
    module("launch_ros", actions=ros_actions, parameter_descriptions=descriptions)
    module("ament_index_python.packages", get_package_share_directory=lambda package: str(share_dir))
    saved = {name: sys.modules.get(name) for name in made}
    sys.modules.update(made)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def load_launch_description(path: Path, share_dir: Path) -> tuple[types.ModuleType, LaunchDescription]:
    """Execute a launch file against the stand-ins; returns (its module, generate_launch_description())."""
    with stand_in_modules(share_dir):
        spec = importlib.util.spec_from_file_location(f"launch_file_{path.stem.replace('.', '_')}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module, module.generate_launch_description()


def entities_of_type(description: LaunchDescription, name: str) -> list:
    return [e for e in description.entities if type(e).__name__ == name]


@dataclass
class ProcessExited:
    """What launch's ProcessExited event gives a handler."""

    action: object
    returncode: int


class LaunchContext:
    def __init__(self):
        self.is_shutdown = False


class RosAdapter:
    """launch_ros's ROSAdapter: shutting it down twice raises, as the real one does."""

    def __init__(self):
        self.running = True

    def shutdown(self):
        if not self.running:
            raise RuntimeError("Cannot shutdown a ROS adapter that is not running")
        self.running = False


def run_events(description: LaunchDescription, events: list) -> int:
    """Replay ``events`` ("sigint" or a ProcessExited) through the description's exit handlers like launch does.

    A SIGINT shuts the launch down (launch guards that path itself); an exit handler's Shutdown actions each
    emit a Shutdown event, and every Shutdown event makes launch_ros shut its adapter down. Returns how many
    Shutdown events were processed; an adapter error propagates like the "Caught exception in launch" that
    makes ``ros2 launch`` exit 1.
    """
    context, adapter, shutdowns = LaunchContext(), RosAdapter(), 0
    exit_handlers = []  # (target action, on_exit)
    for entity in description.entities:
        if type(entity).__name__ in ("Node", "LifecycleNode") and "on_exit" in entity.kwargs:
            exit_handlers.append((entity, entity.kwargs["on_exit"]))
        if type(entity).__name__ == "RegisterEventHandler":
            handler = entity.args[0] if entity.args else entity.kwargs["event_handler"]
            if type(handler).__name__ == "OnProcessExit":
                exit_handlers.append((handler.kwargs["target_action"], handler.kwargs["on_exit"]))

    def shutdown_event():
        nonlocal shutdowns
        shutdowns += 1
        context.is_shutdown = True
        adapter.shutdown()

    for event in events:
        if event == "sigint":
            if not context.is_shutdown:
                shutdown_event()
            continue
        for target, on_exit in exit_handlers:
            if target is not event.action:
                continue
            produced = on_exit(event, context) if callable(on_exit) else on_exit
            produced = [] if produced is None else (produced if isinstance(produced, list) else [produced])
            for action in produced:
                if type(action).__name__ == "Shutdown":
                    shutdown_event()
    return shutdowns
