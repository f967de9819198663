"""The node's own overhead per frame: everything except the model's forward pass.

Stages, for a 640x480 bgr8 frame with 1, 5 and 20 persons (chart outputs of the
predictor's real shape with random values: 56x56 for the light default configuration and
112x112 for the R-50/101 s1x ones; boxes of typical pedestrian size):
decode (sensor_msgs/Image -> array), charts (per-person IUV at box resolution and
correspondences), iuv (full-frame IUV image), messages (building DensePersonArray and the
IUV Image), serialise (CDR, as rclpy does before sending), publish (rclpy publish to a
subscribed topic). Medians over repeated runs, in milliseconds.

Each case runs three times (column ``tracked``): ``no``, as the node ran before tracking
existed; ``yes``, the node's defaults today (tracking on: the ByteTrack update and the id
hand-over, column ``track``; no depth, so no markers); ``3d``, the most the node does per
person: tracking, plus the rviz markers built and published (``markers``) as with depth, a
keypoint model and rviz subscribed (markers are built only while someone subscribes).
Every person then gets the position and the 3D skeleton depth would give, so the markers
are built in full.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult
from densepose_ros.io.image_codec import decode_image
from densepose_ros.modeling.config import LIGHT_CONFIG_NAME, get_config
from densepose_ros.ros.frame_processor import FrameProcessor
from densepose_ros.tracking.bytetrack import ByteTracker, TrackerConfig, follow

WIDTH, HEIGHT = 640, 480
PERSON_COUNTS = (1, 5, 20)
REPEATS = 30


def synthetic_result(persons: int, seed: int = 0, m: int = 112) -> DensePoseResult:
    """Boxes of 60-160 x 120-320 px with random chart logits (the real output shapes)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randint(60, 160, (persons,), generator=gen).float()
    h = torch.randint(120, 320, (persons,), generator=gen).float()
    x1 = (torch.rand(persons, generator=gen) * (WIDTH - w)).floor()
    y1 = (torch.rand(persons, generator=gen) * (HEIGHT - h)).floor()
    boxes = torch.stack([x1, y1, x1 + w, y1 + h], dim=1)
    charts = DensePoseChartOutput(
        coarse_segm=torch.randn(persons, 2, m, m, generator=gen),
        fine_segm=torch.randn(persons, 25, m, m, generator=gen),
        u=torch.rand(persons, 25, m, m, generator=gen),
        v=torch.rand(persons, 25, m, m, generator=gen),
    )
    scores = torch.linspace(0.99, 0.9, persons)
    return DensePoseResult(boxes=boxes, scores=scores, charts=charts,
                           image_size=(HEIGHT, WIDTH))


