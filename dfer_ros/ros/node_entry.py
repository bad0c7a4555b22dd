"""``dfer-node`` / ``ros2 run dfer_ros dfer_node``: catch SIGINT/SIGTERM before anything heavy is imported.

Why: importing the node (rclpy, DDS, numpy, OpenCV, ONNX Runtime) takes about a second. A SIGINT in that
time used to raise ``KeyboardInterrupt`` out of an import (a traceback and exit -2), and one that arrived
while the ROS wheels' start-up hook re-executes the interpreter (``ros_wheels_bootstrapper``) was lost, so
the node went on to configure and run. This module imports only ``signal`` and ``threading`` (through
``session.StopSignals``): the handler is in place first, then the node is imported and run, and a stop
requested at any moment ends it with exit 0. The ROS environment is checked here too, before rclpy is
imported (``environment.environment_problem``): rcl ends the process from native code on import when
``RMW_IMPLEMENTATION`` names an rmw that is not installed. Signals that ``dfer_ros_hold_signals.pth`` held back across
that re-exec (``session.release_held_signals``) are delivered to the handler here.
"""
from __future__ import annotations

import sys

from dfer_ros.ros.environment import EXIT_CANNOT_START_ROS, environment_problem
from dfer_ros.ros.memory import limit_malloc_arenas
from dfer_ros.ros.session import StopSignals, release_held_signals


def main(args=None) -> int:
    limit_malloc_arenas()  # before any inference or DDS thread exists
    with StopSignals() as stop:
        release_held_signals()
        if stop.is_set():  # stopped before anything started: nothing to tear down
            return 0
        problem = environment_problem()  # before rclpy is imported: rcl ends the process on a wrong rmw
        if problem:
            print(f"dfer_node: cannot start ROS: {problem}", file=sys.stderr)
            return EXIT_CANNOT_START_ROS
        from dfer_ros.ros.node import main as run_node  # the heavy imports, under the handler

        return run_node(args, stop=stop)


if __name__ == "__main__":
    sys.exit(main())
