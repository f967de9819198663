"""``densepose infer BAG_DIR``: every frame of a recorded image topic through the node's own
processing, the node's messages written to a new rosbag2.

The node drops frames when the model is slower than the camera; this does not. For each
image message of the topic (``sensor_msgs/Image`` or ``CompressedImage``) it decodes,
infers, tracks and builds the messages with the same functions and parameters as the node
(``frame_processor.apply_node_settings``, ``node_process_options``, ``ros/messages.py``), so
for the same frames and weights the outputs are the node's, byte for byte. Each output keeps
the source image's header and is stored at the source message's receive time, so the two
bags play back side by side.

Output, next to each other in ``OUT``: ``<bag name>_densepose/`` (a rosbag2 in the input's
storage format) and ``<bag name>_densepose.json`` (per frame: stamp, persons with box,
score and track id). Ctrl-C, or a bag that stops being readable, closes the output bag
properly: everything processed so far is kept and readable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image

from densepose_ros.inference.postprocess import keypoints_json
from densepose_ros.io import bag_io, image_codec
from densepose_ros.io.media import IMAGE_MSG_TYPES
from densepose_ros.ros.frame_processor import (
    FrameProcessor,
    apply_node_settings,
    node_process_options,
)
from densepose_ros.ros.messages import image_array, image_message, persons_message
from densepose_ros.ros.node_config import NodeConfig
from densepose_ros.runtime.base import Backend
from densepose_ros.tracking.bytetrack import ByteTracker

# rclpy message class of each image type a bag may hold.
IMAGE_TYPES = dict(zip(IMAGE_MSG_TYPES, (Image, CompressedImage), strict=True))
# The node's output topics (in the root namespace, as a node started without one publishes).
PERSONS_TOPIC = "/densepose/persons"
IUV_TOPIC = "/densepose/iuv"
DEBUG_TOPIC = "/densepose/debug_image"
PERSONS_TYPE = "densepose_ros/msg/DensePersonArray"
IMAGE_TYPE = "sensor_msgs/msg/Image"


class BagInferError(Exception):
    """A problem with the user's bag or arguments, with a message that says what to do."""


@dataclass
class BagInferReport:
    """What one bag gave.

    frames_read: image messages read from the topic; frames_processed: of those, the ones
    whose outputs were written (the others could not be decoded, see ``skipped``).
    interrupted: stopped by Ctrl-C; read_error: why the bag stopped being readable, if it did.
    """

    bag: Path
    output: Path
    topic: str
    storage: str
    frames_read: int = 0
    frames_processed: int = 0
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False
    read_error: str | None = None
    seconds: float = 0.0


def is_bag(path: Path) -> bool:
    """A rosbag2 folder: it has a metadata.yaml, or storage files (a recording that did not
    finish writes its metadata.yaml last)."""
    return path.is_dir() and ((path / "metadata.yaml").is_file()
                              or bool(bag_io.storage_files(path)))


@dataclass
class _BagSource:
    """How a bag is read: through its index (rosbags), or salvaged file by file when the
    index is missing or broken (``damage`` says why)."""

    topics: dict[str, tuple[str, int]]
    storage: str
    salvage: bool
    damage: str | None = None


def _open_source(bag: Path) -> _BagSource:
    files = bag_io.storage_files(bag)
    storage = "mcap" if files and files[0].suffix == ".mcap" else "sqlite3"
    damage = None
    if (bag / "metadata.yaml").is_file():
        try:
            return _BagSource(bag_io.bag_topics(bag), bag_io.bag_storage(bag), salvage=False)
        except Exception as error:  # rosbags raises several types for unreadable bags
            damage = f"its index cannot be read ({type(error).__name__}: " \
                f"{str(error).rstrip('.')})"
    if not files:
        raise BagInferError(f"cannot open bag {bag}: {damage or 'no storage files'}")
    topics, stop = bag_io.salvage_topics(bag)
    if not topics:
        raise BagInferError(f"cannot read any message of bag {bag}: {damage or stop}")
    if damage is None:
        warn(f"{bag} has no metadata.yaml (a recording that did not finish?): reading its "
             "storage files directly")
    return _BagSource(topics, storage, salvage=True, damage=damage)


