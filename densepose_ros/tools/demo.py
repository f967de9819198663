"""``make demo``: the node on a real street scene, end to end.

1. A few seconds of OpenCV's ``vtest.avi`` (pedestrians, 768x576, 10 fps) become a rosbag2
   of ``sensor_msgs/Image``.
2. ``densepose_node`` starts as its own process (as ``ros2 run`` would start it).
3. The bag is played into the node at its recorded rate, restamped with the current time as
   a live camera would stamp it; everything the node publishes is recorded to an output
   bag, and the overlay frames are written as PNGs.
4. A summary (frames in/out, dropped, fps, latency, backend) is printed and written to
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
from densepose_ros.io import bag_io

DEMO_SECONDS = 5.0
INPUT_TOPIC = "/camera/image_raw"
OUTPUT_TOPICS = {
    "/densepose/persons": "densepose_ros/msg/DensePersonArray",
    "/densepose/iuv": "sensor_msgs/msg/Image",
    "/densepose/debug_image": "sensor_msgs/msg/Image",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


def _start_node(weights: Path | None, log_path: Path, domain: str) -> subprocess.Popen:
    params = [
        "--params-file", str(paths.source_root() / "config" / "densepose.yaml"),
        # QoS stays at its default, as a user's would; diagnostics come faster so that the
        # summary counts the last frames.
        "-r", f"image:={INPUT_TOPIC}", "-p", "diagnostics_period:=0.5",
    ]
    if weights is not None:
        params += ["-p", f"weights:={weights}"]
    else:
        # No trained model ships yet: run the untrained light model, loudly labelled, with a
        # threshold that lets its (meaningless) detections through so the plumbing shows.
        params += ["-p", "allow_untrained:=true", "-p", "score_threshold:=0.05"]
    env = dict(os.environ, ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "densepose_ros.ros.node", "--ros-args", *params],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )


def _diagnostics_values(raw: bytes) -> dict[str, str]:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message

    msg = deserialize_message(raw, DiagnosticArray)
    return {kv.key: kv.value for status in msg.status for kv in status.values}


def run_demo(out: Path, seconds: float, weights: Path | None) -> dict:
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from densepose_ros.msg import DensePersonArray

    video = paths.sample_data_dir() / "vtest.avi"
    input_bag, output_bag, overlay_dir = out / "input_bag", out / "output_bag", out / "overlays"
    for path in (input_bag, output_bag, overlay_dir):
        shutil.rmtree(path, ignore_errors=True)
    overlay_dir.mkdir(parents=True)
    frames = bag_io.video_to_image_bag(video, input_bag, topic=INPUT_TOPIC,
                                       max_frames=int(seconds * 10))
    print(f"demo: {frames} frames of {video.name} -> {input_bag}")

    domain = str(50 + os.getpid() % 50)
    node_log = out / "node.log"
    node = _start_node(weights, node_log, domain)
    os.environ.update(ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    rclpy.init()
    player = Node("densepose_demo_player")
    # The player publishes as camera drivers do (default QoS: reliable, keep last 10) and
    # records with a reliable reader, as ros2 bag does.
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publisher = player.create_publisher(Image, INPUT_TOPIC, 10)
    recorder = bag_io.BagWriter(output_bag)
    state = {"persons": 0, "outputs": 0, "overlays": 0, "diagnostics": {}, "max_persons": 0}

    def on_output(topic: str, msgtype: str):
        def callback(raw: bytes) -> None:
            recorder.write(topic, msgtype, time.time_ns(), raw)
            if topic == "/densepose/persons":
                msg = deserialize_message(raw, DensePersonArray)
                state["outputs"] += 1
                state["persons"] += len(msg.persons)
                state["max_persons"] = max(state["max_persons"], len(msg.persons))
            elif topic == "/densepose/debug_image":
                msg = deserialize_message(raw, Image)
                image = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
                cv2.imwrite(str(overlay_dir / f"overlay_{state['overlays']:04d}.png"), image)
                state["overlays"] += 1
            elif topic == "/diagnostics":
                values = _diagnostics_values(raw)
                if "frames_in" in values:
                    state["diagnostics"] = values
        return callback

    for topic, msgtype in OUTPUT_TOPICS.items():
        msg_cls = {"densepose_ros/msg/DensePersonArray": DensePersonArray,
                   "sensor_msgs/msg/Image": Image}.get(msgtype)
        if msg_cls is None:
            from diagnostic_msgs.msg import DiagnosticArray as msg_cls
        player.create_subscription(msg_cls, topic, on_output(topic, msgtype), qos, raw=True)

    spin = lambda t: rclpy.spin_once(player, timeout_sec=t)  # noqa: E731
    # Wait until the node is active and listening (or has died).
    deadline = time.monotonic() + 180
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        if node.poll() is not None:
            break
        spin(0.1)
    if publisher.get_subscription_count() == 0:
        node.kill()
        raise RuntimeError(f"the node did not start; its log:\n{node_log.read_text()[-3000:]}")
    print("demo: node is up; playing the bag at its recorded rate")
    messages = list(bag_io.read_bag(input_bag))
    start_wall, start_bag = time.monotonic(), messages[0].timestamp_ns
    for message in messages:
        target = start_wall + (message.timestamp_ns - start_bag) * 1e-9
        while time.monotonic() < target:
            spin(max(0.0, min(0.005, target - time.monotonic())))
        image = deserialize_message(message.data, Image)
        image.header.stamp = player.get_clock().now().to_msg()
        publisher.publish(image)
    play_time = time.monotonic() - start_wall
    # Let the frame in flight finish: wait until no output has come for 3 s (at most 60 s).
    deadline, quiet_since, last_count = time.monotonic() + 60, time.monotonic(), -1
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 3.0:
        spin(0.1)
        if state["outputs"] != last_count:
            last_count, quiet_since = state["outputs"], time.monotonic()
    for _ in range(10):  # a diagnostics message that counts the last frames (period 0.5 s)
        spin(0.1)
    node.send_signal(2)
    try:
        node.wait(timeout=15)
    except subprocess.TimeoutExpired:
        node.kill()
    recorder.close()
    player.destroy_node()
    rclpy.try_shutdown()

    diag = state["diagnostics"]
    summary = {
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
        "persons_messages_recorded": state["outputs"],
        "persons_in_recorded_messages": state["persons"],
        "max_persons_in_a_frame": state["max_persons"],
        "overlay_frames": state["overlays"],
        "output_bag": str(output_bag),
        "overlays": str(overlay_dir),
        "node_log": str(node_log),
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--seconds", type=float, default=DEMO_SECONDS)
    parser.add_argument("--weights", type=Path, default=None,
                        help="model file (default: the bundled default model)")
    args = parser.parse_args(argv)
    data_dir = paths.sample_data_dir()
    if data_dir is None or not (data_dir / "vtest.avi").is_file():
        print("demo: sample video missing; run `make setup` (scripts/fetch_sample_data.sh)")
        return 1
    weights = args.weights or paths.default_model_path()
    if weights is None:
        print("demo: NOTE: no trained default model ships yet (training is a later issue); "
              "the node runs an UNTRAINED model: the pipeline is real, the detections are not.")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = run_demo(args.out.resolve(), args.seconds, weights)
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
