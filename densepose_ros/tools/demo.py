"""``make demo``: the node on a real street scene, end to end.

1. A few seconds of OpenCV's ``vtest.avi`` (pedestrians, 768x576, 10 fps) become a rosbag2
   of ``sensor_msgs/Image``.
2. ``densepose_node`` starts as its own process (as ``ros2 run`` would start it).
3. The bag is played into the node at its recorded rate, restamped with the current time as
   a live camera would stamp it; everything the node publishes is recorded to an output
   bag, and the overlay frames are written as PNGs.
4. A summary (frames in/out, dropped, fps, latency, backend, tracks and the likely ID
   switches with the overlay frames that show them) is printed and written to
   ``summary.json``/``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from densepose_ros import paths
from densepose_ros.evaluation.tracking import summarise_tracks
from densepose_ros.io import bag_io

DEMO_SECONDS = 5.0
INPUT_TOPIC = "/camera/image_raw"
OUTPUT_TOPICS = {
    "/densepose/persons": "densepose_ros/msg/DensePersonArray",
    "/densepose/iuv": "sensor_msgs/msg/Image",
    "/densepose/debug_image": "sensor_msgs/msg/Image",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


def _start_node(weights: Path | None, log_path: Path, domain: str, backend: str | None = None
                ) -> subprocess.Popen:
    params = [
        "--params-file", str(paths.source_root() / "config" / "densepose.yaml"),
        # QoS stays at its default, as a user's would; diagnostics come faster so that the
        # summary counts the last frames.
        "-r", f"image:={INPUT_TOPIC}", "-p", "diagnostics_period:=0.5",
    ]
    if backend:
        params += ["-p", f"backend:={backend}"]
    if weights is not None:
        params += ["-p", f"weights:={weights}"]
    else:
        # No model file found (a pip install without the bundled model): run the untrained
        # light model, loudly labelled, with a threshold that lets its (meaningless)
        # detections through so the plumbing shows.
        params += ["-p", "allow_untrained:=true", "-p", "score_threshold:=0.05"]
    env = dict(os.environ, ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "densepose_ros.ros.node", "--ros-args", *params],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )


def _stop_node(node: subprocess.Popen) -> None:
    """SIGINT (the node shuts down cleanly), then kill if it does not end."""
    if node.poll() is not None:
        return
    node.send_signal(2)
    try:
        node.wait(timeout=15)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait(timeout=5)


def _diagnostics_values(raw: bytes) -> dict[str, str]:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message

    msg = deserialize_message(raw, DiagnosticArray)
    return {kv.key: kv.value for status in msg.status for kv in status.values}


class _OutputRecorder:
    """Subscribes to the node's outputs: writes each to the output bag, overlays as PNGs,
    and keeps the counts and the newest diagnostics for the summary."""

    def __init__(self, player, output_bag: Path, overlay_dir: Path):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from densepose_ros.msg import DensePersonArray

        self.writer = bag_io.BagWriter(output_bag)
        self.overlay_dir = overlay_dir
        self.outputs = self.persons = self.overlays = self.max_persons = 0
        # per output frame (by stamp): the tracked (id, box) pairs, and its overlay file
        self.tracked: dict[int, list[tuple[int, list[float]]]] = {}
        self.overlay_files: dict[int, str] = {}
        self.image_size = (576, 768)
        self.diagnostics: dict[str, str] = {}
        # A reliable reader, as ros2 bag records.
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        classes = {"densepose_ros/msg/DensePersonArray": DensePersonArray,
                   "sensor_msgs/msg/Image": Image}
        for topic, msgtype in OUTPUT_TOPICS.items():
            msg_cls = classes.get(msgtype)
            if msg_cls is None:
                from diagnostic_msgs.msg import DiagnosticArray as msg_cls
            player.create_subscription(msg_cls, topic, self._callback(topic, msgtype), qos,
                                       raw=True)

    def _callback(self, topic: str, msgtype: str):
        def callback(raw: bytes) -> None:
            self.writer.write(topic, msgtype, time.time_ns(), raw)
            {"/densepose/persons": self._on_persons, "/densepose/debug_image": self._on_overlay,
             "/diagnostics": self._on_diagnostics}.get(topic, lambda _: None)(raw)
        return callback

    def _on_persons(self, raw: bytes) -> None:
        from rclpy.serialization import deserialize_message

        from densepose_ros.msg import DensePersonArray

        msg = deserialize_message(raw, DensePersonArray)
        self.outputs += 1
        self.tracked[_stamp_ns(msg.header)] = [
            (p.id, [p.roi.x_offset, p.roi.y_offset, p.roi.x_offset + p.roi.width,
                    p.roi.y_offset + p.roi.height]) for p in msg.persons if p.id > 0]
        self.persons += len(msg.persons)
        self.max_persons = max(self.max_persons, len(msg.persons))

    def _on_overlay(self, raw: bytes) -> None:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image

        msg = deserialize_message(raw, Image)
        image = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        name = f"overlay_{self.overlays:04d}.png"
        cv2.imwrite(str(self.overlay_dir / name), image)
        self.overlay_files[_stamp_ns(msg.header)] = name
        self.image_size = (msg.height, msg.width)
        self.overlays += 1

    def _on_diagnostics(self, raw: bytes) -> None:
        values = _diagnostics_values(raw)
        if "frames_in" in values:
            self.diagnostics = values

    def close(self) -> None:
        self.writer.close()


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _tracking_summary(recorder: _OutputRecorder) -> dict:
    """Tracks seen and the likely ID switches, each with the overlay frames to check it by
    eye (the frame before and the frame of the change)."""
    stamps = sorted(recorder.tracked)
    summary = summarise_tracks([recorder.tracked[s] for s in stamps], recorder.image_size)
    switches = []
    for index, old_id, new_id in summary.suspected_switches:
        frames = [recorder.overlay_files.get(stamps[k], "?") for k in (index - 1, index)]
        switches.append(f"#{old_id} -> #{new_id} ({' / '.join(frames)})")
    lengths = sorted(summary.lengths.values())
    return {
        "tracks": summary.tracks,
        "tracks_over_10_frames": sum(n > 10 for n in lengths),
        "median_track_frames": float(np.median(lengths)) if lengths else 0.0,
        "suspected_id_switches": len(switches),
        "suspected_id_switch_frames": switches,
    }


def _wait_for_node(spin, publisher, node: subprocess.Popen, log_path: Path) -> None:
    """Until the node subscribes to the input topic (it is active); error if it died."""
    deadline = time.monotonic() + 180
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        if node.poll() is not None:
            break
        spin(0.1)
    if publisher.get_subscription_count() == 0:
        raise RuntimeError(f"the node did not start; its log:\n{log_path.read_text()[-3000:]}")


def _play(spin, player, publisher, input_bag: Path) -> float:
    """Publish the bag's frames at their recorded rate, stamped now; the seconds it took."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    messages = list(bag_io.read_bag(input_bag))
    start_wall, start_bag = time.monotonic(), messages[0].timestamp_ns
    for message in messages:
        target = start_wall + (message.timestamp_ns - start_bag) * 1e-9
        while time.monotonic() < target:
            spin(max(0.0, min(0.005, target - time.monotonic())))
        image = deserialize_message(message.data, Image)
        image.header.stamp = player.get_clock().now().to_msg()
        publisher.publish(image)
    return time.monotonic() - start_wall


