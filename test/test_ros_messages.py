"""The generated messages travel between two real processes intact."""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import spin_until

pytestmark = pytest.mark.ros
sys.path.insert(0, str(Path(__file__).parent / "ros_scripts"))


def test_messages_import_and_fields():
    from densepose_ros.msg import DensePerson, DensePersonArray

    fields = DensePerson.get_fields_and_field_types()
    assert fields["chart_part_index"] == "sequence<uint8>"
    assert fields["point_u"] == "sequence<float>"
    assert fields["roi"] == "sensor_msgs/RegionOfInterest"
    assert DensePersonArray.get_fields_and_field_types()["persons"] == (
        "sequence<densepose_ros/DensePerson>"
    )


def test_dense_person_array_between_processes(ros_process, rclpy_context):
    from rclpy.node import Node

    from densepose_ros.msg import DensePersonArray

    from publish_persons import make_message

    received = []
    node = Node("persons_listener", context=rclpy_context)
    node.create_subscription(DensePersonArray, "persons", received.append, 10)
    publisher = ros_process(
        ["test/ros_scripts/publish_persons.py"], ros_args=["-p", "seed:=7", "-p", "count:=400"],
        name="publisher",
    )
    assert spin_until(rclpy_context, node, lambda: len(received) >= 3, timeout=30), (
        publisher.output()
    )
    node.destroy_node()

    for msg in received[:3]:
        seq = msg.header.stamp.sec - 1000
        expected = make_message(7, seq)
        assert msg.header.frame_id == "camera_optical"
        assert msg.header.stamp.nanosec == 250
        assert (msg.image_width, msg.image_height) == (640, 480)
        assert len(msg.persons) == len(expected.persons) == 2
        for got, want in zip(msg.persons, expected.persons, strict=True):
            assert got.score == pytest.approx(want.score)
            assert (got.roi.x_offset, got.roi.width) == (want.roi.x_offset, want.roi.width)
            chart = np.asarray(got.chart_part_index).reshape(got.chart_height, got.chart_width)
            assert chart.shape == (want.roi.height, want.roi.width)
            for name in ("chart_part_index", "chart_u", "chart_v", "point_x", "point_y",
                         "point_part", "point_u", "point_v", "point_xyz"):
                np.testing.assert_array_equal(
                    np.asarray(getattr(got, name)), np.asarray(getattr(want, name)), err_msg=name
                )