def _place_in_3d(outputs) -> None:
    """Give each person the position and 3D keypoints depth would give (2 m away)."""
    for person in outputs.persons:
        x, y, w, h = person.roi
        keypoints = np.zeros((17, 3), np.float32)
        keypoints[:, 0] = x + w * np.linspace(0.2, 0.8, 17)
        keypoints[:, 1] = y + h * np.linspace(0.1, 0.9, 17)
        keypoints[:, 2] = 0.9
        person.keypoints = keypoints
        person.keypoints_xyz = np.column_stack(
            [(keypoints[:, 0] - WIDTH / 2) / 300, (keypoints[:, 1] - HEIGHT / 2) / 300,
             np.full(17, 2.0)]).astype(np.float32)
        person.position = np.median(person.keypoints_xyz, axis=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()

    import rclpy
    from rclpy.node import Node
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray

    from densepose_ros.msg import DensePersonArray
    from densepose_ros.ros.messages import (
        MarkerPool,
        image_message,
        markers_message,
        persons_message,
    )

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init()
    node = Node("bench_node_overhead")
    persons_pub = node.create_publisher(DensePersonArray, "bench/persons", 5)
    iuv_pub = node.create_publisher(Image, "bench/iuv", 5)
    # Subscribed topics, so publishing really serialises and hands data to DDS.
    node.create_subscription(DensePersonArray, "bench/persons", lambda m: None, 5)
    node.create_subscription(Image, "bench/iuv", lambda m: None, 5)
    markers_pub = node.create_publisher(MarkerArray, "bench/markers", 5)
    node.create_subscription(MarkerArray, "bench/markers", lambda m: None, 5)

    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    source = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=WIDTH * 3)
    source.data = frame.tobytes()
    processor = FrameProcessor(backend=None)
    results = {}
    print(f"node overhead per frame, {WIDTH}x{HEIGHT}, median of {args.repeats} runs (ms); "
          f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}")
    header = f"{'M':>4} {'persons':>8} {'tracked':>8} {'decode':>8} {'track':>7} " \
             f"{'charts':>8} {'iuv':>8} {'messages':>9} {'markers':>8} {'serialise':>10} " \
             f"{'publish':>8} {'total':>8} {'cpu':>8}"
    print(header)
    light = get_config(LIGHT_CONFIG_NAME).densepose.heatmap_size
    modes = ("no", "yes", "3d")
    cases = [(m, n, mode) for m in (light, 112) for n in PERSON_COUNTS for mode in modes]
    for m, persons, mode in cases:
        tracked = mode != "no"
        result = synthetic_result(persons, m=m)
        tracker = ByteTracker(TrackerConfig(high_threshold=0.8))
        marker_pool = MarkerPool()  # as the node keeps one
        times: dict[str, list[float]] = {k: [] for k in
                                          ("decode", "track", "charts", "iuv", "messages",
                                           "markers", "serialise", "publish", "total", "cpu")}
        for _ in range(args.repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            image = decode_image(source.encoding, source.height, source.width, source.step,
                                 False, source.data)
            t1 = time.perf_counter()
            frame_result, track_ids = follow(tracker, result) if tracked else (result, None)
            t_track = time.perf_counter() - t1
            outputs = processor.outputs_from_result(frame_result, image, correspondence_stride=8,
                                                    track_ids=track_ids)
            t2 = time.perf_counter()
            persons_msg = persons_message(outputs, source.header)
            iuv_msg = image_message(outputs.iuv, "8UC3", source.header)
            t3 = time.perf_counter()
            serialize_message(persons_msg)
            serialize_message(iuv_msg)
            t4 = time.perf_counter()
            persons_pub.publish(persons_msg)
            iuv_pub.publish(iuv_msg)
            t5 = time.perf_counter()
            t_markers = 0.0
            if mode == "3d":
                c_setup = time.process_time()
                _place_in_3d(outputs)  # what depth gives; not the node's work: not timed
                c_setup = time.process_time() - c_setup
                t6 = time.perf_counter()
                markers_pub.publish(markers_message(outputs, source.header, 0.5, marker_pool))
                t_markers = time.perf_counter() - t6
                c0 += c_setup
            # CPU seconds of this process over the frame (serialise excluded): close to the
            # wall time of an idle machine when other jobs compete for the cores
            times["cpu"].append(time.process_time() - c0 - (t4 - t3))
            times["decode"].append(t1 - t0)
            times["track"].append(t_track)
            times["charts"].append(outputs.timings["charts"])
            times["iuv"].append(outputs.timings["iuv"])
            times["messages"].append(t3 - t2)
            times["markers"].append(t_markers)
            times["serialise"].append(t4 - t3)
            times["publish"].append(t5 - t4)
            # serialise is measured apart; publish serialises again internally
            times["total"].append((t3 - t0) + (t5 - t4) + t_markers)
            rclpy.spin_once(node, timeout_sec=0)
        medians = {k: 1000 * statistics.median(v) for k, v in times.items()}
        results[f"M{m}_persons{persons}" + {"no": "", "yes": "_tracked", "3d": "_tracked_3d"}[
            mode]] = medians
        print(f"{m:>4} {persons:>8} {mode:>8} {medians['decode']:>8.2f} "
              f"{medians['track']:>7.2f} {medians['charts']:>8.2f} {medians['iuv']:>8.2f} "
              f"{medians['messages']:>9.2f} {medians['markers']:>8.2f} "
              f"{medians['serialise']:>10.2f} {medians['publish']:>8.2f} "
              f"{medians['total']:>8.2f} {medians['cpu']:>8.2f}")
    print("total = decode + track + charts + iuv + messages + publish + markers (publish "
          "includes serialising); "
          "cpu = process CPU time for the same work")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "node_overhead.json").write_text(json.dumps(
        {"machine": f"{platform.machine()} {os.cpu_count()} cores", "image": [WIDTH, HEIGHT],
         "repeats": args.repeats, "median_ms": results}, indent=2))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
