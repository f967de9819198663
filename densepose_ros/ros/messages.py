"""Core results -> ROS messages: ``DensePersonArray``, ``sensor_msgs/Image`` and
``PointCloud2`` of one frame's ``FrameOutputs`` (the node's only message construction)."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField

from densepose_ros.io import image_codec
from densepose_ros.msg import DensePerson, DensePersonArray
from densepose_ros.ros.frame_processor import FrameOutputs

# sensor_msgs/PointCloud2 layout of densepose/surface_points.
SURFACE_POINT_DTYPE = np.dtype([
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("u", "<f4"), ("v", "<f4"),
    ("part", "u1"), ("person", "u1"), ("_pad", "u1", (2,)),
])
_POINT_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="u", offset=12, datatype=PointField.FLOAT32, count=1),
    PointField(name="v", offset=16, datatype=PointField.FLOAT32, count=1),
    PointField(name="part", offset=20, datatype=PointField.UINT8, count=1),
    PointField(name="person", offset=21, datatype=PointField.UINT8, count=1),
]


def _typed_array(typecode: str, values: np.ndarray, dtype) -> array.array:
    """numpy -> array.array without a per-element Python loop (what the messages store)."""
    out = array.array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return out


def persons_message(outputs: FrameOutputs, header) -> DensePersonArray:
    """``DensePersonArray`` of one frame's outputs (header copied from the source image)."""
    msg = DensePersonArray()
    msg.header = header
    msg.image_height, msg.image_width = outputs.image_size
    for person in outputs.persons:
        out = DensePerson()
        out.score = person.score
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
        chunk["person"] = min(index, 255)
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
