"""Small hand-checkable inputs for the evaluation and data tests.

The tiny body surface has four sample points on two charts with hand-written geodesic
distances (metres):

    id  chart             (U, V)       geodesic to: id0   id1   id2   id3
    0   1 (torso)         (0.0, 0.0)                0.0   0.1   0.2   0.5
    1   1 (torso)         (1.0, 0.0)                0.1   0.0   0.25  0.45
    2   1 (torso)         (0.0, 1.0)                0.2   0.25  0.0   0.6
    3   3 (right hand)    (0.5, 0.5)                0.5   0.45  0.6   0.0
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from densepose_ros.evaluation.surface import SampledSurfaceMetric
from densepose_ros.inference.postprocess import PersonIUV

TINY_GEODESIC = np.array([
    [0.0, 0.1, 0.2, 0.5],
    [0.1, 0.0, 0.25, 0.45],
    [0.2, 0.25, 0.0, 0.6],
    [0.5, 0.45, 0.6, 0.0],
])
TINY_PART = np.array([1, 1, 1, 3])
TINY_UV = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])


def tiny_surface() -> SampledSurfaceMetric:
    return SampledSurfaceMetric(TINY_PART, TINY_UV, geodesic=TINY_GEODESIC)


def full_box_masks() -> list:
    """dp_masks with the torso covering the whole 256 x 256 box frame, other parts empty."""
    full = np.asfortranarray(np.ones((256, 256), dtype=np.uint8))
    rle = mask_utils.encode(full)
    rle["counts"] = rle["counts"].decode("ascii")
    return [rle] + [[] for _ in range(13)]


def point_on_pixel(col: int, row: int, bbox_wh: tuple[float, float],
                   frame: float = 255.0) -> tuple[float, float]:
    """dp_x, dp_y of a point at the centre of box-grid pixel (col, row) (grid = box size)."""
    w, h = bbox_wh
    return (col + 0.5) * frame / w, (row + 0.5) * frame / h


def person_annotation(ann_id: int, image_id: int, bbox: list[float],
                      pixels_iuv: list[tuple[int, int, int, float, float]] | None,
                      masks: bool = True, iscrowd: int = 0) -> dict:
    """A DensePose-COCO annotation dict; points given as (col, row, I, U, V) box pixels."""
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": list(bbox),
           "area": float(bbox[2] * bbox[3]), "iscrowd": iscrowd}
    if pixels_iuv is not None:
        xy = [point_on_pixel(c, r, (bbox[2], bbox[3])) for c, r, *_ in pixels_iuv]
        ann.update(dp_x=[p[0] for p in xy], dp_y=[p[1] for p in xy],
                   dp_I=[p[2] for p in pixels_iuv], dp_U=[p[3] for p in pixels_iuv],
                   dp_V=[p[4] for p in pixels_iuv])
        if masks:
            ann["dp_masks"] = full_box_masks()
    return ann


def coco_file(images: list[tuple[int, int, int]], annotations: list[dict]) -> dict:
    """A DensePose-COCO dict from (id, height, width) images and annotation dicts."""
    return {
        "images": [{"id": i, "file_name": f"{i:06d}.jpg", "height": h, "width": w}
                   for i, h, w in images],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }


def iuv_for(bbox: list[float], pixels_iuv, fill_part: int = 1, background: bool = False,
            grid_wh: tuple[int, int] | None = None) -> PersonIUV:
    """IUV over an integer box: ``fill_part`` (or background) everywhere, given pixels set.

    The grid has the box's size unless ``grid_wh`` says otherwise.
    """
    w, h = grid_wh or (int(bbox[2]), int(bbox[3]))
    labels = np.full((h, w), 0 if background else fill_part, dtype=np.uint8)
    u = np.zeros((h, w), dtype=np.float32)
    v = np.zeros((h, w), dtype=np.float32)
    for col, row, part, pu, pv in pixels_iuv:
        labels[row, col], u[row, col], v[row, col] = part, pu, pv
    box = (int(bbox[0]), int(bbox[1]), int(bbox[0] + bbox[2]), int(bbox[1] + bbox[3]))
    return PersonIUV(labels, u, v, box, 1.0)


def xyxy(bbox: list[float]) -> list[float]:
    return [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]
