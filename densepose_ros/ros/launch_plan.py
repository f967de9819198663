"""What the launch files do with their arguments, without `launch` (ROS-free, stdlib + yaml).

``launch/densepose.launch.py`` declares ``LAUNCH_ARGUMENTS`` and turns the values into a
node with ``plan_node``; ``launch/densepose.launch.xml`` includes that file, so both behave
the same. Kept here, importable without `launch`, so that every rule is tested on machines
where `launch` has no wheel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# name: (default, description). An empty default means "not set here": the node's value
# comes from params_file.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "camera": ("/camera", "camera namespace: <camera>/image_raw, <camera>/depth/image_raw and "
               "<camera>/camera_info unless image, depth_image or camera_info are given"),
    "image": ("", "image topic; empty: <camera>/image_raw (with compressed: the node reads "
              "<image>/compressed)"),
    "depth_image": ("", "depth aligned to the image; empty: <camera>/depth/image_raw "
                    "(RealSense: <camera>/aligned_depth_to_color/image_raw)"),
    "camera_info": ("", "camera_info of that depth; empty: <camera>/camera_info (RealSense: "
                    "<camera>/aligned_depth_to_color/camera_info)"),
    "compressed": ("", "true/false: read <image>/compressed (JPEG/PNG); empty: params_file"),
    "depth": ("", "true/false: use depth + camera_info for 3D points; empty: params_file"),
    "backend": ("", "auto, tensorrt, onnxruntime, openvino or torch; empty: params_file"),
    "weights": ("", "model file or export folder; empty: params_file"),
    "params_file": ("", "parameters YAML; empty: the installed config/densepose.yaml"),
    "namespace": ("", "namespace of the node (and of its output topics)"),
    "rviz": ("false", "true: start rviz2 with the overlay, IUV and surface points, if "
             "rviz2 is installed"),
    "rviz_fixed_frame": ("camera_color_optical_frame",
                         "rviz fixed frame: the camera's optical frame"),
}

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_bool(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"launch argument {name}:='{value}' must be true or false")


def normalize_name(name: str) -> str:
    """A ROS name or namespace as users type it, made valid: repeated and trailing slashes
    removed ('/cam//' -> '/cam'); '/' stays the root; '' stays relative-empty."""
    text = name.strip()
    absolute = text.startswith("/")
    parts = [part for part in text.split("/") if part]
    joined = "/".join(parts)
    return "/" + joined if absolute else joined


def join_name(namespace: str, name: str) -> str:
    """``name`` inside ``namespace`` ('/cam/' + 'image_raw' -> '/cam/image_raw'); an empty
    namespace leaves ``name`` relative (resolved in the node's namespace)."""
    namespace = normalize_name(namespace)
    if namespace == "/":
        return "/" + normalize_name(name).lstrip("/")
    return normalize_name(f"{namespace}/{name}" if namespace else name)


@dataclass
class NodePlan:
    """The densepose node a launch starts.

    namespace: the node's namespace ('' or absolute/relative without trailing slash).
    params_file: the parameters YAML given to the node first.
    overrides: parameters set by launch arguments, applied after params_file.
    remappings: (from, to) topic remappings.
    rviz: whether rviz2 is wanted; rviz_fixed_frame: its fixed frame.
    """

    namespace: str
    params_file: str
    overrides: dict[str, object] = field(default_factory=dict)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    rviz: bool = False
    rviz_fixed_frame: str = ""


def plan_node(values: dict[str, str], default_params_file: str) -> NodePlan:
    """The node for launch argument ``values`` (every name of LAUNCH_ARGUMENTS; missing ones
    take their defaults). ValueError for a malformed value."""
    unknown = set(values) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise ValueError(f"unknown launch arguments: {', '.join(sorted(unknown))}")
    get = {name: values.get(name, default) for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    camera = get["camera"]
    image = normalize_name(get["image"]) or join_name(camera, "image_raw")
    depth = normalize_name(get["depth_image"]) or join_name(camera, "depth/image_raw")
    info = normalize_name(get["camera_info"]) or join_name(camera, "camera_info")
    for name, topic in (("image", image), ("depth_image", depth), ("camera_info", info)):
        name = name if get[name].strip() else f"camera (for {name})"
        # ROS 2 name rules: tokens of letters, digits and '_', not starting with a digit.
        tokens = topic.lstrip("/").split("/")
        if not all(re.fullmatch(r"~?[A-Za-z_][A-Za-z0-9_]*", token) for token in tokens):
            raise ValueError(f"launch argument {name} gives an invalid topic name '{topic}'")
    # The node reads <image>/compressed itself (image_transport's convention): remapping
    # `image` is enough for both.
    remappings = [("image", image), ("depth", depth), ("camera_info", info)]
    overrides: dict[str, object] = {}
    if get["compressed"].strip():
        overrides["use_compressed"] = parse_bool("compressed", get["compressed"])
    if get["depth"].strip():
        overrides["use_depth"] = parse_bool("depth", get["depth"])
    for name in ("backend", "weights"):
        if get[name].strip():
            overrides[name] = get[name].strip()
    return NodePlan(
        namespace=normalize_name(get["namespace"]),
        params_file=get["params_file"].strip() or default_params_file,
        overrides=overrides,
        remappings=remappings,
        rviz=parse_bool("rviz", get["rviz"]),
        rviz_fixed_frame=get["rviz_fixed_frame"].strip() or "camera_color_optical_frame",
    )


def rviz_config(template: str, namespace: str, fixed_frame: str) -> str:
    """The installed rviz config (``rviz/densepose.rviz``, topics under the root namespace)
    with its ``/densepose/...`` topics moved under the node's ``namespace`` and its fixed
    frame replaced."""
    import yaml

    config = yaml.safe_load(template)
    prefix = normalize_name(namespace).strip("/")
    manager = config["Visualization Manager"]
    for display in manager["Displays"]:
        topic = display.get("Topic")
        if isinstance(topic, dict) and str(topic.get("Value", "")).startswith("/densepose/"):
            topic["Value"] = (f"/{prefix}" if prefix else "") + topic["Value"]
    manager["Global Options"]["Fixed Frame"] = fixed_frame
    return yaml.safe_dump(config, sort_keys=False)
