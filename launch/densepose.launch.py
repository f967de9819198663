"""Launch densepose_node next to a camera driver.

    ros2 launch densepose_ros densepose.launch.py image:=/camera/color/image_raw
    ros2 launch densepose_ros densepose.launch.py camera:=/camera compressed:=true
    ros2 launch densepose_ros densepose.launch.py params_file:=my.yaml backend:=tensorrt rviz:=true

Arguments: ``camera`` (namespace whose ``image_raw``, ``depth/image_raw`` and
``camera_info`` are used when ``image`` is empty), ``image`` (explicit image topic),
``compressed``, ``depth``, ``params_file``, ``backend``, ``weights``, ``namespace``, ``rviz``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "densepose_ros"


def _node(context):
    share = get_package_share_directory(PACKAGE)
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    camera = value("camera").rstrip("/")
    image = value("image") or f"{camera}/image_raw"
    remappings = [("image", image), ("image/compressed", f"{image}/compressed"),
                  ("depth", f"{camera}/depth/image_raw"), ("camera_info", f"{camera}/camera_info")]
    overrides = {
        "use_compressed": value("compressed").lower() == "true",
        "use_depth": value("depth").lower() == "true",
        "backend": value("backend"),
    }
    if value("weights"):
        overrides["weights"] = value("weights")
    params_file = value("params_file") or os.path.join(share, "config", "densepose.yaml")
    return [Node(
        package=PACKAGE, executable="densepose_node", name="densepose",
        namespace=value("namespace"), output="screen", emulate_tty=True,
        parameters=[params_file, overrides], remappings=remappings,
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="/camera",
                              description="camera namespace (image_raw, depth, camera_info)"),
        DeclareLaunchArgument("image", default_value="",
                              description="image topic; empty: <camera>/image_raw"),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="subscribe to <image>/compressed (JPEG/PNG)"),
        DeclareLaunchArgument("depth", default_value="false",
                              description="use aligned depth + camera_info for 3D points"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="parameters YAML; empty: the installed default"),
        DeclareLaunchArgument("backend", default_value="auto",
                              description="auto, tensorrt, onnxruntime or torch"),
        DeclareLaunchArgument("weights", default_value="",
                              description="model file; empty: value from params_file"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        OpaqueFunction(function=_node),
        Node(
            package="rviz2", executable="rviz2", name="densepose_rviz",
            arguments=["-d", os.path.join(share, "rviz", "densepose.rviz")],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])
