"""Start and stop the project's ROS subprocesses (node, video publisher, bag tools) one way everywhere.

Used by the demo, live bag evaluation, the latency benchmark and the tests; ``node_command`` is the one
place that builds a ``dfer_node`` command line (``ros/node_listener.py`` is the one way to listen to it). Each process logs stdout and
stderr to a file; stopping sends SIGINT, which our entry points turn into a clean rclpy shutdown with exit
code 0, and kills only a process that has not exited within the timeout. No rclpy import here.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

NODE_MODULE = "dfer_ros.ros.node"


def start_python(args: Sequence[str], env: dict, log_path: Union[str, Path],
                 cwd: Optional[Union[str, Path]] = None) -> subprocess.Popen:
    """Run ``python args...`` with ``env``, stdout and stderr into ``log_path`` (its folder is created)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> Optional[int]:
    """The exit code, or None if the process is still running after ``timeout`` seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> tuple[int, bool]:
    """SIGINT, then kill after ``timeout`` s; returns (exit code, whether it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGINT)
    if wait_for_exit(proc, timeout) is not None:
        return proc.returncode, False
    proc.kill()
    proc.wait()
    return proc.returncode, True


def _ros_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def node_command(namespace: Optional[str] = None, params: Optional[Mapping[str, Any]] = None,
                 remaps: Optional[Mapping[str, str]] = None, params_files: Sequence[Union[str, Path]] = (),
                 extra: Sequence[str] = ()) -> list[str]:
    """``python`` arguments that start ``dfer_node``: namespace, topic remaps, params files (in order, later
    wins), then ``-p name:=value`` for ``params`` (which win over the files), then ``extra`` ROS arguments."""
    args = ["-m", NODE_MODULE, "--ros-args"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    for old, new in (remaps or {}).items():
        args += ["-r", f"{old}:={new}"]
    for path in params_files:
        args += ["--params-file", str(Path(path).resolve())]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={_ros_value(value)}"]
    return args + list(extra)


def start_node(env: dict, log_path: Union[str, Path], cwd: Optional[Union[str, Path]] = None,
               **command: Any) -> subprocess.Popen:
    """``start_python(node_command(**command), ...)``."""
    return start_python(node_command(**command), env, log_path, cwd=cwd)
