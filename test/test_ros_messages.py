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


def test_dense_person_tracking_keypoint_and_3d_fields():
    from densepose_ros.msg import DensePerson

    fields = DensePerson.get_fields_and_field_types()
    assert fields["id"] == "uint32"
    assert fields["keypoints"] == "sequence<float>"
    assert fields["keypoints_xyz"] == "sequence<float>"
    assert fields["position"] == "geometry_msgs/Point"


def _person(track_id, position, keypoints=None, keypoints_xyz=None):
    from densepose_ros.inference.correspondences import Correspondences
    from densepose_ros.ros.frame_processor import PersonOutput

    empty = np.zeros((0,), np.float32)
    person = PersonOutput(score=0.9, roi=(0, 0, 2, 2), chart_part=np.zeros((2, 2), np.uint8),
                          chart_u=np.zeros((2, 2), np.uint8), chart_v=np.zeros((2, 2), np.uint8),
                          points=Correspondences(empty.astype(np.uint16), empty.astype(np.uint16),
                                                 empty.astype(np.uint8), empty, empty,
                                                 np.zeros((0, 3), np.float32)),
                          track_id=track_id, position=position)
    if keypoints is not None:
        person.keypoints, person.keypoints_xyz = keypoints, keypoints_xyz
    return person


def test_markers_give_ids_and_3d_skeletons_and_expire():
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker

    from densepose_ros.inference.postprocess import SKELETON
    from densepose_ros.ros.frame_processor import FrameOutputs
    from densepose_ros.ros.messages import markers_message, persons_message

    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, 2] = 0.9
    keypoints[9, 2] = 0.01  # left wrist unseen: its edges are not drawn
    xyz = np.stack([np.arange(17) * 0.1, np.zeros(17), np.full(17, 3.0)], 1).astype(np.float32)
    xyz[10] = np.nan  # right wrist without depth: not drawn either
    persons = [_person(7, np.array([0.5, 0.0, 3.0], np.float32), keypoints, xyz),
               _person(9, np.array([1.0, 0.0, 2.0], np.float32)),  # no keypoint head
               _person(4, None)]  # no depth: nothing 3D
    header = Header(frame_id="camera_optical")
    array = markers_message(FrameOutputs(persons=persons, image_size=(2, 2)), header, 0.75)
    labels = [m for m in array.markers if m.type == Marker.TEXT_VIEW_FACING]
    lines = [m for m in array.markers if m.type == Marker.LINE_LIST]
    assert [(m.id, m.text) for m in labels] == [(7, "#7"), (9, "#9")]
    assert labels[0].pose.position.z == 3.0 and labels[1].pose.position.x == 1.0
    assert len(lines) == 1 and lines[0].id == 7
    drawn = [(a, b) for a, b in SKELETON if 9 not in (a, b) and 10 not in (a, b)]
    assert len(lines[0].points) == 2 * len(drawn) and len(drawn) < len(SKELETON)
    ends = [round(p.x * 10) for p in lines[0].points]
    assert ends == [k for edge in drawn for k in edge]
    for marker in array.markers:
        assert marker.header.frame_id == "camera_optical"
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 750_000_000)
    # The node's pool refills last frame's Marker objects: nothing of the previous frame
    # may remain (person 7 left, person 9 moved and got no label text change).
    from densepose_ros.ros.messages import MarkerPool

    pool = MarkerPool()
    markers_message(FrameOutputs(persons=persons, image_size=(2, 2)), header, 0.75, pool)
    moved = _person(9, np.array([-1.0, 0.0, 4.0], np.float32))
    later = markers_message(FrameOutputs(persons=[moved], image_size=(2, 2)),
                            Header(frame_id="other"), 0.25, pool)
    assert [(m.type, m.id, m.text) for m in later.markers] == [
        (Marker.TEXT_VIEW_FACING, 9, "#9")]
    assert later.markers[0].pose.position.x == -1.0 and later.markers[0].pose.position.z == 4.0
    assert later.markers[0].header.frame_id == "other"
    assert later.markers[0].lifetime.nanosec == 250_000_000
    # the same persons as DensePerson fields
    messages = persons_message(FrameOutputs(persons=persons, image_size=(2, 2)), header).persons
    assert [m.id for m in messages] == [7, 9, 4]
    np.testing.assert_array_equal(np.asarray(messages[0].keypoints), keypoints.ravel())
    np.testing.assert_array_equal(np.asarray(messages[0].keypoints_xyz), xyz.ravel())
    assert (messages[0].position.x, messages[0].position.z) == (0.5, 3.0)
    assert len(messages[1].keypoints) == 0 and len(messages[1].keypoints_xyz) == 0
    assert np.isnan([messages[2].position.x, messages[2].position.y, messages[2].position.z]).all()
