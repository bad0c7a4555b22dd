"""``ros2 launch dfer_ros dfer.launch.py``: the dfer_node lifecycle node with its parameters file.

Launch arguments:
  image          image topic to subscribe to (default /camera/image_raw)
  params_file    parameters YAML (default: the installed config/dfer.yaml, every parameter with its default)
  model          'default', 'fer2013', a dfer export folder or a CLIP-adapter config YAML
  backend        onnxruntime | torch | tensorrt
  namespace      namespace of the node and its output topics (default: none)
  debug_image    publish the annotated debug_image (true/false)
  autostart      configure+activate by itself (false: leave it to a lifecycle manager)
  use_sim_time   use /clock (bag replay)
  hri            also publish the REP-155 (ROS4HRI) topics under /humans (needs hri_msgs)
  hri_mode       beside (next to hri_face_detect: expression, facs and person ids only) | producer (this node is
                 the stack's only face producer: also roi, landmarks, cropped, aligned, engagement_status, anonymous)

The node is a ``launch_ros.actions.LifecycleNode``, so a lifecycle manager or ``ros2 lifecycle set`` can
drive it when autostart is false. Values given here override the params file. Every value is given its
parameter type explicitly: launch would otherwise YAML-parse it, so ``model:=2024`` would reach the node as an
integer and an empty string as null.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("dfer_ros"), "config", "dfer.yaml")
    args = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters YAML"),
        DeclareLaunchArgument("model", default_value="default",
                              description="a registered model ('default', 'fer2013'), a dfer export folder or a "
                                          "CLIP-adapter config YAML"),
        DeclareLaunchArgument("backend", default_value="onnxruntime", description="onnxruntime | torch | tensorrt"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("debug_image", default_value="false", description="publish the annotated debug_image"),
        DeclareLaunchArgument("autostart", default_value="true", description="configure and activate by itself"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("hri", default_value="false",
                              description="publish REP-155 /humans/faces topics (needs the hri_msgs package)"),
        DeclareLaunchArgument("hri_mode", default_value="beside", choices=["beside", "producer"],
                              description="beside: next to hri_face_detect (expression, facs, person ids); producer: "
                                          "the only face producer (also roi, landmarks, cropped, aligned, "
                                          "engagement_status, anonymous)"),
    ]
    node = LifecycleNode(
        package="dfer_ros",
        executable="dfer_node",
        name="dfer_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                "publish_debug_image": ParameterValue(LaunchConfiguration("debug_image"), value_type=bool),
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "hri.enabled": ParameterValue(LaunchConfiguration("hri"), value_type=bool),
                "hri.mode": ParameterValue(LaunchConfiguration("hri_mode"), value_type=str),
            },
        ],
        remappings=[("image", LaunchConfiguration("image")),
                    ("image/compressed", [LaunchConfiguration("image"), "/compressed"])],
    )
    return LaunchDescription(args + [node])
