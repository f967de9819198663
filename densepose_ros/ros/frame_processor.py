"""One camera frame -> everything the node publishes, without ROS.

The node decodes messages into arrays and hands them here; this module runs the backend,
turns its typed result into per-person charts, correspondences (with 3D points when depth
is given), the full-frame IUV image and, on request, the overlay. The node then only copies
arrays into messages, so everything here is tested without ROS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from densepose_ros.inference import postprocess
from densepose_ros.inference.correspondences import (
    CameraIntrinsics,
    Correspondences,
    backproject,
    sample_correspondences,
)
from densepose_ros.inference.structures import DensePoseResult
from densepose_ros.runtime.base import Backend


@dataclass
class PersonOutput:
    """One person as published in ``densepose_ros/DensePerson``.

    score: detection score.
    roi: (x, y, width, height) integer box in source pixels that the chart spans.
    chart_part: (chart_h, chart_w) uint8 part index 0..24 over roi.
    chart_u, chart_v: (chart_h, chart_w) uint8, round(U * 255) / round(V * 255); 0 off-body.
    points: sampled correspondences (from the full-resolution chart).
    """

    score: float
    roi: tuple[int, int, int, int]
    chart_part: np.ndarray
    chart_u: np.ndarray
    chart_v: np.ndarray
    points: Correspondences


@dataclass
class FrameOutputs:
    """Everything computed for one frame.

    persons: by descending score.
    image_size: (height, width) of the source image.
    iuv: (H, W, 3) uint8 full-frame IUV (I, U*255, V*255), or None if not requested.
    overlay: (H, W, 3) uint8 BGR visualisation, or None if not requested.
    timings: seconds per stage ("inference", "charts", "iuv", "overlay").
    """

    persons: list[PersonOutput]
    image_size: tuple[int, int]
    iuv: np.ndarray | None = None
    overlay: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def cap_chart(part: np.ndarray, u8: np.ndarray, v8: np.ndarray, max_size: int):
    """Downsample a chart (nearest, so parts and U/V stay consistent) so that its longer
    side is at most ``max_size``; unchanged if already small enough or ``max_size`` is 0."""
    height, width = part.shape
    if max_size <= 0 or max(height, width) <= max_size:
        return part, u8, v8
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resize = lambda a: cv2.resize(a, size, interpolation=cv2.INTER_NEAREST)  # noqa: E731
    return resize(part), resize(u8), resize(v8)


def clip_chart(chart: postprocess.PersonIUV, height: int, width: int):
    """The part of a person's chart inside the image: (labels, u, v, box)."""
    overlap = postprocess.image_overlap(chart.box, height, width)
    if overlap is None:
        empty = np.zeros((0, 0), np.uint8)
        x0, y0 = max(chart.box[0], 0), max(chart.box[1], 0)
        return empty, empty, empty, (x0, y0, x0, y0)
    rows, cols = overlap.patch
    return chart.labels[rows, cols], chart.u[rows, cols], chart.v[rows, cols], overlap.box


class FrameProcessor:
    """Runs a backend and builds :class:`FrameOutputs`. Not thread-safe: one worker."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def outputs_from_result(
        self,
        result: DensePoseResult,
        image_bgr: np.ndarray,
        *,
        correspondence_stride: int,
        chart_max_size: int = 0,
        want_iuv: bool = True,
        want_overlay: bool = False,
        depth_m: np.ndarray | None = None,
        intrinsics: CameraIntrinsics | None = None,
    ) -> FrameOutputs:
        """Build the published outputs from a backend result (see :meth:`process`)."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        charts = postprocess.person_iuv_charts(result)
        persons = []
        height, width = image_bgr.shape[:2]
        for chart in charts:
            labels, u, v, (x0, y0, x1, y1) = clip_chart(chart, height, width)
            if labels.size == 0:
                continue  # a caller-supplied box entirely outside the image
            points = sample_correspondences(labels, u, v, x0, y0, correspondence_stride)
            if depth_m is not None and intrinsics is not None:
                points.xyz = backproject(points.x, points.y, depth_m, intrinsics, (height, width))
            foreground = labels > 0
            part, u8, v8 = cap_chart(
                labels, postprocess.quantise_unit(u) * foreground,
                postprocess.quantise_unit(v) * foreground,
                chart_max_size,
            )
            persons.append(PersonOutput(
                score=chart.score, roi=(x0, y0, x1 - x0, y1 - y0), chart_part=part,
                chart_u=u8, chart_v=v8, points=points,
            ))
        timings["charts"] = time.perf_counter() - start
        outputs = FrameOutputs(persons=persons, image_size=image_bgr.shape[:2], timings=timings)
        if want_iuv:
            start = time.perf_counter()
            outputs.iuv = postprocess.full_frame_iuv(result, charts)
            timings["iuv"] = time.perf_counter() - start
        if want_overlay:
            start = time.perf_counter()
            outputs.overlay = postprocess.draw_overlay(image_bgr, result, persons=charts)
            timings["overlay"] = time.perf_counter() - start
        return outputs

    def process(self, image_bgr: np.ndarray, **kwargs) -> FrameOutputs:
        """Infer on one BGR frame; keyword arguments as :meth:`outputs_from_result`."""
        start = time.perf_counter()
        result = self.backend.infer(image_bgr)
        inference = time.perf_counter() - start
        outputs = self.outputs_from_result(result, image_bgr, **kwargs)
        outputs.timings["inference"] = inference
        return outputs
