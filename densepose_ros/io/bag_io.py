"""rosbag2 reading and writing without ROS (pure-Python ``rosbags``).

Used by ``make demo`` (a video clip becomes an image bag; the node's outputs are recorded)
and by ``densepose infer`` on bags. Messages are stored as CDR bytes exactly as ROS 2 sends
them, so a bag written here plays back with ``ros2 bag play``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from densepose_ros import paths

# Message-definition store with this package's own messages registered once.
_TYPESTORE = None


def typestore():
    """A rosbags typestore of ROS 2 Kilted plus ``densepose_ros/msg/*``."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        store = get_typestore(Stores.ROS2_KILTED)
        msg_dir = _msg_dir()
        types = {}
        for name in ("DensePerson", "DensePersonArray"):
            text = (msg_dir / f"{name}.msg").read_text()
            types.update(get_types_from_msg(text, f"densepose_ros/msg/{name}"))
        store.register(types)
        _TYPESTORE = store
    return _TYPESTORE


def _msg_dir() -> Path:
    for base in (paths.source_root(), paths.share_dir()):
        if base is not None and (base / "msg" / "DensePerson.msg").is_file():
            return base / "msg"
    raise FileNotFoundError("densepose_ros message definitions (msg/*.msg) not found")


@dataclass(frozen=True)
class BagMessage:
    """One message of a bag: topic, ROS type name, receive time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


def read_bag(path: str | Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """All messages of a rosbag2 (sqlite3 or mcap) in time order, as raw CDR."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        for connection, timestamp, data in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(data))


class BagWriter:
    """Writes raw CDR messages to a new rosbag2 (sqlite3), one connection per topic."""

    def __init__(self, path: str | Path):
        from rosbags.rosbag2 import Writer

        self._writer = Writer(Path(path), version=9)
        self._writer.open()
        self._connections = {}

    def write(self, topic: str, msgtype: str, timestamp_ns: int, data: bytes) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[topic] = connection
        self._writer.write(connection, timestamp_ns, data)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def image_to_cdr(image_bgr: np.ndarray, stamp_ns: int, frame_id: str) -> bytes:
    """A ``sensor_msgs/Image`` (bgr8) serialised as CDR, without ROS."""
    store = typestore()
    image_cls = store.types["sensor_msgs/msg/Image"]
    header_cls = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    height, width = image_bgr.shape[:2]
    msg = image_cls(
        header=header_cls(
            stamp=time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
            frame_id=frame_id,
        ),
        height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3,
        data=np.ascontiguousarray(image_bgr).reshape(-1),
    )
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def video_to_image_bag(
    video: str | Path, bag: str | Path, *, topic: str = "/camera/image_raw",
    frame_id: str = "camera_optical_frame", max_frames: int | None = None,
    start_ns: int = 1_700_000_000_000_000_000,
) -> int:
    """Write the frames of a video as ``sensor_msgs/Image`` messages at the video's rate.

    Returns the number of frames written. Raises ``FileNotFoundError``/``ValueError`` for a
    missing or unreadable video.
    """
    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"cannot decode video: {video}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    period_ns = int(1e9 / fps)
    count = 0
    with BagWriter(bag) as writer:
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            stamp = start_ns + count * period_ns
            data = image_to_cdr(frame, stamp, frame_id)
            writer.write(topic, "sensor_msgs/msg/Image", stamp, data)
            count += 1
    capture.release()
    if count == 0:
        raise ValueError(f"no frames could be read from {video}")
    return count
