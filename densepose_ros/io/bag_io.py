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


# rosbag2 storage formats (metadata.yaml's storage_identifier), both read and written.
STORAGES = ("sqlite3", "mcap")


def bag_storage(path: str | Path) -> str:
    """The storage format of the rosbag2 folder ``path``; ValueError if it is not one."""
    import yaml

    metadata = Path(path) / "metadata.yaml"
    try:
        info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
        return str(info["storage_identifier"])
    except FileNotFoundError:
        raise ValueError(f"{path}: not a rosbag2 folder (no metadata.yaml)") from None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ValueError(f"{metadata}: unreadable bag metadata ({error})") from None


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """Topic -> (ROS type name, message count) of a rosbag2."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def storage_files(path: str | Path) -> list[Path]:
    """The storage files (``*.mcap``, ``*.db3``) of a rosbag2 folder, in name order (a split
    recording's parts in sequence)."""
    return sorted(p for p in Path(path).iterdir() if p.suffix in (".mcap", ".db3"))


class BagDamaged(Exception):
    """Raised by :func:`salvage_messages` where a storage file stops being readable."""


def salvage_messages(path: str | Path, topics: list[str] | None = None
                     ) -> Iterator[BagMessage]:
    """The messages of a damaged or unfinished rosbag2 (no metadata.yaml, a truncated MCAP
    file, a corrupt SQLite page), read straight from its storage files in file order, up to
    the first unreadable point, where :class:`BagDamaged` is raised naming the file."""
    for file in storage_files(path):
        reader = _salvage_mcap if file.suffix == ".mcap" else _salvage_sqlite
        try:
            for message in reader(file):
                if topics is None or message.topic in topics:
                    yield message
        except Exception as error:  # each storage library has its own error types
            detail = f"{type(error).__name__}: {error}".rstrip(": ")
            raise BagDamaged(f"{file} is unreadable from here on ({detail})") from error


def salvage_topics(path: str | Path) -> tuple[dict[str, tuple[str, int]], str | None]:
    """Topic -> (type, readable message count) of a damaged or unfinished rosbag2 (a full
    pass over what can be read), and where reading stopped (None: everything was read)."""
    topics: dict[str, tuple[str, int]] = {}
    try:
        for message in salvage_messages(path):
            count = topics.get(message.topic, (message.msgtype, 0))[1]
            topics[message.topic] = (message.msgtype, count + 1)
    except BagDamaged as error:
        return topics, str(error)
    return topics, None


def _salvage_mcap(file: Path) -> Iterator[BagMessage]:
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    with file.open("rb") as stream:
        for record in StreamReader(stream).records:
            if isinstance(record, Schema):
                schemas[record.id] = record.name
            elif isinstance(record, Channel):
                channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
            elif isinstance(record, Message) and record.channel_id in channels:
                topic, msgtype = channels[record.channel_id]
                yield BagMessage(topic, msgtype, record.log_time, bytes(record.data))


def _salvage_sqlite(file: Path) -> Iterator[BagMessage]:
    import sqlite3

    connection = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        topics = {row[0]: (row[1], row[2]) for row in
                  connection.execute("SELECT id, name, type FROM topics")}
        last = -1
        # one row at a time by rowid: everything before a corrupt page is still read
        while True:
            row = connection.execute(
                "SELECT id, topic_id, timestamp, data FROM messages WHERE id > ? "
                "ORDER BY id LIMIT 1", (last,)).fetchone()
            if row is None:
                return
            last = row[0]
            topic, msgtype = topics.get(row[1], ("", ""))
            yield BagMessage(topic, msgtype, row[2], bytes(row[3]))
    finally:
        connection.close()


class BagWriter:
    """Writes raw CDR messages to a new rosbag2, one connection per topic. ``storage``:
    sqlite3 (rosbag2's default before Iron) or mcap (the default since)."""

    def __init__(self, path: str | Path, storage: str = "sqlite3"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(Path(path), version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections = {}

    def write(self, topic: str, msgtype: str, timestamp_ns: int, data: bytes) -> None:
        """One message, stored at ``timestamp_ns`` (the bag's receive time)."""
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
    start_ns: int = 1_700_000_000_000_000_000, storage: str = "sqlite3",
    size: tuple[int, int] | None = None, rate_hz: float | None = None,
) -> int:
    """Write the frames of a video as ``sensor_msgs/Image`` messages at the video's rate
    (or stamped at ``rate_hz``), resized to ``size`` (width, height) when given.

    Returns the number of frames written. Raises ``FileNotFoundError``/``ValueError`` for a
    missing or unreadable video.
    """
    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"cannot decode video: {video}")
    fps = rate_hz or capture.get(cv2.CAP_PROP_FPS) or 10.0
    period_ns = int(1e9 / fps)
    count = 0
    with BagWriter(bag, storage) as writer:
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if size is not None:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            stamp = start_ns + count * period_ns
            data = image_to_cdr(frame, stamp, frame_id)
            writer.write(topic, "sensor_msgs/msg/Image", stamp, data)
            count += 1
    capture.release()
    if count == 0:
        raise ValueError(f"no frames could be read from {video}")
    return count