def node_config(params_file: Path | None, *, no_tracking: bool = False,
                score_threshold: float | None = None, chart_mode: str | None = None,
                no_resize: bool = False) -> NodeConfig:
    """The node's parameters: its defaults or a ROS parameter file, then what the command line
    gives (None: keep). ValueError for a bad file or value."""
    config = NodeConfig.from_params_file(params_file) if params_file else NodeConfig()
    changes: dict = {"tracking": config.tracking and not no_tracking}
    if score_threshold is not None:
        changes["score_threshold"] = score_threshold
    if chart_mode is not None:
        changes["chart_mode"] = chart_mode
    if no_resize:
        changes["resize_shortest_edge"] = -1
    return config.replace(**changes)


def choose_topic(bag: Path, topics: dict[str, tuple[str, int]], requested: str | None
                 ) -> tuple[str, str, int]:
    """(topic, type, message count) of the image topic to process: ``requested``, else the
    bag's only Image/CompressedImage topic. ``topics``: topic -> (type, count)."""
    images = {t: v for t, v in topics.items() if v[0] in IMAGE_TYPES}
    listing = ", ".join(f"{t} ({v[0].rsplit('/', 1)[-1]})" for t, v in sorted(images.items()))
    if requested is not None:
        if requested not in topics:
            raise BagInferError(f"{bag} has no topic {requested}; image topics: "
                                f"{listing or 'none'}")
        if requested not in images:
            raise BagInferError(f"{requested} in {bag} is a {topics[requested][0]}, not an "
                                f"Image or CompressedImage")
        return requested, *images[requested]
    if not images:
        raise BagInferError(f"{bag} has no Image or CompressedImage topic (topics: "
                            f"{', '.join(sorted(topics)) or 'none'})")
    if len(images) > 1:
        raise BagInferError(f"{bag} has {len(images)} image topics; pick one with --topic: "
                            f"{listing}")
    (topic, (msgtype, count)), = images.items()
    return topic, msgtype, count


def infer_bag(bag: Path, out_dir: Path, backend: Backend, config: NodeConfig, *,
              topic: str | None = None, storage: str | None = None, debug_image: bool = False,
              progress: bool = True) -> BagInferReport:
    """Process every frame of ``topic`` of ``bag`` as the node with ``config`` would; write
    ``out_dir/<bag name>_densepose/`` and its JSON. Raises BagInferError before anything is
    written when the bag or the output folder is unusable; after that, problems end up in
    the report and what was processed is kept."""
    from tqdm import tqdm

    bag = Path(bag)
    source = _open_source(bag)
    topic, msgtype, count = choose_topic(bag, source.topics, topic)
    storage = storage or source.storage
    if storage not in bag_io.STORAGES:
        raise BagInferError(f"{bag}: storage {storage!r} is not supported (only "
                            f"{', '.join(bag_io.STORAGES)}); use --storage to write another")
    name = bag.resolve().name
    output = Path(out_dir) / f"{name}_densepose"
    if output.exists():
        raise BagInferError(f"output {output} exists: remove it or choose another --out")
    output.parent.mkdir(parents=True, exist_ok=True)

    tracker = ByteTracker() if config.tracking else None
    processor = FrameProcessor(backend, tracker)
    apply_node_settings(backend, tracker, config)
    options = node_process_options(config)
    report = BagInferReport(bag=bag, output=output, topic=topic, storage=storage,
                            read_error=source.damage)
    frames_json: list[dict] = []
    start = time.perf_counter()
    writer = bag_io.BagWriter(output, storage)
    try:
        with tqdm(total=count, desc=name, unit="frame", disable=not progress) as bar:
            for message in _frames(bag, topic, source, report):
                report.frames_read += 1
                msg = deserialize_message(message.data, IMAGE_TYPES[msgtype])
                try:
                    image = image_array(msg, config.max_image_pixels)
                except image_codec.ImageDecodeError as error:
                    # as the node does: the frame is skipped and counted, the rest goes on
                    report.skipped.append(f"frame {report.frames_read - 1}: {error}")
                    bar.update(1)
                    continue
                outputs = processor.process(image, **options, want_overlay=debug_image)
                stamp = message.timestamp_ns
                if config.publish_persons:
                    writer.write(PERSONS_TOPIC, PERSONS_TYPE, stamp,
                                 serialize_message(persons_message(outputs, msg.header)))
                if outputs.iuv is not None:
                    writer.write(IUV_TOPIC, IMAGE_TYPE, stamp, serialize_message(
                        image_message(outputs.iuv, "8UC3", msg.header)))
                if outputs.overlay is not None:
                    writer.write(DEBUG_TOPIC, IMAGE_TYPE, stamp, serialize_message(
                        image_message(outputs.overlay, "bgr8", msg.header)))
                report.frames_processed += 1
                frames_json.append(_frame_json(msg.header, stamp, outputs))
                # after the write: a frame the bar counts is in the bag, even if Ctrl-C follows
                bar.update(1)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        writer.close()
        report.seconds = time.perf_counter() - start
        _write_json(output.with_name(f"{name}_densepose.json"), report, frames_json)
    return report


