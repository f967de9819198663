"""Test helper process: publishes DensePersonArray messages with a known, seeded content.

Usage: python test/ros_scripts/publish_persons.py --ros-args -p seed:=3 -p count:=50
The content is a pure function of (seed, sequence number), so the receiving test can
rebuild what must arrive. Publishes on ``persons`` at 20 Hz until ``count`` messages.
"""

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import RegionOfInterest

from densepose_ros.msg import DensePerson, DensePersonArray


def make_message(seed: int, seq: int) -> DensePersonArray:
    rng = np.random.default_rng(seed * 1000 + seq)
    msg = DensePersonArray()
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec = 1000 + seq
    msg.header.stamp.nanosec = 250
    msg.image_width, msg.image_height = 640, 480
    for _ in range(2):
        width, height = (int(x) for x in rng.integers(5, 60, size=2))
        person = DensePerson()
        person.score = float(rng.random())
        person.roi = RegionOfInterest(
            x_offset=int(rng.integers(0, 500)), y_offset=int(rng.integers(0, 400)),
            width=width, height=height, do_rectify=False,
        )
        person.chart_width, person.chart_height = width, height
        person.chart_part_index = rng.integers(0, 25, size=width * height, dtype=np.uint8)
        person.chart_u = rng.integers(0, 256, size=width * height, dtype=np.uint8)
        person.chart_v = rng.integers(0, 256, size=width * height, dtype=np.uint8)
        count = int(rng.integers(1, 30))
        person.point_x = rng.integers(0, 640, size=count, dtype=np.uint16)
        person.point_y = rng.integers(0, 480, size=count, dtype=np.uint16)
        person.point_part = rng.integers(1, 25, size=count, dtype=np.uint8)
        person.point_u = rng.random(count, dtype=np.float32)
        person.point_v = rng.random(count, dtype=np.float32)
        person.point_xyz = rng.random(3 * count, dtype=np.float32)
        msg.persons.append(person)
    return msg


def main() -> int:
    rclpy.init(args=sys.argv)
    node = Node("persons_publisher")
    seed = node.declare_parameter("seed", 0).value
    count = node.declare_parameter("count", 50).value
    publisher = node.create_publisher(DensePersonArray, "persons", 10)
    state = {"seq": 0}

    def tick():
        if state["seq"] >= count:
            raise SystemExit(0)
        publisher.publish(make_message(seed, state["seq"]))
        state["seq"] += 1

    node.create_timer(0.05, tick)
    print("publisher ready", flush=True)
    try:
        rclpy.spin(node)
    except (SystemExit, KeyboardInterrupt):
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
