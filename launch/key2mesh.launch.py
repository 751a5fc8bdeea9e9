"""ros2 launch key2mesh_ros key2mesh.launch.py [params_file:=...] [image_topic:=...]

Starts key2mesh_node with the package's parameter file and Fast DDS shared-memory profile.
``key2mesh-node`` (key2mesh_ros/runner.py) does the same where the launch tool is absent.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "key2mesh_ros"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    params_file = LaunchConfiguration("params_file")
    image_topic = LaunchConfiguration("image_topic")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "params.yaml"),
                              description="ROS 2 parameter YAML for key2mesh_node"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera image topic to subscribe to"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds_shm.xml")),
        Node(
            package=PACKAGE,
            executable="key2mesh_node",
            name="key2mesh_node",
            output="screen",
            parameters=[params_file],
            remappings=[("/camera/image_raw", image_topic)],
        ),
    ])
