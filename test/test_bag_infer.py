"""`densepose infer BAG_DIR` on real rosbag2 recordings: every frame of the image topic in,
the node's messages out (both storage formats, both image message types), identical to a
running node's, a readable bag after Ctrl-C, and damaged bags."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import AUTO_OPENVINO_ENV
from node_fixtures import PARAMS_FILE, REPO_ROOT, STAMP0, node_args, stamp_ns, vtest_frames

pytestmark = pytest.mark.ros

# Camera-driver stamps are taken before the recorder receives the frame: receive times are
# later than the header stamps, so a test can tell which one the output uses.
RECEIVE_DELAY_NS = 7_000_000
PERIOD_NS = 100_000_000
FRAME_ID = "camera_color_optical_frame"


def street_frames(count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Frames of OpenCV's vtest.avi (real pedestrians), 768x576 unless resized."""
    return vtest_frames(count, size)


def image_msg(frame: np.ndarray, stamp: int, compressed: bool = False):
    from sensor_msgs.msg import CompressedImage, Image

    if compressed:
        msg = CompressedImage(format="jpeg")
        msg.data = cv2.imencode(".jpg", frame)[1].tobytes()
    else:
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8",
                    step=frame.shape[1] * 3)
        msg.data = frame.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = FRAME_ID
    return msg


def write_bag(path: Path, frames, *, storage: str = "sqlite3", compressed: bool = False,
              topic: str = "/camera/color/image_raw", extra_topics: dict | None = None) -> Path:
    """A recording as ros2 bag writes it: image messages (plus ``extra_topics``: topic ->
    frames) at their receive times, and an unrelated camera_info topic."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CameraInfo

    from densepose_ros.io.bag_io import BagWriter

    kind = "CompressedImage" if compressed else "Image"
    with BagWriter(path, storage) as writer:
        for name, clip in {topic: frames, **(extra_topics or {})}.items():
            for k, frame in enumerate(clip):
                stamp = STAMP0 + k * PERIOD_NS
                writer.write(name, f"sensor_msgs/msg/{kind}", stamp + RECEIVE_DELAY_NS,
                             serialize_message(image_msg(frame, stamp, compressed)))
        info = CameraInfo(width=frames[0].shape[1], height=frames[0].shape[0])
        writer.write("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", STAMP0,
                     serialize_message(info))
    return path


def read_outputs(bag: Path) -> dict[str, list[tuple[int, bytes]]]:
    """Topic -> [(receive time, CDR bytes)] of a bag, read with rosbags (as a user would)."""
    from rosbags.rosbag2 import Reader

    out: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(bag) as reader:
        for connection, timestamp, data in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, bytes(data)))
    return out


def storage_of(bag: Path) -> str:
    import yaml

    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return info["storage_identifier"]


def infer(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`densepose infer ...` as its own process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "densepose_ros", "infer", "--no-progress",
                           *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, env=user_env())


def user_env() -> dict[str, str]:
    """The environment without the test process's own backend restriction (conftest.py):
    `infer` picks its backend as users' runs do, as the node under test does."""
    env = dict(os.environ)
    env.pop(AUTO_OPENVINO_ENV, None)
    return env


@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("sqlite3", True),
                                                ("mcap", False), ("mcap", True)])
