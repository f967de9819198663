"""Launch densepose_node next to a camera driver.

    ros2 launch densepose_ros densepose.launch.py image:=/camera/color/image_raw
    ros2 launch densepose_ros densepose.launch.py camera:=/camera compressed:=true
    ros2 launch densepose_ros densepose.launch.py camera:=/camera/camera depth:=true \\
        image:=/camera/camera/color/image_raw \\
        depth_image:=/camera/camera/aligned_depth_to_color/image_raw \\
        camera_info:=/camera/camera/aligned_depth_to_color/camera_info rviz:=true

`ros2 launch densepose_ros densepose.launch.py --show-args` lists the arguments. Arguments
left empty keep the value of ``params_file``. The rules live in
``densepose_ros.ros.launch_plan`` (tested without `launch`); ``densepose.launch.xml`` includes
this file.
"""

import os
import tempfile

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from densepose_ros.ros.launch_plan import LAUNCH_ARGUMENTS, plan_node, rviz_config

PACKAGE = "densepose_ros"


def _rviz(plan, share):
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        # Without rviz2 the launch would abort and leave the node running orphaned.
        return [LogInfo(msg="rviz:=true but rviz2 is not installed: starting without it")]
    with open(os.path.join(share, "rviz", "densepose.rviz")) as file:
        text = rviz_config(file.read(), plan.namespace, plan.rviz_fixed_frame)
    fd, path = tempfile.mkstemp(prefix="densepose_", suffix=".rviz")
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return [Node(package="rviz2", executable="rviz2", name="densepose_rviz",
                 namespace=plan.namespace, arguments=["-d", path], output="log")]


def _launch(context):
    share = get_package_share_directory(PACKAGE)
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    plan = plan_node(values, os.path.join(share, "config", "densepose.yaml"))
    parameters = [plan.params_file] + ([plan.overrides] if plan.overrides else [])
    node = Node(
        package=PACKAGE, executable="densepose_node", name="densepose",
        namespace=plan.namespace, output="screen", emulate_tty=True,
        parameters=parameters, remappings=plan.remappings,
        # The node is what this launch is for: when it ends, so does the launch (and rviz).
        on_exit=Shutdown(reason="densepose_node exited"),
    )
    return [node] + (_rviz(plan, share) if plan.rviz else [])


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in LAUNCH_ARGUMENTS.items()),
        OpaqueFunction(function=_launch),
    ])
