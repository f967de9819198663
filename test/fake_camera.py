"""A camera driver stand-in, run as its own process: publishes real frames (OpenCV's
vtest.avi pedestrians, cropped to the requested aspect and scaled to the requested size) as
``sensor_msgs/Image`` bgr8 at a fixed rate, stamped with the current time, with the QoS a
driver uses.

    python test/fake_camera.py --topic /camera/image_raw --size 1920x1080 --rate 10 \\
        --qos default --seconds 5

QoS: ``default`` (reliable, keep last 10: what usb_cam, realsense2_camera and most drivers
create with ``create_publisher(..., 10)``), ``sensor_data`` (best effort, keep last 5), or
``reliable``/``best_effort`` (keep last 10). Prints one line per second of what it sent.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from densepose_ros import paths


def frames_of_size(width: int, height: int, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of vtest.avi, centre-cropped to width:height and resized."""
    capture = cv2.VideoCapture(str(paths.sample_data_dir() / "vtest.avi"))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            raise SystemExit("fake_camera: vtest.avi missing or short (run make setup)")
        h, w = frame.shape[:2]
        if w / h > width / height:  # too wide: crop columns
            crop = round(h * width / height)
            frame = frame[:, (w - crop) // 2:(w - crop) // 2 + crop]
        else:
            crop = round(w * height / width)
            frame = frame[(h - crop) // 2:(h - crop) // 2 + crop]
        frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR))
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="image")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
    parser.add_argument("--qos", default="default",
                        choices=("default", "sensor_data", "reliable", "best_effort"))
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to publish")
    parser.add_argument("--wait-for-subscriber", type=float, default=60.0,
                        help="seconds to wait for a matched subscriber before publishing")
    parser.add_argument("--frame-id", default="camera_color_optical_frame")
    args, ros_args = parser.parse_known_args(argv)

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = frames_of_size(width, height, 10)
    rclpy.init(args=[sys.argv[0], *ros_args])
    node = rclpy.create_node("fake_camera")
    qos = {
        "default": 10,
        "sensor_data": qos_profile_sensor_data,
        "reliable": QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
        "best_effort": QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT),
    }[args.qos]
    publisher = node.create_publisher(Image, args.topic, qos)
    deadline = time.monotonic() + args.wait_for_subscriber
    # Like a driver that has been running: subscribers come when they come. Waiting only
    # saves the test frames nobody could receive; it does not wait for a QoS match.
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(f"fake_camera: publishing {width}x{height} bgr8 at {args.rate} Hz on "
          f"{publisher.topic_name} ({args.qos})", flush=True)
    msg = Image(height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3)
    msg.header.frame_id = args.frame_id
    datas = [f.tobytes() for f in frames]
    start = time.monotonic()
    sent, last_report = 0, start
    try:
        while time.monotonic() - start < args.seconds:
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.data = datas[sent % len(datas)]
            publisher.publish(msg)
            sent += 1
            target = start + sent / args.rate
            while (now := time.monotonic()) < target:
                rclpy.spin_once(node, timeout_sec=target - now)
            if now - last_report >= 1.0:
                print(f"fake_camera: sent {sent}", flush=True)
                last_report = now
    except KeyboardInterrupt:
        pass
    print(f"fake_camera: done, sent {sent}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
