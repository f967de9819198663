"""ROS 2 glue of densepose_ros: the managed (lifecycle) node ``densepose``.

All work happens in the ROS-free core (``FrameProcessor``, ``image_codec``, backends); this
file only converts messages to arrays and results to messages, and wires topics,
parameters, the worker thread, the lifecycle and diagnostics.

Run: ``ros2 run densepose_ros densepose_node`` or ``python -m densepose_ros.ros.node``.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from densepose_ros.inference.correspondences import CameraIntrinsics
from densepose_ros.io import image_codec
from densepose_ros.msg import DensePersonArray
from densepose_ros.ros.frame_processor import (
    FrameProcessor,
    apply_node_settings,
    node_process_options,
)
from densepose_ros.ros.frame_slot import LatestFrameSlot, NodeStats
from densepose_ros.ros.input_watchdog import InputWatchdog, PublisherQoS, needs_new_subscription
from densepose_ros.ros.messages import (
    MarkerPool,
    image_array,
    image_message,
    markers_message,
    persons_message,
    surface_points_message,
)
from densepose_ros.ros.node_config import NodeConfig, check_value
from densepose_ros.runtime import create_backend
from densepose_ros.tracking.bytetrack import ByteTracker

# Output QoS: reliable so rviz and recorders get every result (and large images reach
# best-effort and best-available readers intact). Deep enough that a message whose fragments
# a reader lost is still there when the reader asks again on the writer's next heartbeat:
# with depth 5 the node test lost 1-3 of ~20 results in 6 of ~20 runs, with 20 none in 20.
OUTPUT_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
# Seconds between repeats of the same warning (bad input can arrive at camera rate).
LOG_THROTTLE_S = 5.0
# Diagnostics stay WARN this long after the last counted error, then recover to OK.
RECENT_ERROR_S = 10.0
# Seconds between checks of the input topics' publishers (watchdog, QoS re-choice).
INPUT_CHECK_PERIOD_S = 0.5
# Least seconds between two re-subscriptions of one topic (publishers may come and go).
RESUBSCRIBE_MIN_INTERVAL_S = 2.0


def _qos_overrides() -> QoSOverridingOptions:
    """Users set QoS the ROS way: qos_overrides./topic.publisher|subscription.reliability,
    .depth and .history parameters (read at start)."""
    return QoSOverridingOptions.with_default_policies()

@dataclass
class _Frame:
    """A frame waiting in the slot: the raw message plus when it arrived."""

    msg: Image | CompressedImage
    received: float


@dataclass
class _Input:
    """One input subscription, kept so that it can be made again with a fresh QoS choice."""

    msg_type: type
    topic: str  # fully resolved (after remapping)
    callback: object
    subscription: object = None
    created: float = 0.0  # monotonic time of the last (re)subscription


def _type_name(msg_type: type) -> str:
    """'sensor_msgs/msg/Image' for the class sensor_msgs.msg.Image (as the graph names it)."""
    package = msg_type.__module__.split(".")[0]
    return f"{package}/msg/{msg_type.__name__}"


def _policy_name(policy) -> str:
    return policy.name.lower()


def _descriptor(spec) -> ParameterDescriptor:
    meta = spec.metadata
    text = meta["description"]
    if meta["choices"]:
        text += f" One of: {', '.join(meta['choices'])}."
    descriptor = ParameterDescriptor(description=text, read_only=not meta["runtime"])
    range_ = meta["range"]
    if range_ is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(range_[0]), to_value=float(range_[1]))
        ]
    elif range_ is not None and isinstance(spec.default, int):
        descriptor.integer_range = [
            IntegerRange(from_value=int(range_[0]), to_value=int(range_[1]), step=1)
        ]
    return descriptor


class DensePoseNode(LifecycleNode):
    """Camera images in; DensePose persons, IUV image, overlay, 3D surface points out."""

    def __init__(self, **kwargs):
        super().__init__("densepose", **kwargs)
        for spec in NodeConfig.specs():
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.config = NodeConfig(
            **{s.name: self.get_parameter(s.name).value for s in NodeConfig.specs()}
        )
        self.config.validate()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._slot: LatestFrameSlot[_Frame] = LatestFrameSlot()
        self._stats = NodeStats()
        self._backend = None
        self._processor: FrameProcessor | None = None
        self._model_description = "not loaded"
        self._settings_changed = threading.Event()
        self._worker: threading.Thread | None = None
        self._marker_pool = MarkerPool()  # used by the worker thread only
        self._running = threading.Event()
        self._inputs: list[_Input] = []
        self._watchdog: InputWatchdog | None = None
        self._input_timer = None
        self._depth_lock = threading.Lock()
        self._latest_depth: Image | None = None
        self._intrinsics: CameraIntrinsics | None = None
        self._camera_info_frame = ""
        self._frame_mismatches_warned: set[tuple[str, str, str]] = set()
        self._last_error = ""
        self._last_log: dict[str, float] = {}
        self._publishers_ready = False
        self._device_name = ""
        self._first_frame_logged = False

        self._diagnostics_pub = self.create_publisher(
            DiagnosticArray, "/diagnostics", 10, qos_overriding_options=_qos_overrides())
        self.create_timer(self.config.diagnostics_period, self._publish_diagnostics)
        if self.config.autostart:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # --- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._backend, reason = create_backend(
                self.config.backend, self.config.weights, self.config.device,
                allow_untrained=self.config.allow_untrained,
                untrained_config=self.config.untrained_config,
                tensorrt_precision=self.config.tensorrt_precision or None,
                openvino_precision=self.config.openvino_precision or None,
            )
        except Exception as error:  # a missing/corrupt model fails the transition, not the node
            self._last_error = f"configure failed: {error}"
            self._stats.error("model")
            self.get_logger().error(self._last_error)
            return TransitionCallbackReturn.FAILURE
        tracker = ByteTracker() if self.config.tracking else None
        self._processor = FrameProcessor(self._backend, tracker)
        self._apply_settings()
        self._model_description = self._backend.describe()
        self._device_name = self._backend.device_name()
        if getattr(self._backend, "untrained", False):
            self.get_logger().warning(
                "RUNNING AN UNTRAINED MODEL (allow_untrained:=true): outputs are meaningless"
            )
        self.get_logger().info(f"model loaded: {self._model_description} ({reason})")
        publish = lambda msg_type, topic: self.create_lifecycle_publisher(  # noqa: E731
            msg_type, topic, OUTPUT_QOS, qos_overriding_options=_qos_overrides())
        self._persons_pub = publish(DensePersonArray, "densepose/persons")
        self._iuv_pub = publish(Image, "densepose/iuv")
        self._debug_pub = publish(Image, "densepose/debug_image")
        self._points_pub = publish(PointCloud2, "densepose/surface_points")
        self._markers_pub = publish(MarkerArray, "densepose/markers")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        # image_transport's convention: the compressed stream of <image> is <image>/compressed.
        image_topic = self.resolve_topic_name("image")
        if self.config.use_compressed:
            self._inputs.append(_Input(CompressedImage, image_topic + "/compressed",
                                       self._on_image))
        else:
            self._inputs.append(_Input(Image, image_topic, self._on_image))
        if self.config.use_depth:
            self._inputs.append(_Input(Image, self.resolve_topic_name("depth"), self._on_depth))
            self._inputs.append(_Input(CameraInfo, self.resolve_topic_name("camera_info"),
                                       self._on_camera_info))
        for entry in self._inputs:
            self._subscribe(entry)
        image_input = self._inputs[0]
        self._watchdog = InputWatchdog(
            self.config.input_timeout, image_input.topic,
            _type_name(image_input.msg_type))
        self._input_timer = self.create_timer(INPUT_CHECK_PERIOD_S, self._check_inputs)
        self._first_frame_logged = False
        if self._processor.tracker is not None:
            self._processor.tracker.reset()  # after a pause, earlier tracks are stale
        self._slot.reopen()
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="densepose-worker", daemon=True)
        self._worker.start()
        self._publishers_ready = True
        qos = image_input.subscription.qos_profile
        self.get_logger().info(
            f"active: listening on {image_input.topic} "
            f"({qos.reliability.name.lower()}, depth {qos.depth})"
        )
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        if self._input_timer is not None:
            self.destroy_timer(self._input_timer)
            self._input_timer = None
        for entry in self._inputs:
            self.destroy_subscription(entry.subscription)
        self._inputs.clear()
        self._watchdog = None
        if self._backend is not None:
            self._backend.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def _unload(self) -> None:
        for name in ("_persons_pub", "_iuv_pub", "_debug_pub", "_points_pub", "_markers_pub"):
            publisher = getattr(self, name, None)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
                setattr(self, name, None)
        if self._backend is not None:
            self._backend.close()
        self._backend, self._processor = None, None
        self._model_description = "not loaded"
        self._device_name = ""

    def _stop_worker(self) -> None:
        self._publishers_ready = False
        self._running.clear()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        self._slot.clear()

    # --- parameters ------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for param in params:
            if param.name not in NodeConfig.runtime_names():
                continue  # read-only ones are rejected by rclpy itself
            try:
                value = param.value
                if isinstance(getattr(self.config, param.name), float):
                    value = float(value)
                check_value(param.name, value)
            except (ValueError, TypeError) as error:
                return SetParametersResult(successful=False, reason=str(error))
            changes[param.name] = value
        if changes:
            self.config = self.config.replace(**changes)
            self._settings_changed.set()
        return SetParametersResult(successful=True)

    def _apply_settings(self) -> None:
        """Hand the detection settings to the backend (on the worker, between frames)."""
        self._settings_changed.clear()
        apply_node_settings(self._backend, self._processor.tracker, self.config)

    # --- input -----------------------------------------------------------------------------
    def _input_qos(self) -> QoSProfile:
        reliability = {"reliable": ReliabilityPolicy.RELIABLE,
                       "best_effort": ReliabilityPolicy.BEST_EFFORT}.get(
            self.config.qos_reliability)
        if reliability is None:  # best_available
            reliability = getattr(ReliabilityPolicy, "BEST_AVAILABLE", None)
            if reliability is None:  # Humble's rclpy has no BEST_AVAILABLE
                reliability = ReliabilityPolicy.BEST_EFFORT
                self._warn_once("no_best_available", "qos_reliability best_available is not "
                                "supported by this ROS distribution: using best_effort")
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.config.qos_depth,
                          reliability=reliability)

    def _subscribe(self, entry: _Input) -> None:
        entry.subscription = self.create_subscription(
            entry.msg_type, entry.topic, entry.callback, self._input_qos(),
            qos_overriding_options=_qos_overrides())
        entry.created = time.monotonic()

    def _publishers_of(self, topic: str) -> list[PublisherQoS]:
        return [
            PublisherQoS(
                node=f"{info.node_namespace.rstrip('/')}/{info.node_name}",
                topic_type=info.topic_type,
                reliability=_policy_name(info.qos_profile.reliability),
                durability=_policy_name(info.qos_profile.durability),
            )
            for info in self.get_publishers_info_by_topic(topic)
        ]

    def _resolved_reliability(self, topic: str) -> str | None:
        """The reliability rmw chose for this node's subscription of ``topic``."""
        for info in self.get_subscriptions_info_by_topic(topic):
            if info.node_name == self.get_name() and \
                    info.node_namespace == self.get_namespace():
                return _policy_name(info.qos_profile.reliability)
        return None

    def _check_inputs(self) -> None:
        """Periodic: choose best_available QoS again when it went stale; the watchdog."""
        now = time.monotonic()
        for index, entry in enumerate(self._inputs):
            publishers = self._publishers_of(entry.topic)
            requested = _policy_name(entry.subscription.qos_profile.reliability)
            resolved = self._resolved_reliability(entry.topic)
            if needs_new_subscription(requested, resolved, publishers) and \
                    now - entry.created >= RESUBSCRIBE_MIN_INTERVAL_S:
                # rmw picks best_available's policy once, at creation, from the publishers
                # discovered by then (often none yet at start-up): pick again.
                self.get_logger().info(
                    f"subscribing to {entry.topic} again: best_available chose {resolved} "
                    "from the publishers known when it subscribed; now there are: "
                    f"{'; '.join(p.describe() for p in publishers)}")
                self.destroy_subscription(entry.subscription)
                self._subscribe(entry)
                resolved = None
            if index == 0 and self._watchdog is not None:
                self._watchdog.timeout_s = self.config.input_timeout
                warning = self._watchdog.check(now, publishers, resolved or requested)
                if warning is not None:
                    self.get_logger().warning(warning)

    def _on_image(self, msg) -> None:
        # Runs on the executor: only hand over, never decode or infer here.
        now = time.monotonic()
        self._stats.frame_in(now)
        self._slot.put(_Frame(msg=msg, received=now))
        watchdog = self._watchdog
        if watchdog is not None and watchdog.frame(now) is not None:
            self.get_logger().info(f"frames arrive on {watchdog.topic} again")

    def _on_depth(self, msg: Image) -> None:
        with self._depth_lock:
            self._latest_depth = msg

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = CameraIntrinsics.from_k(msg.k, msg.width, msg.height)
        except ValueError as error:
            # 2D outputs go on; 3D points wait for a valid camera_info.
            self._report("bad_camera_info", f"{error}: no 3D points until a valid one")
            intrinsics = None
        with self._depth_lock:
            self._intrinsics = intrinsics
            self._camera_info_frame = msg.header.frame_id

    def _warn_once(self, key, text: str) -> None:
        if key not in self._last_log:
            self._last_log[key] = time.monotonic()
            self.get_logger().warning(text)

    def _report(self, kind: str, text: str) -> None:
        """Count a bad frame and log it, at most once per LOG_THROTTLE_S for each kind."""
        self._stats.error(kind)
        self._last_error = f"{kind}: {text}"
        now = time.monotonic()
        if now - self._last_log.get(kind, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._last_log[kind] = now
            self.get_logger().warning(text)

    def _decode(self, msg) -> np.ndarray:
        return image_array(msg, self.config.max_image_pixels)

    def _depth_for(self, header) -> tuple[np.ndarray | None, CameraIntrinsics | None]:
        with self._depth_lock:
            depth_msg, intrinsics = self._latest_depth, self._intrinsics
            info_frame = self._camera_info_frame
        if depth_msg is None or intrinsics is None:
            return None, None
        stamp = lambda h: h.stamp.sec + h.stamp.nanosec * 1e-9  # noqa: E731
        age = abs(stamp(depth_msg.header) - stamp(header))
        if age > self.config.depth_max_age:
            self._report("stale_depth", f"no 3D points for a frame: the newest depth is "
                         f"{age:.3f} s from it (depth_max_age {self.config.depth_max_age} s)")
            return None, None
        frames = (header.frame_id, depth_msg.header.frame_id, info_frame)
        if (frames[1] != frames[0] or frames[2] != frames[0]) and frames[0]:
            self._warn_once(("frames", *frames), (
                f"depth frame_id '{frames[1]}' / camera_info frame_id '{frames[2]}' differ "
                f"from the image's '{frames[0]}': 3D points are published in the image's "
                "frame and are wrong unless the depth is aligned to the colour image "
                "(RealSense: aligned_depth_to_color/image_raw and its camera_info)"))
        try:
            depth = image_codec.decode_depth(
                depth_msg.encoding, depth_msg.height, depth_msg.width, depth_msg.step,
                bool(depth_msg.is_bigendian), depth_msg.data,
                max_pixels=self.config.max_image_pixels,
            )
        except image_codec.ImageDecodeError as error:
            self._report(f"depth_{error.kind}", f"depth frame skipped: {error}")
            return None, None
        return depth, intrinsics

    # --- worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running.is_set():
            frame = self._slot.take(timeout=0.5)
            if frame is None:
                continue
            try:
                self._process(frame)
            except image_codec.ImageDecodeError as error:
                self._report(error.kind, f"frame skipped: {error}")
            except Exception as error:  # keep the node alive whatever one frame does
                self._report("inference", f"frame skipped: {type(error).__name__}: {error}")

    def _process(self, frame: _Frame) -> None:
        if self._settings_changed.is_set():
            self._apply_settings()
        image = self._decode(frame.msg)
        if not self._first_frame_logged:
            self._first_frame_logged = True
            self.get_logger().info(
                f"first frame: {image.shape[1]}x{image.shape[0]} "
                f"{getattr(frame.msg, 'encoding', None) or frame.msg.format}")
        cfg = self.config
        depth, intrinsics = self._depth_for(frame.msg.header) if cfg.use_depth else (None, None)
        want_overlay = cfg.publish_debug_image and self._debug_pub.get_subscription_count() > 0
        outputs = self._processor.process(
            image, **node_process_options(cfg), want_overlay=want_overlay, depth_m=depth,
            intrinsics=intrinsics)
        if not self._publishers_ready:
            return  # deactivated while this frame was in flight
        header = frame.msg.header
        if cfg.publish_persons:
            self._persons_pub.publish(persons_message(outputs, header))
        if outputs.iuv is not None:
            # 8UC3 with channels (I, U*255, V*255): a data image, not colour.
            self._iuv_pub.publish(image_message(outputs.iuv, "8UC3", header))
        if outputs.overlay is not None:
            self._debug_pub.publish(image_message(outputs.overlay, "bgr8", header))
        if cfg.use_depth and cfg.publish_surface_points and depth is not None:
            self._points_pub.publish(surface_points_message(outputs, header))
        if (cfg.use_depth and cfg.publish_markers and depth is not None
                and self._markers_pub.get_subscription_count() > 0):
            # built only while someone (rviz) listens, like the overlay
            self._markers_pub.publish(markers_message(outputs, header, cfg.marker_lifetime,
                                                      self._marker_pool))
        now_ros = self.get_clock().now().nanoseconds * 1e-9
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        self._stats.frame_out(
            stamp_latency=now_ros - stamp, receive_latency=time.monotonic() - frame.received,
            inference=outputs.timings.get("inference", 0.0),
        )

    # --- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        summary = self._stats.summary()
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: DensePose"
        status.hardware_id = self._device_name
        errors = dict(self._stats.errors)
        watchdog = self._watchdog
        if self._processor is None:
            status.level, status.message = DiagnosticStatus.ERROR, (
                self._last_error or "model not loaded")
        elif watchdog is not None and watchdog.warning is not None:
            status.level, status.message = DiagnosticStatus.WARN, watchdog.warning
        elif self._stats.errors_within(RECENT_ERROR_S):
            status.level, status.message = DiagnosticStatus.WARN, self._last_error
        elif watchdog is not None and watchdog.publisher_count == 0:
            status.level, status.message = DiagnosticStatus.OK, (
                f"waiting for a publisher on {watchdog.topic}")
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        inputs = list(self._inputs)
        values = {
            "state": self._state_machine.current_state[1],
            "backend": self._model_description,
            "input_topic": inputs[0].topic if inputs else "",
            "dropped_frames": self._slot.dropped,
            **summary,
            **{f"errors.{kind}": count for kind, count in sorted(errors.items())},
        }
        status.values = [KeyValue(key=k, value=f"{v:.4f}" if isinstance(v, float) else str(v))
                         for k, v in values.items()]
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self._diagnostics_pub.publish(msg)

# Seconds the node may take to end after Ctrl-C before it dumps its threads' stacks and exits.
SHUTDOWN_GRACE_S = 20.0


def make_executor():
    """One callback thread: callbacks here only file frames and answer services (inference
    runs on the node's own worker thread), and a second executor thread only added work
    competing with inference for the GIL (benchmarks/bench_node_e2e.py).
    $DENSEPOSE_EXECUTOR=multithreaded restores two."""
    if os.environ.get("DENSEPOSE_EXECUTOR") == "multithreaded":
        return MultiThreadedExecutor(num_threads=2)
    return SingleThreadedExecutor()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=sys.argv if args is None else args)
    node = DensePoseNode()
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # A node must end on Ctrl-C: if anything below or the interpreter's own exit blocks
        # (once seen on CI, a thread that never ended), the stacks of every thread go to
        # stderr and the process exits, instead of hanging until launch kills it.
        faulthandler.dump_traceback_later(SHUTDOWN_GRACE_S, exit=True)
        node._stop_worker()
        executor.shutdown(timeout_sec=SHUTDOWN_GRACE_S / 2)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
