"""ros2 launch key2mesh_ros key2mesh.launch.py [params_file:=...] [image_topic:=...] [output_topic:=...]

Starts key2mesh_node with the package's parameter file and Fast DDS shared-memory profile.
Topics are parameters: ``image_topic:=`` / ``output_topic:=`` override the file's values
(CameraInfo follows the image unless ``camera_info_topic`` is set). ``key2mesh-node``
(key2mesh_ros/runner.py) does the same where the launch tool is absent.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "key2mesh_ros"
TOPIC_ARGUMENTS = ("image_topic", "output_topic")


def _node(context):
    # Only arguments given on the command line override the parameter file.
    overrides = {name: LaunchConfiguration(name).perform(context) for name in TOPIC_ARGUMENTS}
    overrides = {name: value for name, value in overrides.items() if value}
    return [Node(
        package=PACKAGE,
        executable="key2mesh_node",
        name="key2mesh_node",
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
    )]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "params.yaml"),
                              description="ROS 2 parameter YAML for key2mesh_node"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="camera image topic ('' = the parameter file's image_topic)"),
        DeclareLaunchArgument("output_topic", default_value="",
                              description="output topic ('' = the parameter file's output_topic)"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds_shm.xml")),
        OpaqueFunction(function=_node),
    ])
