"""The node end to end, as a robot runs it: the default parameters and model, 640x480 bgr8
frames (OpenCV's vtest.avi street scene) published at 30 Hz by a separate process with the
default QoS of camera drivers, for ``SECONDS`` seconds.

Reports frames in and out, output fps, latency (source stamp to the subscriber receiving
``densepose/persons``) p50/p95, the node's inference time (its diagnostics), its CPU use
(percent of one core, over the playback) and its resident memory after model loading and at
the end; writes ``node_e2e.json``. The node picks its backend with ``auto`` (reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from densepose_ros import paths
from densepose_ros.io import bag_io

SECONDS = 20.0
RATE_HZ = 30.0
SIZE = (640, 480)
TOPIC = "/camera/image_raw"


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--backend", default=None,
                        help="override the node's backend (default: its own, auto)")
    args = parser.parse_args()

    import rclpy
    from rclpy.node import Node
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from densepose_ros.msg import DensePersonArray

    work = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    bag = work / "camera"
    frames = bag_io.video_to_image_bag(paths.sample_data_dir() / "vtest.avi", bag, topic=TOPIC,
                                       max_frames=int(args.seconds * RATE_HZ), size=SIZE,
                                       rate_hz=RATE_HZ)
    messages = [deserialize_message(m.data, Image) for m in bag_io.read_bag(bag)]
    domain = str(60 + os.getpid() % 40)
    env = dict(os.environ, ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    params = ["--params-file", str(paths.source_root() / "config" / "densepose.yaml"),
              "-r", f"image:={TOPIC}", "-p", "diagnostics_period:=0.5"]
    if args.backend:
        params += ["-p", f"backend:={args.backend}"]
    log_path = work / "node.log"
    with log_path.open("wb") as log:
        node = subprocess.Popen([sys.executable, "-m", "densepose_ros.ros.node", "--ros-args",
                                 *params], stdout=log, stderr=subprocess.STDOUT, env=env)
    os.environ.update(ROS_DOMAIN_ID=domain, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    rclpy.init()
    player = Node("bench_camera")
    publisher = player.create_publisher(Image, TOPIC, 10)  # a camera driver's default QoS
    latencies, diagnostics = [], {}

    def on_persons(msg):
        now = player.get_clock().now().nanoseconds
        latencies.append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec))
                         * 1e-9)

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith("densepose"):
                diagnostics.update({kv.key: kv.value for kv in status.values})

    from diagnostic_msgs.msg import DiagnosticArray

    player.create_subscription(DensePersonArray, "/densepose/persons", on_persons, 10)
    player.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    try:
        deadline = time.monotonic() + 300
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            if node.poll() is not None:
                raise RuntimeError(f"the node died:\n{log_path.read_text()[-3000:]}")
            rclpy.spin_once(player, timeout_sec=0.1)
        rss_loaded = _rss_mb(node.pid)
        cpu_start, wall_start = _proc_cpu_seconds(node.pid), time.monotonic()
        for index, image in enumerate(messages):
            target = wall_start + index / RATE_HZ
            while time.monotonic() < target:
                rclpy.spin_once(player, timeout_sec=max(0.0, min(0.005,
                                                                 target - time.monotonic())))
            image.header.stamp = player.get_clock().now().to_msg()
            publisher.publish(image)
        play_s = time.monotonic() - wall_start
        cpu_s = _proc_cpu_seconds(node.pid) - cpu_start
        drain = time.monotonic() + 5
        while time.monotonic() < drain:
            rclpy.spin_once(player, timeout_sec=0.1)
        rss_end = _rss_mb(node.pid)
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
        node.send_signal(2)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
        # the node's log is kept with the results; the 0.5 GB camera bag is not
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log_path, args.out / "node_e2e_node.log")
        shutil.rmtree(work, ignore_errors=True)
    out_frames = len(latencies)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores {platform.processor()}",
        "input": f"{frames} frames {SIZE[0]}x{SIZE[1]} bgr8 at {RATE_HZ:.0f} Hz "
                 f"({play_s:.1f} s)",
        "backend": diagnostics.get("backend", "?"),
        "frames_in": int(diagnostics.get("frames_in", 0)),
        "frames_out": out_frames,
        "fps_out": out_frames / play_s,
        "latency_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "latency_p95_ms": (1000 * statistics.quantiles(latencies, n=20)[-1]
                           if len(latencies) > 1 else None),
        "inference_p50_ms": 1000 * float(diagnostics.get("inference_p50_s", "nan")),
        "node_cpu_percent": 100 * cpu_s / play_s,
        "node_rss_mb_loaded": rss_loaded,
        "node_rss_mb_end": rss_end,
        "load_average_1min": os.getloadavg()[0],
    }
    print(f"node end to end ({result['input']}; machine: {result['machine']})")
    for key, value in result.items():
        if key not in ("machine", "input"):
            print(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "node_e2e.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
