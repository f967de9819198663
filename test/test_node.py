"""The real densepose node as a process, driven through real topics and services."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from densepose_ros.ros.frame_processor import FrameProcessor
from densepose_ros.runtime import InferenceSettings, create_backend
from densepose_ros.runtime.factory import AUTO_OPENVINO_ENV

from node_fixtures import (
    DEFAULTS,
    STAMP0,
    TEST_SCORE_THRESHOLD,
    node_args,
    publish_and_wait,
    stamp_ns,
    vtest_frames,
)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def weights(untrained_weights):
    return untrained_weights


@pytest.fixture(scope="module")
def frames():
    return vtest_frames(3)



def start_node(ros_process, weights, *extra):
    return ros_process(["-m", "densepose_ros.ros.node"], ros_args=node_args(weights, *extra),
                       name="node")


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.openvino  # the reference runs the node's auto in this process (conftest.py)
def test_outputs_equal_the_core_and_headers_propagate(ros_process, client, weights, frames,
                                                      monkeypatch):
    node = start_node(ros_process, weights)
    assert client.wait_for_node(), node.output()
    # the core with the backend the node's defaults pick (auto: the cached ONNX export, on
    # OpenVINO where the CPU has bfloat16), as the node runs it
    monkeypatch.delenv(AUTO_OPENVINO_ENV)
    reference = FrameProcessor(create_backend("auto", weights, "cpu")[0])
    reference.backend.configure(InferenceSettings(
        score_threshold=TEST_SCORE_THRESHOLD, nms_threshold=DEFAULTS.nms_threshold,
        max_detections=DEFAULTS.max_persons))
    for index, image in enumerate(frames[:2]):
        stamp = STAMP0 + index * 100_000_000
        msg = publish_and_wait(client, image, stamp)
        assert msg.header.frame_id == "cam_optical" and stamp_ns(msg.header) == stamp
        assert (msg.image_width, msg.image_height) == (image.shape[1], image.shape[0])
        expected = reference.process(image, correspondence_stride=DEFAULTS.correspondence_stride)
        assert len(expected.persons) > 0, "test model should detect something"
        assert len(msg.persons) == len(expected.persons)
        for got, want in zip(msg.persons, expected.persons, strict=True):
            assert got.score == pytest.approx(want.score, rel=1e-4, abs=1e-5)
            roi = (got.roi.x_offset, got.roi.y_offset, got.roi.width, got.roi.height)
            assert roi == want.roi
            shape = (got.chart_height, got.chart_width)
            assert shape == want.chart_part.shape
            part = np.asarray(got.chart_part_index).reshape(shape)
            # identical up to argmax ties from float rounding across thread counts
            assert (part == want.chart_part).mean() > 0.999
            np.testing.assert_array_equal(np.asarray(got.point_x), want.points.x)
            np.testing.assert_array_equal(np.asarray(got.point_part), want.points.part)
            np.testing.assert_allclose(np.asarray(got.point_u), want.points.u, atol=1e-3)
            assert len(got.point_xyz) == 0
        has_iuv = lambda s=stamp: any(stamp_ns(m.header) == s for m in client.iuv)  # noqa: E731
        assert client.spin_until(has_iuv, 10)
        iuv_msg = next(m for m in client.iuv if stamp_ns(m.header) == stamp)
        assert iuv_msg is not None and iuv_msg.encoding == "8UC3"
        assert iuv_msg.header.frame_id == "cam_optical"
        iuv = np.asarray(iuv_msg.data, np.uint8).reshape(iuv_msg.height, iuv_msg.width, 3)
        assert (iuv == expected.iuv).all(axis=2).mean() > 0.999


def test_debug_image_only_while_subscribed(ros_process, client, weights, frames):
    node = start_node(ros_process, weights)
    assert client.wait_for_node(), node.output()
    publish_and_wait(client, frames[0], STAMP0)
    client.spin_for(0.5)
    assert client.debug == []
    client.subscribe_debug()
    client.spin_for(1.0)
    publish_and_wait(client, frames[1], STAMP0 + 1)
    assert client.spin_until(lambda: len(client.debug) == 1, 10)
    debug = client.debug[0]
    assert debug.encoding == "bgr8" and stamp_ns(debug.header) == STAMP0 + 1


def test_bad_input_is_survived_and_counted(ros_process, client, weights, frames):
    node = start_node(ros_process, weights)
    assert client.wait_for_node(), node.output()
    good = client.image_msg(frames[0], STAMP0)
    bad = []
    unknown = client.image_msg(frames[0], STAMP0 + 1)
    unknown.encoding = "yuv422_yuy2"
    bad.append(unknown)
    truncated = client.image_msg(frames[0], STAMP0 + 2)
    truncated.data = bytes(truncated.data)[: len(truncated.data) // 2]
    bad.append(truncated)
    empty = client.image_msg(frames[0], STAMP0 + 3)
    empty.height = 0
    bad.append(empty)
    huge = client.image_msg(frames[0], STAMP0 + 4)
    huge.height, huge.width, huge.step = 100_000, 100_000, 300_000
    bad.append(huge)
    for msg in bad:
        client.image_pub.publish(msg)
        client.spin_for(0.4)  # one at a time: the node keeps only the newest frame
    client.image_pub.publish(good)
    assert client.spin_until(
        lambda: any(stamp_ns(m.header) == STAMP0 for m in client.persons), 60), node.output()
    assert all(stamp_ns(m.header) == STAMP0 for m in client.persons)
    assert client.spin_until(lambda: int(client.diagnostic_values().get("errors", 0)) >= 4, 10)
    values = client.diagnostic_values()
    for kind in ("encoding", "truncated", "size", "too_large"):
        assert int(values.get(f"errors.{kind}", 0)) >= 1, (kind, values)
    assert node.alive()
    log = node.output()
    assert "unsupported encoding 'yuv422_yuy2'" in log and "expected height*step" in log


def test_burst_keeps_newest_frames_and_bounded_memory(ros_process, client, weights, frames):
    node = start_node(ros_process, weights)
    assert client.wait_for_node(), node.output()
    publish_and_wait(client, frames[0], STAMP0)  # warm up
    rss_before = rss_mb(node.popen.pid)
    last = STAMP0
    start = time.monotonic()
    for index in range(1, 201):  # 200 frames at 100 Hz
        last = STAMP0 + index * 10_000_000
        client.image_pub.publish(client.image_msg(frames[index % len(frames)], last))
        target = start + index * 0.01
        while time.monotonic() < target:
            client.executor.spin_once(timeout_sec=max(0.0, target - time.monotonic()))
    # the executor is never blocked by inference: services answer during the backlog
    assert client.state() == "active"
    assert client.spin_until(
        lambda: any(stamp_ns(m.header) == last for m in client.persons), 60), \
        "the newest frame of the burst was not processed"
    processed = [stamp_ns(m.header) for m in client.persons]
    assert processed == sorted(processed), "frames processed out of order"
    assert len(processed) < 150, "a slow model cannot have processed (nearly) every frame"
    assert client.spin_until(
        lambda: int(client.diagnostic_values().get("dropped_frames", 0)) > 0, 10)
    assert rss_mb(node.popen.pid) - rss_before < 250
    later = STAMP0 + 10**10
    publish_and_wait(client, frames[1], later, timeout=30)  # still responsive


def test_lifecycle_transitions(ros_process, client, weights, frames):
    node = start_node(ros_process, weights)
    assert client.wait_for_node(), node.output()
    assert client.state() == "active"
    assert client.change_state("deactivate")
    assert client.state() == "inactive"
    assert client.spin_until(lambda: client.image_pub.get_subscription_count() == 0, 10)
    client.image_pub.publish(client.image_msg(frames[0], STAMP0))
    client.spin_for(2.0)
    assert client.persons == []
    assert client.change_state("activate")
    publish_and_wait(client, frames[0], STAMP0 + 1)
    assert client.change_state("deactivate") and client.change_state("cleanup")
    assert client.state() == "unconfigured"
    assert client.change_state("configure") and client.change_state("activate")
    publish_and_wait(client, frames[1], STAMP0 + 2)


def test_configure_fails_with_reason_for_missing_or_corrupt_weights(
    ros_process, client, tmp_path
):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint" * 10)
    for weights, reason in ((tmp_path / "missing.pth", "weights file not found"),
                            (corrupt, "")):
        node = start_node(ros_process, weights)
        assert node.wait_for_output("configure failed", timeout=90), node.output()
        assert client.state() == "unconfigured"
        assert reason in node.output()
        assert client.spin_until(
            lambda: client.diagnostic_values().get("state") == "unconfigured", 10)
        assert node.alive()
        assert not client.change_state("configure")  # still no model: fails again, no crash
        assert node.alive()
        node.popen.send_signal(2)
        node.popen.wait(timeout=20)


def test_parameters_change_at_run_time(ros_process, client, weights, frames):
    node = start_node(ros_process, weights)
    assert client.wait_for_node(), node.output()
    first = publish_and_wait(client, frames[0], STAMP0)
    assert len(first.persons) > 0
    rejected = client.set_parameter("score_threshold", 1.5)
    assert not rejected.successful
    assert not client.set_parameter("backend", "onnxruntime").successful  # read-only
    assert client.set_parameter("correspondence_stride", 4).successful
    denser = publish_and_wait(client, frames[0], STAMP0 + 1)
    count = lambda msg: sum(len(p.point_x) for p in msg.persons)  # noqa: E731
    assert count(denser) > count(first)
    assert client.set_parameter("score_threshold", 1.0).successful
    none = publish_and_wait(client, frames[0], STAMP0 + 2)
    assert none.persons == []


def test_compressed_input_with_depth_gives_3d_points(ros_process, client, weights, frames):
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    node = start_node(ros_process, weights, "-p", "use_compressed:=true", "-p",
                      "use_depth:=true")
    assert client.spin_until(lambda: client.compressed_pub.get_subscription_count() > 0, 120), \
        node.output()
    image = frames[0]
    height, width = image.shape[:2]
    info = CameraInfo()
    info.width, info.height = width, height
    info.k = [300.0, 0.0, width / 2, 0.0, 300.0, height / 2, 0.0, 0.0, 1.0]
    depth = Image()
    depth.height, depth.width, depth.encoding, depth.step = height, width, "16UC1", width * 2
    depth.data = np.full((height, width), 2500, np.uint16).tobytes()
    corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0garbage")
    ok, jpeg = cv2.imencode(".jpg", image)
    good = CompressedImage(format="jpeg", data=jpeg.tobytes())
    for msg, stamp in ((corrupt, STAMP0), (good, STAMP0 + 1)):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        depth.header.stamp = info.header.stamp = msg.header.stamp
        client.info_pub.publish(info)
        client.depth_pub.publish(depth)
        client.spin_for(0.3)
        client.compressed_pub.publish(msg)
        client.spin_for(0.5)
    assert client.spin_until(
        lambda: any(stamp_ns(m.header) == STAMP0 + 1 for m in client.persons), 60), node.output()
    msg = next(m for m in client.persons if stamp_ns(m.header) == STAMP0 + 1)
    assert all(stamp_ns(m.header) != STAMP0 for m in client.persons)
    assert len(msg.persons) > 0
    total = 0
    for person in msg.persons:
        xyz = np.asarray(person.point_xyz, np.float32).reshape(-1, 3)
        assert len(xyz) == len(person.point_x)
        np.testing.assert_allclose(xyz[:, 2], 2.5)
        x = np.asarray(person.point_x, np.float64)
        np.testing.assert_allclose(xyz[:, 0], (x - (width / 2 - 0.0)) * 2.5 / 300, atol=1e-4)
        total += len(xyz)
    assert client.spin_until(
        lambda: any(stamp_ns(c.header) == STAMP0 + 1 for c in client.points), 10)
    cloud = next(c for c in client.points if stamp_ns(c.header) == STAMP0 + 1)
    assert cloud.width == total and cloud.point_step == 28  # x y z u v person(u32) part
    assert int(client.diagnostic_values().get("errors.corrupt", 0)) >= 1
    assert node.alive()


def test_bad_camera_info_and_stale_depth_keep_2d_outputs_and_are_counted(
    ros_process, client, weights, frames
):
    from sensor_msgs.msg import CameraInfo, Image

    node = start_node(ros_process, weights, "-p", "use_depth:=true")
    assert client.wait_for_node(), node.output()
    image = frames[0]
    height, width = image.shape[:2]
    reference = publish_and_wait(client, image, STAMP0)  # no depth yet: 2D outputs only
    assert len(reference.persons) > 0

    def send_depth(stamp, info_size=(width, height), focal=300.0, frame_id="cam_optical",
                   depth_stamp=None):
        info = CameraInfo()
        info.width, info.height = info_size
        info.k = [focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0]
        depth = Image(height=height, width=width, encoding="16UC1", step=width * 2)
        depth.data = np.full((height, width), 2000, np.uint16).tobytes()
        for msg, msg_stamp in ((info, stamp), (depth, depth_stamp or stamp)):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(msg_stamp, 1_000_000_000)
            msg.header.frame_id = frame_id
        client.info_pub.publish(info)
        client.depth_pub.publish(depth)
        client.spin_for(0.3)

    def assert_same_2d(msg):
        assert [(p.roi.x_offset, p.roi.y_offset, p.roi.width, p.roi.height)
                for p in msg.persons] == [(p.roi.x_offset, p.roi.y_offset, p.roi.width,
                                           p.roi.height) for p in reference.persons]
        for got, want in zip(msg.persons, reference.persons, strict=True):
            assert bytes(got.chart_part_index) == bytes(want.chart_part_index)
            assert list(got.point_x) == list(want.point_x)

    # width/height 0 (once a ZeroDivisionError that dropped the frame), then focal length 0
    for index, (info_size, focal) in enumerate((((0, 0), 300.0), ((width, height), 0.0))):
        stamp = STAMP0 + (1 + index) * 1_000_000
        send_depth(stamp, info_size=info_size, focal=focal)
        msg = publish_and_wait(client, image, stamp)
        assert_same_2d(msg)
        assert all(len(p.point_xyz) == 0 for p in msg.persons)
    # depth 1 s older than the frame (depth_max_age 0.1 s): no 3D points, counted
    stamp = STAMP0 + 10_000_000
    send_depth(stamp, depth_stamp=stamp - 1_000_000_000)
    msg = publish_and_wait(client, image, stamp)
    assert_same_2d(msg)
    assert all(len(p.point_xyz) == 0 for p in msg.persons)
    assert client.spin_until(
        lambda: int(client.diagnostic_values().get("errors.stale_depth", 0)) >= 1, 10)
    values = client.diagnostic_values()
    assert int(values.get("errors.bad_camera_info", 0)) >= 2, values
    assert int(values.get("errors.inference", 0)) == 0, values
    log = node.output()
    # one log line per kind every 5 s: the second bad camera_info is counted, not logged
    assert log.count("camera_info has no valid image size (0x0)") == 1
    assert "no 3D points for a frame: the newest depth is 1.000 s from it" in log
    # valid depth in another frame than the image: 3D points, and one warning about it
    for index in range(2):
        stamp = STAMP0 + (20 + index) * 1_000_000
        send_depth(stamp, frame_id="camera_depth_optical_frame")
        msg = publish_and_wait(client, image, stamp)
        assert all(len(p.point_xyz) == 3 * len(p.point_x) for p in msg.persons)
    assert node.output().count("differ from the image's 'cam_optical'") == 1, node.output()
    assert node.alive()
