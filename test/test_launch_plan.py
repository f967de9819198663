"""The launch files' rules (densepose_ros.ros.launch_plan), without `launch`: each case here was
a bug of the launch files when they were run under the real ROS 2 launch."""

from pathlib import Path

import pytest
import yaml

from densepose_ros.ros.launch_plan import (
    LAUNCH_ARGUMENTS,
    join_name,
    normalize_name,
    plan_node,
    rviz_config,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS = "/opt/share/densepose_ros/config/densepose.yaml"


def remaps(**values) -> dict[str, str]:
    return dict(plan_node(values, DEFAULT_PARAMS).remappings)


@pytest.mark.parametrize(("camera", "image"), [
    ("/camera", "/camera/image_raw"),
    ("/cam/", "/cam/image_raw"),  # once '/cam//image_raw': the node died on the remap
    ("//cam//left//", "/cam/left/image_raw"),
    ("/", "/image_raw"),
    ("", "image_raw"),  # relative: resolved in the node's namespace
    ("cam/", "cam/image_raw"),
])
def test_camera_namespace_gives_valid_topics(camera, image):
    topics = remaps(camera=camera)
    assert topics["image"] == image
    assert topics["depth"] == join_name(camera, "depth/image_raw")
    assert topics["camera_info"] == join_name(camera, "camera_info")
    assert "//" not in "".join(topics.values()) and not any(
        t.endswith("/") for t in topics.values())


def test_explicit_topics_win_and_are_normalised():
    topics = remaps(camera="/camera/camera", image="/camera/camera/color/image_raw/",
                    depth_image="/camera/camera/aligned_depth_to_color/image_raw",
                    camera_info="/camera/camera/aligned_depth_to_color/camera_info")
    assert topics == {
        "image": "/camera/camera/color/image_raw",
        "depth": "/camera/camera/aligned_depth_to_color/image_raw",
        "camera_info": "/camera/camera/aligned_depth_to_color/camera_info",
    }


def test_compressed_is_not_remapped_separately():
    # the node reads <image>/compressed itself; a remap of image/compressed had no effect
    assert set(remaps(image="/cam/image_raw", compressed="true")) == {
        "image", "depth", "camera_info"}


def test_params_file_values_are_kept_unless_an_argument_is_given():
    plan = plan_node({}, DEFAULT_PARAMS)
    assert plan.overrides == {} and plan.params_file == DEFAULT_PARAMS
    plan = plan_node({"params_file": "/robot/my.yaml"}, DEFAULT_PARAMS)
    assert plan.params_file == "/robot/my.yaml" and plan.overrides == {}
    plan = plan_node({"compressed": "True", "depth": "false", "backend": "onnxruntime",
                      "weights": "/models/r50.pth"}, DEFAULT_PARAMS)
    assert plan.overrides == {"use_compressed": True, "use_depth": False,
                              "backend": "onnxruntime", "weights": "/models/r50.pth"}


@pytest.mark.parametrize("values", [{"compressed": "maybe"}, {"rviz": "yes please"},
                                    {"image": "/"}, {"camera": "/9cam"}, {"nonsense": "1"}])
def test_malformed_arguments_are_refused_with_their_name(values):
    with pytest.raises(ValueError, match=next(iter(values)) if "nonsense" not in values
                       else "unknown launch arguments"):
        plan_node(values, DEFAULT_PARAMS)


def test_namespaces_are_normalised():
    assert normalize_name("/robot/") == "/robot"
    assert normalize_name("") == ""
    assert plan_node({"namespace": "/robot//"}, DEFAULT_PARAMS).namespace == "/robot"


def rviz_topics(text: str) -> set[str]:
    config = yaml.safe_load(text)
    return {d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]}


@pytest.mark.parametrize(("namespace", "prefix"), [("", ""), ("/robot/", "/robot"),
                                                   ("robot", "/robot"), ("/a/b", "/a/b")])
def test_rviz_config_follows_the_namespace_and_fixed_frame(namespace, prefix):
    template = (ROOT / "rviz" / "densepose.rviz").read_text()
    text = rviz_config(template, namespace, "base_camera_optical")
    assert rviz_topics(text) == {f"{prefix}/densepose/{name}" for name in (
        "debug_image", "iuv", "surface_points", "markers")}
    config = yaml.safe_load(text)
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == \
        "base_camera_optical"
    # everything else is the installed file's
    original = yaml.safe_load(template)
    assert config["Window Geometry"] == original["Window Geometry"]
    assert len(config["Visualization Manager"]["Displays"]) == 4


def test_every_argument_is_described():
    for name, (default, description) in LAUNCH_ARGUMENTS.items():
        assert description and isinstance(default, str), name
