"""``ros2 launch dfer_ros dfer_demo.launch.py``: the video publisher (sample face video) feeding dfer_node.

Launch arguments: video (file; empty = the project's sample video), loop (true/false), debug_image.
The whole launch ends when the video ends (unless loop), because the publisher exits and is marked
``on_exit=Shutdown``. Without ROS 2 installed, ``make demo`` does the same from Python.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("dfer_ros")
    topic = "/demo/camera/image"
    return LaunchDescription([
        DeclareLaunchArgument("video", default_value="", description="video file (empty: sample face video)"),
        DeclareLaunchArgument("loop", default_value="false", description="replay the video forever"),
        DeclareLaunchArgument("debug_image", default_value="true", description="publish the annotated debug_image"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, "launch", "dfer.launch.py")),
            launch_arguments={"image": topic, "namespace": "demo",
                              "debug_image": LaunchConfiguration("debug_image")}.items()),
        Node(package="dfer_ros", executable="video_publisher", name="video_publisher", output="screen",
             parameters=[{"video": LaunchConfiguration("video"),
                          "loop": ParameterValue(LaunchConfiguration("loop"), value_type=bool),
                          "wait_for_subscribers": 1, "exit_on_end": True}],
             remappings=[("image", topic)], on_exit=Shutdown()),
    ])
