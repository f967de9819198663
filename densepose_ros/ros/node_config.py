"""Every parameter of the DensePose node, its default, range and description, once.

``config/densepose.yaml`` carries the same names (a test keeps the two in step), the node
declares ROS parameters from this dataclass, and the README's parameter table is generated
from it (``python -m densepose_ros.ros.node_config``). ROS-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densepose_ros.inference.postprocess import CHART_MODES, DEFAULT_CHART_MODE
from densepose_ros.inference.precision import ENGINE_PRECISIONS, OPENVINO_PRECISIONS
from densepose_ros.runtime.base import DEFAULT_SCORE_THRESHOLD
from densepose_ros.runtime.factory import BACKEND_NAMES
from densepose_ros.tracking.bytetrack import TrackerConfig

# The tracker's defaults live in TrackerConfig; the parameters below start from them.
_TRACKER = TrackerConfig()


def _param(default, description: str, *, runtime: bool = False, range_=None, choices=None):
    """A parameter: ``runtime`` ones may change while the node runs (``ros2 param set``)."""
    return field(
        default=default,
        metadata={"description": description, "runtime": runtime, "range": range_,
                  "choices": choices},
    )


@dataclass
class NodeConfig:
    """Parameters of ``densepose_node``."""

    # --- model -------------------------------------------------------------------------
    weights: str = _param(
        "", "Model: a .pth file (from `densepose import-d2`/`train`) or an export folder (from "
        "`densepose export`, for onnxruntime/openvino/tensorrt; `--int8` for INT8). Empty: the "
        "bundled default model.")
    allow_untrained: bool = _param(
        False, "If no weights are available, run an UNTRAINED model of `untrained_config` "
        "(outputs are meaningless; for plumbing tests only). Logged loudly.")
    untrained_config: str = _param(
        "", "Model configuration used with allow_untrained (empty: the light configuration).")
    backend: str = _param(
        "auto", "Inference backend; auto picks the fastest available and logs why.",
        choices=BACKEND_NAMES)
    device: str = _param("auto", "Device: auto, cpu, cuda or cuda:N.")
    tensorrt_precision: str = _param(
        "", "TensorRT engine precision; empty: $DENSEPOSE_TRT_PRECISION, else fp16. int8 "
        "needs engines built beforehand (`densepose build-engine --int8 --calib ...`).",
        choices=("", *ENGINE_PRECISIONS))
    openvino_precision: str = _param(
        "", "OpenVINO precision; empty: $DENSEPOSE_OV_PRECISION, else bf16 on CPUs with AMX "
        "or AVX512-BF16, fp16 on GPUs, else fp32.", choices=("", *OPENVINO_PRECISIONS))
    # --- detection and output (safe to change at run time) -----------------------------
    score_threshold: float = _param(
        DEFAULT_SCORE_THRESHOLD, "Minimum detection score of a published person.",
        runtime=True, range_=(0.0, 1.0))
    nms_threshold: float = _param(
        0.5, "IoU threshold of the box non-maximum suppression.", runtime=True,
        range_=(0.0, 1.0))
    max_persons: int = _param(
        20, "Most persons published per frame (highest scores first).", runtime=True,
        range_=(1, 100))
    resize_shortest_edge: int = _param(
        0, "Resize input so its shorter side is this many pixels; 0: the model's default; "
        "-1: no resize (run at the image's own size).", runtime=True, range_=(-1, 2000))
    resize_max_size: int = _param(
        0, "Upper bound of the longer side after resizing; 0: the model's default.",
        runtime=True, range_=(0, 4000))
    correspondence_stride: int = _param(
        8, "Grid stride in pixels of the sampled surface correspondences.", runtime=True,
        range_=(1, 128))
    chart_mode: str = _param(
        DEFAULT_CHART_MODE, "How charts are resampled to each person's box: exact (as "
        "detectron2, so results match the model zoo's published accuracy) or fast (labels "
        "decided on the predictor grid; cheaper, blockier on large boxes).", runtime=True,
        choices=CHART_MODES)
    chart_max_size: int = _param(
        0, "Cap on the dense chart's longer side per person (0: full box resolution).",
        runtime=True, range_=(0, 2048))
    # --- tracking ------------------------------------------------------------------------
    tracking: bool = _param(
        True, "Follow people over frames (ByteTrack-style): DensePerson.id stays with a "
        "person while tracked; off: every id is 0 and each frame stands alone.")
    track_low_threshold: float = _param(
        _TRACKER.low_threshold, "Detections scoring from here up to score_threshold keep "
        "a track alive (a person partly hidden keeps their id) but start none and are not "
        "published.", runtime=True,
        range_=(0.0, 1.0))
    track_buffer: int = _param(
        _TRACKER.track_buffer, "Frames (processed ones) a track survives without a "
        "detection before it ends.", runtime=True, range_=(0, 10000))
    track_box_smoothing: float = _param(
        _TRACKER.box_smoothing, "Weight of the predicted box in a tracked person's box "
        "(0: the detection as it is).", runtime=True, range_=(0.0, 0.95))
    publish_persons: bool = _param(True, "Publish densepose/persons.", runtime=True)
    publish_iuv: bool = _param(True, "Publish densepose/iuv.", runtime=True)
    publish_debug_image: bool = _param(
        True, "Publish densepose/debug_image (computed only while subscribed).", runtime=True)
    publish_surface_points: bool = _param(
        True, "Publish densepose/surface_points when depth is on.", runtime=True)
    publish_markers: bool = _param(
        True, "Publish densepose/markers (rviz: id labels and 3D skeletons) when depth is on.",
        runtime=True)
    marker_lifetime: float = _param(
        0.5, "Seconds a person's markers stay in rviz without an update.", runtime=True,
        range_=(0.05, 60.0))
    # --- input -------------------------------------------------------------------------
    use_compressed: bool = _param(
        False, "Subscribe to image/compressed (JPEG/PNG) instead of image.")
    use_depth: bool = _param(
        False, "Subscribe to depth (aligned 16UC1 mm or 32FC1 m) and camera_info for 3D "
        "points.")
    depth_max_age: float = _param(
        0.1, "Largest stamp difference (s) between a colour frame and the depth frame used.",
        runtime=True, range_=(0.0, 10.0))
    max_image_pixels: int = _param(
        40_000_000, "Frames with more pixels are rejected as absurdly large.", runtime=True,
        range_=(1, 400_000_000))
    # --- QoS and lifecycle -------------------------------------------------------------
    qos_reliability: str = _param(
        "best_available", "Reliability of the image, depth and camera_info subscriptions. "
        "best_available: reliable toward reliable publishers (what most camera drivers "
        "offer; large frames need it), best effort toward best-effort ones. "
        "`qos_overrides.<topic>.subscription.reliability` overrides it per topic.",
        choices=("best_available", "best_effort", "reliable"))
    qos_depth: int = _param(1, "History depth of the image subscriptions.", range_=(1, 100))
    input_timeout: float = _param(
        5.0, "Seconds without a frame, while the image topic has publishers, before a warning "
        "(once per episode, naming the publishers' QoS and the likely cause) and WARN "
        "diagnostics; 0: off.", runtime=True, range_=(0.0, 3600.0))
    autostart: bool = _param(
        True, "Configure and activate on start, so plain `ros2 run` works without a "
        "lifecycle manager.")
    diagnostics_period: float = _param(
        1.0, "Seconds between /diagnostics messages.", range_=(0.1, 60.0))

    @classmethod
    def specs(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    @classmethod
    def runtime_names(cls) -> set[str]:
        return {f.name for f in cls.specs() if f.metadata["runtime"]}

    def validate(self) -> None:
        """Raise ValueError naming the first parameter outside its range or choices."""
        for spec in self.specs():
            check_value(spec.name, getattr(self, spec.name))

    @classmethod
    def from_params_file(cls, path, node_name: str = "densepose") -> NodeConfig:
        """The parameters a ROS parameter file (``--params-file``, like
        ``config/densepose.yaml``) gives the node ``node_name``: its ``/**`` section, then its
        own (``densepose`` or ``/densepose``). ValueError for an unreadable file, an unknown
        name or a wrong value or type."""
        import yaml

        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"cannot read parameter file {path}: {error}") from None
        params: dict[str, Any] = {}
        for section in ("/**", node_name, f"/{node_name}"):
            entry = document.get(section) if isinstance(document, dict) else None
            if isinstance(entry, dict):
                params.update(entry.get("ros__parameters") or {})
        fields = {f.name: f for f in cls.specs()}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise ValueError(f"{path}: unknown parameter(s) {', '.join(unknown)}")
        for name, value in params.items():
            kind = type(fields[name].default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                params[name] = value = float(value)  # YAML's 1 for 1.0, as ROS accepts
            if type(value) is not kind:
                raise ValueError(f"{path}: {name} must be a {kind.__name__}, got {value!r}")
        return cls().replace(**params)

    def replace(self, **changes: Any) -> NodeConfig:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


def check_value(name: str, value: Any) -> None:
    spec = {f.name: f for f in NodeConfig.specs()}[name]
    range_, choices = spec.metadata["range"], spec.metadata["choices"]
    if choices is not None and value not in choices:
        raise ValueError(f"{name} must be one of {_choice_list(choices)} (got '{value}')")
    if range_ is not None and not range_[0] <= value <= range_[1]:
        raise ValueError(f"{name} must be in [{range_[0]}, {range_[1]}] (got {value})")


def _choice_list(choices: tuple[str, ...]) -> str:
    return ", ".join(c if c else "'' (empty)" for c in choices)


def markdown_table() -> str:
    """The README's parameter table."""
    rows = ["| parameter | default | run time | description |", "| --- | --- | --- | --- |"]
    for spec in NodeConfig.specs():
        extra = ""
        if spec.metadata["choices"]:
            extra = f" One of: {_choice_list(spec.metadata['choices'])}."
        elif spec.metadata["range"]:
            extra = f" Range {spec.metadata['range'][0]}..{spec.metadata['range'][1]}."
        runtime = "yes" if spec.metadata["runtime"] else "no"
        rows.append(f"| `{spec.name}` | `{spec.default!r}` | {runtime} | "
                    f"{spec.metadata['description']}{extra} |")
    return "\n".join(rows)


def params_yaml() -> str:
    """``config/densepose.yaml``: every parameter with its default and description."""
    import textwrap

    lines = [
        "# Parameters of densepose_node (densepose_ros). Generated from",
        "# densepose_ros/ros/node_config.py (`python -m densepose_ros.ros.node_config --yaml`),",
        "# where every name, default, range and description lives; copy it and change what you",
        "# need.",
        "/**:",
        "  ros__parameters:",
    ]
    for spec in NodeConfig.specs():
        text = spec.metadata["description"] + (" [run time]" if spec.metadata["runtime"] else "")
        lines += [f"    # {line}" for line in textwrap.wrap(text, 84)]
        value = spec.default
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, str):
            shown = f'"{value}"'
        else:
            shown = repr(value)
        lines.append(f"    {spec.name}: {shown}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(params_yaml() if "--yaml" in sys.argv else markdown_table(), end="")
