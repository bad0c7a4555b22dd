"""``ros2 launch dfer_ros dfer_demo.launch.py``: the video publisher (sample face video) feeding dfer_node.

Launch arguments: video (file; empty = the project's sample video, fetched by ``ros2 run dfer_ros
fetch_assets``), loop (true/false), debug_image, hri. The whole launch ends when the video ends (unless loop):
the publisher exits and ``end_launch_when_publisher_exits`` asks for a shutdown. That handler is not
``on_exit=Shutdown()``: on Ctrl-C the launch is already shutting down when the publisher exits, and a second
Shutdown event makes launch_ros shut its ROS adapter down twice ("Cannot shutdown a ROS adapter that is not
running"), so the launch exited 1. Without ROS 2 installed, ``make demo`` does the same from Python.

Before anything starts, ``check_assets`` makes sure the sample video (unless ``video`` is given) and the default
model's weights are in the cache; if not, the launch fails at once (exit code 1) with one line naming
``fetch_assets``. A video publisher that fails (exit code not 0) fails the launch too.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler,
                            Shutdown)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

TOPIC = "/demo/camera/image"


class DemoError(RuntimeError):
    """Raised inside the launch: ``ros2 launch`` prints its message on one line and exits 1."""


def check_assets(context):
    """OpaqueFunction run first: fail the launch before any process starts when the demo's assets are missing."""
    from dfer_ros.asset_fetch import demo_asset_problem

    problem = demo_asset_problem(sample_video=not LaunchConfiguration("video").perform(context))
    if problem:
        raise DemoError(problem)
    return []


def end_launch_when_publisher_exits(event, context):
    """OnProcessExit handler of the video publisher: end the launch, unless it is already ending (Ctrl-C); a
    publisher that failed fails the launch (an error raised here makes ``ros2 launch`` exit 1)."""
    if context.is_shutdown:
        return None
    if event.returncode != 0:
        raise DemoError(f"video_publisher exited with code {event.returncode} (its error is above)")
    return [Shutdown(reason="video_publisher reached the end of the video")]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("dfer_ros")
    publisher = Node(
        package="dfer_ros", executable="video_publisher", name="video_publisher", output="screen",
        parameters=[{"video": ParameterValue(LaunchConfiguration("video"), value_type=str),
                     "loop": ParameterValue(LaunchConfiguration("loop"), value_type=bool),
                     "wait_for_subscribers": 1, "exit_on_end": True}],
        remappings=[("image", TOPIC)])
    return LaunchDescription([
        DeclareLaunchArgument("video", default_value="", description="video file (empty: sample face video)"),
        DeclareLaunchArgument("loop", default_value="false", description="replay the video forever"),
        DeclareLaunchArgument("debug_image", default_value="true", description="publish the annotated debug_image"),
        DeclareLaunchArgument("hri", default_value="false", description="publish REP-155 /humans/faces topics"),
        OpaqueFunction(function=check_assets),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, "launch", "dfer.launch.py")),
            launch_arguments={"image": TOPIC, "namespace": "demo",
                              "debug_image": LaunchConfiguration("debug_image"),
                              "hri": LaunchConfiguration("hri")}.items()),
        publisher,
        RegisterEventHandler(OnProcessExit(target_action=publisher, on_exit=end_launch_when_publisher_exits)),
    ])
