"""Core results -> ROS messages: ``DensePersonArray``, ``sensor_msgs/Image``,
``PointCloud2`` and ``MarkerArray`` of one frame's ``FrameOutputs``, and input image messages
-> arrays: the only message construction of the node and of ``densepose infer`` on bags."""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

from densepose_ros.inference.postprocess import KEYPOINT_DRAW_SCORE, SKELETON
from densepose_ros.io import image_codec
from densepose_ros.msg import DensePerson, DensePersonArray
from densepose_ros.ros.frame_processor import FrameOutputs

# sensor_msgs/PointCloud2 layout of densepose/surface_points.
# person: the track id (DensePerson.id) when tracking, else the person's 1-based rank.
SURFACE_POINT_DTYPE = np.dtype([
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("u", "<f4"), ("v", "<f4"),
    ("person", "<u4"), ("part", "u1"), ("_pad", "u1", (3,)),
])
_POINT_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="u", offset=12, datatype=PointField.FLOAT32, count=1),
    PointField(name="v", offset=16, datatype=PointField.FLOAT32, count=1),
    PointField(name="person", offset=20, datatype=PointField.UINT32, count=1),
    PointField(name="part", offset=24, datatype=PointField.UINT8, count=1),
]


def _typed_array(typecode: str, values: np.ndarray, dtype) -> array.array:
    """numpy -> array.array without a per-element Python loop (what the messages store)."""
    out = array.array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return out


def image_array(msg: Image | CompressedImage, max_pixels: int) -> np.ndarray:
    """A ``sensor_msgs/Image`` or ``CompressedImage`` as an HxWx3 BGR array; raises
    ``image_codec.ImageDecodeError`` for what cannot be decoded."""
    if isinstance(msg, CompressedImage):
        return image_codec.decode_compressed(msg.format, msg.data, max_pixels=max_pixels)
    return image_codec.decode_image(msg.encoding, msg.height, msg.width, msg.step,
                                    bool(msg.is_bigendian), msg.data, max_pixels=max_pixels)


def persons_message(outputs: FrameOutputs, header) -> DensePersonArray:
    """``DensePersonArray`` of one frame's outputs (header copied from the source image)."""
    msg = DensePersonArray()
    msg.header = header
    msg.image_height, msg.image_width = outputs.image_size
    for person in outputs.persons:
        out = DensePerson()
        out.score = person.score
        out.id = person.track_id
        x, y, w, h = person.roi
        out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height = x, y, w, h
        out.chart_height, out.chart_width = person.chart_part.shape
        out.chart_part_index = _typed_array("B", person.chart_part, np.uint8)
        out.chart_u = _typed_array("B", person.chart_u, np.uint8)
        out.chart_v = _typed_array("B", person.chart_v, np.uint8)
        out.chart_uv_confidence = _typed_array("B", person.chart_uv_confidence, np.uint8)
        points = person.points
        out.point_x = _typed_array("H", points.x, np.uint16)
        out.point_y = _typed_array("H", points.y, np.uint16)
        out.point_part = _typed_array("B", points.part, np.uint8)
        out.point_u = _typed_array("f", points.u, np.float32)
        out.point_v = _typed_array("f", points.v, np.float32)
        out.point_xyz = _typed_array("f", points.xyz, np.float32)
        out.keypoints = _typed_array("f", person.keypoints, np.float32)
        out.keypoints_xyz = _typed_array("f", person.keypoints_xyz, np.float32)
        if person.position is not None:
            out.position.x, out.position.y, out.position.z = (float(c) for c in person.position)
        else:
            out.position.x = out.position.y = out.position.z = float("nan")
        msg.persons.append(out)
    return msg


def image_message(image: np.ndarray, encoding: str, header) -> Image:
    msg = Image()
    msg.header = header
    fields = image_codec.encode_image_fields(image, encoding)
    msg.height, msg.width, msg.encoding = fields["height"], fields["width"], encoding
    msg.is_bigendian, msg.step = 0, fields["step"]
    msg.data = _typed_array("B", fields["data"], np.uint8)
    return msg


