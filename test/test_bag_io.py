"""Video -> rosbag2 conversion (used by the demo) round-trips real frames exactly."""

import cv2
import numpy as np
import pytest

from densepose_ros import paths
from densepose_ros.io import bag_io


@pytest.fixture(scope="module")
def vtest():
    data = paths.sample_data_dir()
    assert data is not None and (data / "vtest.avi").is_file(), "run `make setup` first"
    return data / "vtest.avi"


def test_video_frames_round_trip_through_bag(vtest, tmp_path):
    count = bag_io.video_to_image_bag(vtest, tmp_path / "bag", max_frames=4, topic="/cam/image")
    assert count == 4
    messages = list(bag_io.read_bag(tmp_path / "bag"))
    assert [m.topic for m in messages] == ["/cam/image"] * 4
    stamps = [m.timestamp_ns for m in messages]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4

    capture = cv2.VideoCapture(str(vtest))
    store = bag_io.typestore()
    for message in messages:
        ok, frame = capture.read()
        assert ok
        image = store.deserialize_cdr(message.data, message.msgtype)
        assert (image.height, image.width, image.encoding) == (576, 768, "bgr8")
        assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == message.timestamp_ns
        np.testing.assert_array_equal(image.data.reshape(576, 768, 3), frame)


def test_missing_and_corrupt_video_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="video not found"):
        bag_io.video_to_image_bag(tmp_path / "nope.avi", tmp_path / "bag1")
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 100)
    with pytest.raises(ValueError):
        bag_io.video_to_image_bag(corrupt, tmp_path / "bag2")