def test_every_frame_of_a_bag_in_the_nodes_messages_out(tmp_path, storage, compressed):
    """The bundled model and the node's defaults on 6 real 768x576 street frames."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from densepose_ros.msg import DensePersonArray

    frames = street_frames(6)
    bag = write_bag(tmp_path / "robot_run", frames, storage=storage, compressed=compressed)
    done = infer(str(bag), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "robot_run_densepose"
    assert storage_of(out) == storage
    outputs = read_outputs(out)
    assert set(outputs) == {"/densepose/persons", "/densepose/iuv"}
    expected_times = [STAMP0 + k * PERIOD_NS + RECEIVE_DELAY_NS for k in range(len(frames))]
    people = 0
    for topic, msg_type in (("/densepose/persons", DensePersonArray),
                            ("/densepose/iuv", Image)):
        assert [t for t, _ in outputs[topic]] == expected_times, topic
        for k, (_, data) in enumerate(outputs[topic]):
            msg = deserialize_message(data, msg_type)
            assert stamp_ns(msg.header) == STAMP0 + k * PERIOD_NS
            assert msg.header.frame_id == FRAME_ID
            if msg_type is Image:
                assert (msg.height, msg.width, msg.encoding) == (576, 768, "8UC3")
            else:
                assert (msg.image_height, msg.image_width) == (576, 768)
                people += len(msg.persons)
                assert all(p.id >= 1 for p in msg.persons)  # tracked, as the node
                # the bundled model has a keypoint head: x, y, score of 17 keypoints each
                assert all(len(p.keypoints) == 51 for p in msg.persons)
    assert people >= len(frames), "the default model finds the pedestrians of vtest"
    record = json.loads((tmp_path / "out" / "robot_run_densepose.json").read_text())
    assert (record["frames_read"], record["frames_processed"]) == (6, 6)
    assert record["read_error"] is None and not record["interrupted"]
    assert sum(len(f["persons"]) for f in record["frames"]) == people
    assert all(len(p["keypoints"]) == 17 for f in record["frames"] for p in f["persons"])


def test_storage_override_debug_image_and_undecodable_frames(tmp_path):
    from rclpy.serialization import serialize_message

    from densepose_ros.io.bag_io import BagWriter

    frames = street_frames(3, (640, 480))
    bag = tmp_path / "cam"
    with BagWriter(bag, "sqlite3") as writer:
        for k, frame in enumerate(frames):
            msg = image_msg(frame, STAMP0 + k * PERIOD_NS)
            if k == 1:
                msg.data = msg.data[: len(msg.data) // 2]  # a truncated frame
            writer.write("/image", "sensor_msgs/msg/Image", STAMP0 + k * PERIOD_NS,
                         serialize_message(msg))
    done = infer(str(bag), "--out", str(tmp_path / "out"), "--storage", "mcap",
                 "--debug-image")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "cam_densepose"
    assert storage_of(out) == "mcap"
    outputs = read_outputs(out)
    assert set(outputs) == {"/densepose/persons", "/densepose/iuv", "/densepose/debug_image"}
    # the truncated frame is skipped, as the node skips it, and named; the others are there
    assert [t for t, _ in outputs["/densepose/persons"]] == [STAMP0, STAMP0 + 2 * PERIOD_NS]
    record = json.loads((tmp_path / "out" / "cam_densepose.json").read_text())
    assert record["frames_read"] == 3 and record["frames_processed"] == 2
    assert len(record["skipped"]) == 1 and "frame 1" in record["skipped"][0]
    assert "skipped" in done.stdout


def test_several_image_topics_need_a_choice(tmp_path):
    frames = street_frames(2, (640, 480))
    bag = write_bag(tmp_path / "stereo", frames, topic="/left/image_raw",
                    extra_topics={"/right/image_raw": frames[:1]})
    done = infer(str(bag), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "/left/image_raw" in done.stderr and "/right/image_raw" in done.stderr
    assert "--topic" in done.stderr
    assert not (tmp_path / "out" / "stereo_densepose").exists()
    done = infer(str(bag), "--out", str(tmp_path / "out"), "--topic", "/right/image_raw")
    assert done.returncode == 0, done.stderr
    assert len(read_outputs(tmp_path / "out" / "stereo_densepose")["/densepose/persons"]) == 1
    done = infer(str(bag), "--out", str(tmp_path / "other"), "--topic", "/nope")
    assert done.returncode == 2 and "/nope" in done.stderr and "/left/image_raw" in done.stderr


def test_messages_identical_to_the_nodes(tmp_path, ros_process, client, untrained_weights):
    """The same 640x480 frames through a running node (one at a time, so it drops none) and
    through `densepose infer` on a bag of them, with the same parameter file and weights:
    identical persons and IUV messages, field by field. (Not the CDR bytes: the middleware
    leaves alignment padding uninitialised, so equal messages serialise to different bytes.)"""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from densepose_ros.msg import DensePersonArray

    frames = street_frames(4, (640, 480))
    node = ros_process(["-m", "densepose_ros.ros.node"], ros_args=node_args(untrained_weights),
                       name="node")
    assert client.wait_for_node(), node.output()
    node_persons = []
    for k, frame in enumerate(frames):  # one at a time: the node processes every frame
        stamp = STAMP0 + k * PERIOD_NS
        client.image_pub.publish(image_msg(frame, stamp))
        assert client.spin_until(lambda s=stamp: any(stamp_ns(m.header) == s
                                                     for m in client.persons), 60)
        node_persons.append(serialize_message(client.persons[-1]))  # as a recorder stores it
    assert client.spin_until(lambda: len(client.iuv) >= len(frames), 30)
    node_iuv = {stamp_ns(m.header): m for m in client.iuv}
    assert sum(len(p) for p in node_persons) > 0

    # node_args' overrides, given the same way: test weights, the threshold they pass, CPU
    bag = write_bag(tmp_path / "same", frames, topic="/image")
    done = infer(str(bag), "--out", str(tmp_path / "out"), "--params-file", str(PARAMS_FILE),
                 "--weights", str(untrained_weights), "--score-threshold", "0.05",
                 "--device", "cpu")
    assert done.returncode == 0, done.stderr
    outputs = read_outputs(tmp_path / "out" / "same_densepose")
    bag_persons = [data for _, data in outputs["/densepose/persons"]]
    assert len(bag_persons) == len(node_persons)
    for ours, theirs in zip(bag_persons, node_persons, strict=True):
        assert same_message(deserialize_message(ours, DensePersonArray),
                            deserialize_message(theirs, DensePersonArray))
    bag_iuv = [deserialize_message(data, Image) for _, data in outputs["/densepose/iuv"]]
    assert len(bag_iuv) == len(frames)
    for k, ours in enumerate(bag_iuv):
        assert same_message(ours, node_iuv[STAMP0 + k * PERIOD_NS])


def same_message(a, b) -> bool:
    """Equal ROS messages, field by field, NaN equal to NaN (DensePerson.position is NaN
    without depth)."""
    if hasattr(a, "get_fields_and_field_types"):
        return type(a) is type(b) and all(same_message(getattr(a, f), getattr(b, f))
                                          for f in a.get_fields_and_field_types())
    if isinstance(a, (list, tuple)) and a and hasattr(a[0], "get_fields_and_field_types"):
        return len(a) == len(b) and all(same_message(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (str, int, bool)):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_ctrl_c_leaves_a_readable_partial_bag(tmp_path):
    frames = street_frames(120, (640, 480))
    bag = write_bag(tmp_path / "long", frames, storage="mcap")
    out = tmp_path / "out"
    # with the progress bar: it tells when frames are being processed
    # Ctrl-C as a terminal delivers it: SIGINT at its default in the child (under a
    # non-interactive runner it may be ignored, and Python then never raises
    # KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-m", "densepose_ros", "infer", str(bag), "--out",
                             str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            cwd=REPO_ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stderr = bytearray()
    reader = threading.Thread(target=lambda: [stderr.extend(chunk) for chunk in
                                              iter(lambda: proc.stderr.read(1), b"")],
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    def processed() -> int:  # the progress bar's newest "N/120"
        counts = re.findall(rb"(\d+)/120", bytes(stderr))
        return int(counts[-1]) if counts else 0

    while processed() < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, stderr.decode(errors="replace")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, stderr.decode(errors="replace")
    reader.join(timeout=5)
    outputs = read_outputs(out / "long_densepose")
    kept = len(outputs["/densepose/persons"])
    assert 5 <= kept < 120 and len(outputs["/densepose/iuv"]) == kept
    record = json.loads((out / "long_densepose.json").read_text())
    assert record["interrupted"] and record["frames_processed"] == kept
    assert b"interrupted" in stderr


def _damage(path: Path, fraction: float, how: str) -> None:
    size = path.stat().st_size
    if how == "truncate":
        os.truncate(path, int(size * fraction))
    else:
        with path.open("r+b") as file:
            file.seek(int(size * fraction))
            file.write(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())


@pytest.mark.parametrize("storage,how", [("mcap", "truncate"), ("sqlite3", "overwrite")])
def test_damaged_bag_keeps_every_readable_frame(tmp_path, storage, how):
    """A recording cut short (MCAP without its end) or with a corrupt page (SQLite): a clear
    error naming the file, and every frame before the damage processed and kept."""
    frames = street_frames(10, (640, 480))
    bag = write_bag(tmp_path / "broken", frames, storage=storage)
    (storage_file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    _damage(storage_file, 0.6, how)
    done = infer(str(bag), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "damaged" in done.stderr and str(storage_file.name) in done.stderr
    outputs = read_outputs(tmp_path / "out" / "broken_densepose")
    kept = [t for t, _ in outputs["/densepose/persons"]]
    assert 2 <= len(kept) < 10
    assert kept == [STAMP0 + k * PERIOD_NS + RECEIVE_DELAY_NS for k in range(len(kept))]


def test_unfinished_recording_and_unreadable_bags(tmp_path):
    frames = street_frames(3, (640, 480))
    # ros2 bag record writes metadata.yaml last: a killed recorder leaves none
    bag = write_bag(tmp_path / "unfinished", frames, storage="mcap")
    (bag / "metadata.yaml").unlink()
    done = infer(str(bag), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "metadata.yaml" in done.stderr
    assert len(read_outputs(tmp_path / "out" / "unfinished_densepose")["/densepose/persons"]) \
        == 3
    # nothing readable at all: the error names the bag, nothing is written
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    (garbage / "garbage_0.db3").write_bytes(b"not a database" * 100)
    done = infer(str(garbage), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "garbage" in done.stderr
    assert not (tmp_path / "out" / "garbage_densepose").exists()