def _drain(spin, recorder: _OutputRecorder) -> None:
    """Let the frame in flight finish: until no output came for 3 s (at most 60 s), then a
    diagnostics message that counts the last frames (period 0.5 s)."""
    deadline, quiet_since, last_count = time.monotonic() + 60, time.monotonic(), -1
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 3.0:
        spin(0.1)
        if recorder.outputs != last_count:
            last_count, quiet_since = recorder.outputs, time.monotonic()
    for _ in range(10):
        spin(0.1)


def _summary(video: Path, frames: int, play_time: float, recorder: _OutputRecorder,
             out: Path) -> dict:
    diag = recorder.diagnostics
    return {
        "input": f"{video.name}: {frames} frames, 768x576, 10 fps, played in {play_time:.1f} s",
        "model": diag.get("backend", "unknown"),
        "frames_in": int(diag.get("frames_in", 0)),
        "frames_out": int(diag.get("frames_out", 0)),
        "dropped": int(diag.get("dropped_frames", 0)),
        "errors": int(diag.get("errors", 0)),
        "fps_out": float(diag.get("rate_out_hz", "nan")),
        "latency_p50_ms": 1000 * float(diag.get("latency_p50_s", "nan")),
        "latency_p95_ms": 1000 * float(diag.get("latency_p95_s", "nan")),
        "inference_p50_ms": 1000 * float(diag.get("inference_p50_s", "nan")),
        "persons_messages_recorded": recorder.outputs,
        "persons_in_recorded_messages": recorder.persons,
        "max_persons_in_a_frame": recorder.max_persons,
        "overlay_frames": recorder.overlays,
        **_tracking_summary(recorder),
        "output_bag": str(out / "output_bag"),
        "overlays": str(out / "overlays"),
        "node_log": str(out / "node.log"),
    }


