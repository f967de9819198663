"""The launch files under the real ROS 2 launch (`launch`, `launch_ros`, `launch_xml`), as
`ros2 launch` runs them: each case was a failure seen when they were first run that way.

`launch` has no wheels for these machines, so this module skips where it is not importable;
`make test-launch LAUNCH_SRC=DIR` builds it from upstream sources and runs it, and on a
ROS 2 installation (`source /opt/ros/<distro>/setup.bash`) it runs as it is.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import time
from pathlib import Path

import pytest

from densepose_ros import paths

pytestmark = pytest.mark.ros

if not all(importlib.util.find_spec(m) for m in ("launch", "launch_ros", "launch_xml")):
    if os.environ.get("DENSEPOSE_REQUIRE_LAUNCH") == "1":
        raise RuntimeError("DENSEPOSE_REQUIRE_LAUNCH=1 but ROS 2 launch is not importable")
    pytest.skip("ROS 2 launch is not installed here (no wheels): `make test-launch "
                "LAUNCH_SRC=DIR` or a ROS 2 installation runs these", allow_module_level=True)

RUNNER = "test/launch_runner.py"
DEFAULT_YAML = Path(__file__).resolve().parent.parent / "config" / "densepose.yaml"


def launch_file(kind: str) -> str:
    share = paths.share_dir()
    assert share is not None, "colcon install not sourced"
    return str(share / "launch" / f"densepose.launch.{kind}")


def start_launch(ros_process, kind: str, *arguments: str):
    return ros_process([RUNNER, launch_file(kind), *arguments], name=f"launch_{kind}")


def subscribers(client, topic: str) -> set[str]:
    return {f"{i.node_namespace.rstrip('/')}/{i.node_name}"
            for i in client.node.get_subscriptions_info_by_topic(topic)}


def node_pid(launch) -> int:
    match = re.search(r"\[densepose_node-1\]: process started with pid \[(\d+)\]",
                      launch.output())
    assert match, launch.output()
    return int(match.group(1))


def stop(launch) -> None:
    launch.popen.send_signal(signal.SIGINT)
    launch.popen.wait(timeout=30)


def gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("kind", ["py", "xml"])
def test_trailing_slash_camera_and_rviz_without_rviz2(ros_process, client, kind):
    launch = start_launch(ros_process, kind, "camera:=/cam/", "rviz:=true")
    assert client.spin_until(lambda: "/densepose" in subscribers(client, "/cam/image_raw"),
                             120), launch.output()
    assert "rviz2 is not installed: starting without it" in launch.output()
    assert launch.alive(), launch.output()
    pid = node_pid(launch)
    stop(launch)
    assert gone(pid), "the node outlived its launch (orphaned)"


@pytest.mark.parametrize("kind", ["py", "xml"])
def test_params_file_values_are_not_overridden(ros_process, client, kind, tmp_path,
                                               untrained_weights):
    params = tmp_path / "robot.yaml"
    params.write_text(DEFAULT_YAML.read_text()
                      .replace("use_compressed: false", "use_compressed: true")
                      .replace("use_depth: false", "use_depth: true")
                      .replace('weights: ""', f'weights: "{untrained_weights}"'))
    launch = start_launch(ros_process, kind, f"params_file:={params}", "namespace:=/robot/",
                          "camera:=/robot/cam")
    for topic in ("/robot/cam/image_raw/compressed", "/robot/cam/depth/image_raw",
                  "/robot/cam/camera_info"):
        assert client.spin_until(lambda t=topic: "/robot/densepose" in subscribers(client, t),
                                 120), (topic, launch.output())
    assert "untrained_light.pth" in launch.output()
    assert subscribers(client, "/robot/cam/image_raw") == set()
    stop(launch)


def test_xml_passes_weights_and_launch_arguments_override(ros_process, client,
                                                          untrained_weights):
    launch = start_launch(ros_process, "xml", f"weights:={untrained_weights}",
                          "compressed:=false", "image:=/front/image_color")
    assert client.spin_until(
        lambda: "/densepose" in subscribers(client, "/front/image_color"), 120), launch.output()
    assert "untrained_light.pth" in launch.output()
    stop(launch)
