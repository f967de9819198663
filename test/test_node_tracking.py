"""People over time through the real node: track ids on a synthetic walking clip, the 3D
position, the keypoint fields and the rviz markers."""

from __future__ import annotations

import numpy as np
import pytest

from node_fixtures import (
    PARAMS_FILE,
    STAMP0,
    node_args,
    publish_and_wait,
    vtest_frames,
)

pytestmark = pytest.mark.ros


def test_ids_follow_people_through_a_synthetic_walking_clip(ros_process, client):
    """The bundled model and default parameters (tracking on) on a rendered clip of two
    people crossing: every true person keeps one id (no switch), checked with motmetrics."""
    from densepose_ros.evaluation.tracking import tracking_metrics
    from densepose_ros.synth.sequence import SequenceConfig, ground_truth, render_clip

    config = SequenceConfig(frames=12, persons=(2, 2))
    frames = render_clip(3, config)
    truth = ground_truth(frames, config.min_visible_px)
    node = ros_process(["-m", "densepose_ros.ros.node"],
                       ros_args=["--params-file", str(PARAMS_FILE)], name="node")
    assert client.wait_for_node(), node.output()
    tracked = []
    for k, scene in enumerate(frames):  # one at a time: every frame is processed
        msg = publish_and_wait(client, np.ascontiguousarray(scene.image[..., ::-1]),
                               STAMP0 + k * 100_000_000)
        tracked.append([(p.id, [p.roi.x_offset, p.roi.y_offset, p.roi.x_offset + p.roi.width,
                                p.roi.y_offset + p.roi.height]) for p in msg.persons])
        assert all(p.id >= 1 for p in msg.persons)
    metrics = tracking_metrics([(truth, tracked)])
    print("node on a synthetic clip:", metrics)
    assert metrics["num_switches"] == 0 and metrics["recall"] > 50, metrics


def test_positions_markers_and_fields_with_depth(ros_process, client, untrained_weights):
    from sensor_msgs.msg import CameraInfo, Image
    from visualization_msgs.msg import Marker, MarkerArray

    markers = []
    client.node.create_subscription(MarkerArray, "densepose/markers", markers.append, 10)
    node = ros_process(["-m", "densepose_ros.ros.node"],
                       ros_args=node_args(untrained_weights, "-p", "use_depth:=true"),
                       name="node")
    assert client.wait_for_node(), node.output()
    image = vtest_frames(1)[0]
    height, width = image.shape[:2]
    info = CameraInfo(width=width, height=height,
                      k=[300.0, 0.0, width / 2, 0.0, 300.0, height / 2, 0.0, 0.0, 1.0])
    depth = Image(height=height, width=width, encoding="16UC1", step=width * 2)
    depth.data = np.full((height, width), 2500, np.uint16).tobytes()
    messages = []
    for k in range(3):  # the same frame three times: the same people, the same ids
        stamp = STAMP0 + k * 100_000_000
        for msg in (info, depth):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = "cam_optical"
        client.info_pub.publish(info)
        client.depth_pub.publish(depth)
        client.spin_for(0.3)
        messages.append(publish_and_wait(client, image, stamp))
    ids = [[p.id for p in m.persons] for m in messages]
    assert ids[0] and all(i == ids[0] for i in ids) and len(set(ids[0])) == len(ids[0])
    placed = []  # persons with surface points have a position; the others NaN (no 3D)
    for person in messages[-1].persons:
        if len(person.point_x):
            assert person.position.z == pytest.approx(2.5, abs=1e-3)
            placed.append(person.id)
        else:
            assert np.isnan(person.position.z)
        assert len(person.keypoints) == 0 and len(person.keypoints_xyz) == 0  # no kp head
        assert len(person.chart_uv_confidence) == 0  # no confidence head
    assert client.spin_until(lambda: len(markers) >= 3, 10)
    labels = [m for m in markers[-1].markers if m.type == Marker.TEXT_VIEW_FACING]
    assert placed and sorted(m.id for m in labels) == sorted(placed)
    assert {m.text for m in labels} == {f"#{i}" for i in placed}
    assert all(m.lifetime.sec + m.lifetime.nanosec * 1e-9 == pytest.approx(0.5)
               for m in labels)
    assert all(m.header.frame_id == "cam_optical" for m in labels)
    cloud = client.points[-1]
    person_field = next(f for f in cloud.fields if f.name == "person")
    values = np.frombuffer(bytes(cloud.data), np.uint8).reshape(-1, cloud.point_step)
    persons = values[:, person_field.offset:person_field.offset + 4].copy().view("<u4")
    assert set(persons.flatten()) <= set(ids[-1])