def run_demo(out: Path, seconds: float, weights: Path | None, backend: str | None = None
             ) -> dict:
    """The four steps of the module docstring; the node process is always stopped."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    video = paths.sample_data_dir() / "vtest.avi"
    input_bag, output_bag, overlay_dir = out / "input_bag", out / "output_bag", out / "overlays"
    for path in (input_bag, output_bag, overlay_dir):
        shutil.rmtree(path, ignore_errors=True)
    overlay_dir.mkdir(parents=True)
    frames = bag_io.video_to_image_bag(video, input_bag, topic=INPUT_TOPIC,
                                       max_frames=int(seconds * 10))
    print(f"demo: {frames} frames of {video.name} -> {input_bag}")

    domain = str(50 + os.getpid() % 50)
    node = _start_node(weights, out / "node.log", domain, backend)
    try:
        os.environ.update(ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        rclpy.init()
        player = Node("densepose_demo_player")
        # As camera drivers publish: the default QoS (reliable, keep last 10).
        publisher = player.create_publisher(Image, INPUT_TOPIC, 10)
        recorder = _OutputRecorder(player, output_bag, overlay_dir)
        spin = lambda t: rclpy.spin_once(player, timeout_sec=t)  # noqa: E731
        try:
            _wait_for_node(spin, publisher, node, out / "node.log")
            print("demo: node is up; playing the bag at its recorded rate")
            play_time = _play(spin, player, publisher, input_bag)
            _drain(spin, recorder)
        finally:
            recorder.close()
            player.destroy_node()
            rclpy.try_shutdown()
    finally:
        _stop_node(node)
    return _summary(video, frames, play_time, recorder, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--seconds", type=float, default=DEMO_SECONDS)
    parser.add_argument("--weights", type=Path, default=None,
                        help="model file (default: the bundled default model)")
    parser.add_argument("--backend", default=None,
                        help="the node's backend (default: its own, auto)")
    args = parser.parse_args(argv)
    data_dir = paths.sample_data_dir()
    if data_dir is None or not (data_dir / "vtest.avi").is_file():
        print("demo: sample video missing; run `make setup` (scripts/fetch_sample_data.sh)")
        return 1
    weights = args.weights or paths.default_model_path()
    if weights is None:
        print("demo: NOTE: the bundled default model was not found; the node runs an "
              "UNTRAINED model: the pipeline is real, the detections are not.")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = run_demo(args.out.resolve(), args.seconds, weights, args.backend)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in summary.items()]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("demo summary:")
    for key, value in summary.items():
        shown = f"{value:.1f}" if isinstance(value, float) else value
        print(f"  {key:<24} {shown}")
    return 0 if summary["frames_out"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
