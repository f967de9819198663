"""Geodesic Point Similarity of one detected person against one annotated person.

The annotated points are placed in the image from the annotation box; the predicted
(I, U, V) is read at each point's pixel of the detection's IUV (box resolution); both are
turned into surface points by the ``SurfaceMetric``; each point scores
``exp(-g^2 / (2 kappa^2))`` with g the geodesic distance and kappa the per-part constant of
the annotated chart; a point outside the detection or predicted as background scores 0.
GPS is the mean over the annotated points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densepose_ros.data.coco import InstanceAnnotation
from densepose_ros.evaluation.surface import PAPER_KAPPA, PART_KAPPA, SurfaceMetric
from densepose_ros.inference.postprocess import DEFAULT_CHART_MODE, PersonIUV, person_iuv_charts
from densepose_ros.inference.structures import DensePoseResult


@dataclass
class ImagePredictions:
    """Detections of one image, with their dense predictions.

    Attributes:
        image_id: the image id of the annotation file.
        boxes: [N, 4] float detection box (x1, y1, x2, y2) in image pixels (box AP, areas).
        scores: [N] float confidences.
        persons: N ``PersonIUV`` (``densepose_ros.inference.postprocess``): person k's labels, U, V
            on the integer pixel box ``persons[k].box`` covering ``boxes[k]``.
        keypoints: [N, 17, 3] (x, y, score) in image pixels for models with a keypoint
            head, else None.
    """

    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    persons: list[PersonIUV]
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.persons)):
            raise ValueError(f"image {self.image_id}: {len(self.boxes)} boxes, "
                             f"{len(self.scores)} scores and {len(self.persons)} IUV maps")

    @classmethod
    def from_result(cls, image_id: int, result: DensePoseResult,
                    chart_mode: str = DEFAULT_CHART_MODE) -> ImagePredictions:
        """From a model result: boxes, scores and per-person IUV at box resolution."""
        result = result.numpy()  # torch tensors or numpy arrays (the graph backends)
        keypoints = None if result.keypoints is None else result.keypoints.astype(np.float32)
        return cls(image_id, result.boxes, result.scores, person_iuv_charts(result, chart_mode),
                   keypoints)


def annotated_points_in_image(instance: InstanceAnnotation,
                              frame_size: float) -> tuple[np.ndarray, np.ndarray]:
    """[P] x and [P] y image coordinates of the annotated points.

    ``frame_size`` is the divisor of ``dp_x``/``dp_y``: the DensePose evaluator uses 255
    (its training code 256; a known inconsistency kept for comparable numbers).
    """
    assert instance.dense is not None
    x0, y0, w, h = instance.bbox_xywh
    return (x0 + instance.dense.x.astype(np.float64) * w / frame_size,
            y0 + instance.dense.y.astype(np.float64) * h / frame_size)


def sample_prediction(person: PersonIUV, x: np.ndarray,
                      y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted (I, U, V) at image points: [P] int64, [P] float, [P] float.

    The pixel of a point is ``floor`` of its offset in the person's box scaled to the IUV
    grid (the identity when the grid has the box's size); points outside get I = 0.
    """
    h, w = person.labels.shape
    x1, y1, x2, y2 = (float(c) for c in person.box)
    col = np.floor((x - x1) * w / max(x2 - x1, 1e-6)).astype(np.int64)
    row = np.floor((y - y1) * h / max(y2 - y1, 1e-6)).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    col, row = np.where(inside, col, 0), np.where(inside, row, 0)
    part = np.where(inside, person.labels[row, col].astype(np.int64), 0)
    return (part, person.u[row, col].astype(np.float64),
            person.v[row, col].astype(np.float64))


@dataclass
class PointComparison:
    """Annotated vs predicted surface points of one (detection, annotation) pair.

    Attributes:
        gt_part, pred_part: [P] int64 annotated and predicted chart (0 = background).
        gt_u, gt_v, pred_u, pred_v: [P] float chart coordinates.
        distance: [P] geodesic distance, inf where nothing comparable was predicted.
        similarity: [P] per-point GPS term in [0, 1].
    """

    gt_part: np.ndarray
    pred_part: np.ndarray
    gt_u: np.ndarray
    gt_v: np.ndarray
    pred_u: np.ndarray
    pred_v: np.ndarray
    distance: np.ndarray
    similarity: np.ndarray

    @property
    def gps(self) -> float:
        return float(self.similarity.mean()) if self.similarity.size else 0.0


def compare_points(instance: InstanceAnnotation, gt_ids: np.ndarray, person: PersonIUV,
                   metric: SurfaceMetric, frame_size: float,
                   per_part_kappa: bool = True) -> PointComparison:
    """Per-point comparison of a detection with an annotated person.

    ``gt_ids`` are the surface points of the annotation (``metric.locate`` of its I, U, V),
    computed once per annotation by the caller.
    """
    dense = instance.dense
    assert dense is not None
    x, y = annotated_points_in_image(instance, frame_size)
    pred_part, pred_u, pred_v = sample_prediction(person, x, y)
    distance = np.full(pred_part.shape[0], np.inf)
    comparable = (pred_part > 0) & (gt_ids >= 0)
    if comparable.any():
        pred_ids = np.asarray(metric.locate(pred_part[comparable], pred_u[comparable],
                                            pred_v[comparable]), dtype=np.int64)
        located = pred_ids >= 0
        where = np.flatnonzero(comparable)[located]
        if where.size:
            distance[where] = metric.distance(gt_ids[where], pred_ids[located])
    kappa = PART_KAPPA[dense.part] if per_part_kappa else np.full(len(dense), PAPER_KAPPA)
    with np.errstate(over="ignore"):
        similarity = np.exp(-(distance ** 2) / (2.0 * kappa ** 2))
    return PointComparison(
        gt_part=dense.part, pred_part=pred_part, gt_u=dense.u.astype(np.float64),
        gt_v=dense.v.astype(np.float64), pred_u=pred_u, pred_v=pred_v, distance=distance,
        similarity=similarity)


def locate_annotation(instance: InstanceAnnotation, metric: SurfaceMetric) -> np.ndarray:
    """[P] surface point ids of an annotation's points (-1 where the metric has none)."""
    dense = instance.dense
    assert dense is not None
    if not len(dense):
        return np.zeros(0, dtype=np.int64)
    return np.asarray(metric.locate(dense.part, dense.u, dense.v), dtype=np.int64)
