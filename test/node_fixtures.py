"""Helpers for tests that run the real node: weights, frames, and a test-side ROS client."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from densepose_ros import paths
from densepose_ros.ros.node_config import NodeConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "config" / "densepose.yaml"
# Source-image stamp of the first test frame (ns).
STAMP0 = 1_700_000_000_000_000_000
# Node defaults the tests compare against.
DEFAULTS = NodeConfig()
# Low enough that the small untrained test model's detections get through.
TEST_SCORE_THRESHOLD = 0.05


def stamp_ns(header) -> int:
    """A message header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def publish_and_wait(client, image, stamp, timeout=60.0):
    """Publish one frame and return the DensePersonArray answering it."""
    client.image_pub.publish(client.image_msg(image, stamp))
    found = lambda: next((m for m in client.persons if stamp_ns(m.header) == stamp), None)  # noqa: E731
    assert client.spin_until(lambda: found() is not None, timeout), "no output for the frame"
    return found()


def make_test_weights(path: Path) -> Path:
    """An untrained light model, seeded, saved in the project's own weight format."""
    import torch

    from densepose_ros.inference.checkpoint import save_weights
    from densepose_ros.modeling import build_model
    from densepose_ros.modeling.config import LIGHT_CONFIG_NAME, get_config

    torch.manual_seed(1234)
    cfg = get_config(LIGHT_CONFIG_NAME)
    model = build_model(cfg)
    save_weights(path, model, cfg, metadata={"purpose": "tests: untrained, seeded"})
    return path


def vtest_frames(count: int, size: tuple[int, int] | None = (320, 240)) -> list[np.ndarray]:
    """The first frames of OpenCV's vtest.avi (real pedestrians), optionally resized."""
    capture = cv2.VideoCapture(str(paths.sample_data_dir() / "vtest.avi"))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, "vtest.avi missing or short (run make setup)"
        frames.append(cv2.resize(frame, size) if size else frame)
    return frames


def node_args(weights: Path, *extra: str) -> list[str]:
    """The shipped parameter file plus what these tests must change, and why: a small seeded
    model (the bundled one is covered by test_node_qos), a threshold its detections pass,
    the CPU (identical numbers to the in-test reference), and fast diagnostics (tests read
    them). QoS stays at its default."""
    return [
        "--params-file", str(PARAMS_FILE), "-p", f"weights:={weights}", "-p", "device:=cpu",
        "-p", f"score_threshold:={TEST_SCORE_THRESHOLD}", "-p", "diagnostics_period:=0.2",
        *extra,
    ]


class RosClient:
    """Test-side rclpy node: publishes frames, collects outputs, calls node services."""

    def __init__(self, context, node_name: str = "densepose", inputs: bool = True):
        """``inputs=False``: no publishers of the node's inputs (a separate camera process
        publishes them)."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        from densepose_ros.msg import DensePersonArray

        self.context = context
        self.node = Node("densepose_test_client", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        # Inputs as camera drivers publish them: the default QoS (reliable, keep last 10).
        if inputs:
            self.image_pub = self.node.create_publisher(Image, "image", 10)
            self.compressed_pub = self.node.create_publisher(
                CompressedImage, "image/compressed", 10)
            self.depth_pub = self.node.create_publisher(Image, "depth", 10)
            self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", 10)
        # Outputs as rviz and recorders read them (best available), deep enough to keep all.
        qos = QoSProfile(depth=300, reliability=ReliabilityPolicy.BEST_AVAILABLE)
        self.persons, self.iuv, self.debug, self.points, self.diagnostics = [], [], [], [], []
        self.persons_sub = self.node.create_subscription(
            DensePersonArray, "densepose/persons", self.persons.append, qos)
        self.iuv_sub = self.node.create_subscription(Image, "densepose/iuv", self.iuv.append,
                                                     qos)
        self.node.create_subscription(PointCloud2, "densepose/surface_points",
                                      self.points.append, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append,
                                      qos)
        self._debug_qos = qos
        self.node_name = node_name

    def subscribe_debug(self):
        from sensor_msgs.msg import Image

        return self.node.create_subscription(
            Image, "densepose/debug_image", self.debug.append, self._debug_qos)

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def wait_for_outputs(self, timeout: float = 60.0) -> bool:
        """Until the node's persons and IUV publishers are matched with our subscriptions:
        a subscriber that joins late misses the frames published before (discovery between
        processes takes seconds on a loaded machine), and some tests count every frame."""
        return self.spin_until(lambda: self.persons_sub.get_publisher_count() > 0
                               and self.iuv_sub.get_publisher_count() > 0, timeout)

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_for_node(self, timeout: float = 120.0) -> bool:
        """Until the node subscribes to our image topic (it is active)."""
        pub = self.compressed_pub if self.compressed_pub.get_subscription_count() else None
        return self.spin_until(
            lambda: self.image_pub.get_subscription_count() > 0
            or (pub or self.compressed_pub).get_subscription_count() > 0, timeout)

    def image_msg(self, image_bgr: np.ndarray, stamp_ns: int, frame_id: str = "cam_optical"):
        from sensor_msgs.msg import Image

        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame_id
        msg.height, msg.width = image_bgr.shape[:2]
        msg.encoding, msg.is_bigendian, msg.step = "bgr8", 0, image_bgr.shape[1] * 3
        msg.data = image_bgr.tobytes()
        return msg

    def statuses(self):
        """The node's DiagnosticStatus messages so far, oldest first."""
        return [status for array in self.diagnostics for status in array.status
                if status.name.startswith(f"{self.node_name}:")]

    def diagnostic_values(self) -> dict[str, str]:
        statuses = self.statuses()
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(srv_type, name)
        assert self.spin_until(client.service_is_ready, timeout), f"service {name} not ready"
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f"service {name} did not answer"
        self.node.destroy_client(client)
        return future.result()

    def change_state(self, transition_label: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE,
               "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE,
               "cleanup": Transition.TRANSITION_CLEANUP}
        request = ChangeState.Request()
        request.transition.id = ids[transition_label]
        return self.call(ChangeState, f"{self.node_name}/change_state", request).success

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{self.node_name}/get_state", GetState.Request()) \
            .current_state.label

    def set_parameter(self, name: str, value):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()]
        return self.call(SetParameters, f"{self.node_name}/set_parameters", request).results[0]

    def close(self):
        self.executor.remove_node(self.node)
        self.node.destroy_node()