def surface_points_message(outputs: FrameOutputs, header) -> PointCloud2:
    """All persons' 3D correspondences as one unorganised cloud (NaN points dropped)."""
    chunks = []
    for index, person in enumerate(outputs.persons):
        p = person.points
        if len(p.xyz) == 0:
            continue
        chunk = np.zeros(len(p.xyz), SURFACE_POINT_DTYPE)
        chunk["x"], chunk["y"], chunk["z"] = p.xyz[:, 0], p.xyz[:, 1], p.xyz[:, 2]
        chunk["u"], chunk["v"], chunk["part"] = p.u, p.v, p.part
        chunk["person"] = person.track_id or index + 1
        chunks.append(chunk[np.isfinite(p.xyz).all(axis=1)])
    cloud = np.concatenate(chunks) if chunks else np.zeros(0, SURFACE_POINT_DTYPE)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, len(cloud)
    msg.fields = _POINT_FIELDS
    msg.is_bigendian, msg.is_dense = False, True
    msg.point_step = SURFACE_POINT_DTYPE.itemsize
    msg.row_step = msg.point_step * len(cloud)
    msg.data = _typed_array("B", cloud.view(np.uint8), np.uint8)
    return msg


class MarkerPool:
    """Marker objects kept from frame to frame and refilled: a ``Marker()`` costs about
    12 us to construct (it carries a texture, a mesh and their headers), a sizeable part of
    the node's per-person budget. Safe because rclpy serialises a message when it is
    published; the arrays built with one pool must not be kept past the next build."""

    def __init__(self) -> None:
        self._labels: list[Marker] = []
        self._skeletons: list[Marker] = []

    def label(self, index: int) -> Marker:
        return _pooled(self._labels, index, _new_label)

    def skeleton(self, index: int) -> Marker:
        return _pooled(self._skeletons, index, _new_skeleton)


def _pooled(markers: list[Marker], index: int, make) -> Marker:
    while len(markers) <= index:
        markers.append(make())
    return markers[index]


def _new_label() -> Marker:
    marker = Marker(ns="densepose_ids", type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.scale.z = 0.15
    marker.color.r = marker.color.g = marker.color.b = marker.color.a = 1.0
    return marker


def _new_skeleton() -> Marker:
    marker = Marker(ns="densepose_skeletons", type=Marker.LINE_LIST, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.scale.x = 0.02
    marker.color.g = marker.color.a = 1.0
    return marker


def markers_message(outputs: FrameOutputs, header, lifetime_s: float,
                    pool: MarkerPool | None = None) -> MarkerArray:
    """rviz markers of the persons located in 3D (depth): per person an id label above its
    position and, with keypoints, its 3D skeleton. They expire after ``lifetime_s``, so
    people who leave disappear; ids pick the marker, so a person's markers move with them.
    With a ``pool`` (the node's) the Marker objects of the previous call are refilled."""
    pool = pool or MarkerPool()
    array = MarkerArray()
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
    labels = skeletons = 0
    for rank, person in enumerate(outputs.persons):
        if person.position is None or not np.isfinite(person.position).all():
            continue
        marker_id = person.track_id or rank + 1
        label = pool.label(labels)
        labels += 1
        label.header, label.id, label.lifetime = header, marker_id, lifetime
        x, y, z = (float(c) for c in person.position)
        # y points down in an optical frame: the label floats above the person's centre
        label.pose.position.x, label.pose.position.y, label.pose.position.z = x, y - 0.4, z
        label.text = f"#{person.track_id}" if person.track_id else f"{person.score:.2f}"
        array.markers.append(label)
        lines = _skeleton_points(person)
        if lines:
            skeleton = pool.skeleton(skeletons)
            skeletons += 1
            skeleton.header, skeleton.id, skeleton.lifetime = header, marker_id, lifetime
            skeleton.points = lines
            array.markers.append(skeleton)
    return array


_SKELETON_ENDS = np.asarray(SKELETON, dtype=np.int64)  # [E, 2] keypoint indices per edge


def _skeleton_points(person) -> list[Point]:
    """LINE_LIST points of the skeleton edges whose both keypoints are seen and in 3D."""
    xyz, keypoints = person.keypoints_xyz, person.keypoints
    if len(xyz) == 0:
        return []
    usable = np.isfinite(xyz).all(axis=1) & (keypoints[:, 2] >= KEYPOINT_DRAW_SCORE)
    ends = _SKELETON_ENDS[usable[_SKELETON_ENDS].all(axis=1)].reshape(-1)
    # one tolist() and plain floats: a Point per float() call costs twice as much
    return [Point(x=x, y=y, z=z) for x, y, z in xyz[ends].astype(np.float64).tolist()]