def _frames(bag: Path, topic: str, source: _BagSource, report: BagInferReport
            ) -> Iterator[bag_io.BagMessage]:
    """The topic's messages: through the bag's index; where that fails (or from the start,
    without one) salvaged from the storage files, skipping what was already read. Where
    nothing more can be read, ``report.read_error`` says why and the frames end."""
    seen: set[int] = set()
    if not source.salvage:
        try:
            for message in bag_io.read_bag(bag, [topic]):
                seen.add(message.timestamp_ns)
                yield message
            return
        except Exception as error:  # corrupt storage: go on with what can be salvaged
            report.read_error = f"reading stopped ({type(error).__name__}: " \
                f"{str(error).rstrip('.')})"
    try:
        for message in bag_io.salvage_messages(bag, [topic]):
            if message.timestamp_ns not in seen:
                yield message
    except bag_io.BagDamaged as error:
        report.read_error = "; ".join(filter(None, [report.read_error, str(error)]))


def _frame_json(header, receive_ns: int, outputs) -> dict:
    return {
        "stamp_ns": header.stamp.sec * 1_000_000_000 + header.stamp.nanosec,
        "receive_ns": receive_ns,
        "persons": [_person_json(p) for p in outputs.persons],
    }


def _person_json(person) -> dict:
    """A published person as the frame JSON holds it (keypoints for models with that head)."""
    roi = person.roi
    record = {"id": person.track_id, "score": round(person.score, 4),
              "box": [roi[0], roi[1], roi[0] + roi[2], roi[1] + roi[3]],
              "foreground_pixels": int((person.chart_part > 0).sum())}
    if len(person.keypoints):
        record["keypoints"] = keypoints_json(person.keypoints)
    return record


def _write_json(path: Path, report: BagInferReport, frames: list[dict]) -> None:
    record = {"bag": str(report.bag), "topic": report.topic, "output_bag": str(report.output),
              "storage": report.storage, "frames_read": report.frames_read,
              "frames_processed": report.frames_processed, "skipped": report.skipped,
              "interrupted": report.interrupted, "read_error": report.read_error,
              "frames": frames}
    path.write_text(json.dumps(record, indent=1))


def describe(report: BagInferReport) -> str:
    """One line for the terminal."""
    fps = report.frames_processed / report.seconds if report.seconds > 0 else 0.0
    line = (f"{report.bag}: {report.frames_processed} of {report.frames_read} frames of "
            f"{report.topic} -> {report.output} ({report.storage}, {fps:.1f} fps)")
    if report.skipped:
        line += f"; {len(report.skipped)} skipped (undecodable): {report.skipped[0]}"
    return line


def warn(text: str) -> None:
    print(f"densepose infer: {text}", file=sys.stderr)
