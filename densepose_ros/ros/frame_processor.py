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
    chart_uv_confidence: (chart_h, chart_w) uint8 U/V confidence
        (``postprocess.uv_confidence_bytes``), or shape (0, 0) for models without it.
    """

    score: float
    roi: tuple[int, int, int, int]
    chart_part: np.ndarray
    chart_u: np.ndarray
    chart_v: np.ndarray
    points: Correspondences
    chart_uv_confidence: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0), np.uint8))


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


def cap_chart(part: np.ndarray, *planes: np.ndarray, max_size: int) -> list[np.ndarray]:
    """Downsample a chart's part map and its other planes (nearest, so they stay consistent)
    so that the longer side is at most ``max_size``; unchanged if already small enough or
    ``max_size`` is 0. Empty planes (a model without confidence) stay empty."""
    height, width = part.shape
    if max_size <= 0 or max(height, width) <= max_size:
        return [part, *planes]
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))

    def resize(array: np.ndarray) -> np.ndarray:
        if array.size == 0:
            return array
        return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST)

    return [resize(part), *(resize(plane) for plane in planes)]


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
        chart_mode: str = postprocess.DEFAULT_CHART_MODE,
        want_iuv: bool = True,
        want_overlay: bool = False,
        depth_m: np.ndarray | None = None,
        intrinsics: CameraIntrinsics | None = None,
    ) -> FrameOutputs:
        """Build the published outputs from a backend result (see :meth:`process`)."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        charts = postprocess.person_iuv_charts(result, chart_mode)
        persons = []
        height, width = image_bgr.shape[:2]
        for chart in charts:
            overlap = postprocess.image_overlap(chart.box, height, width)
            if overlap is None:
                continue  # a caller-supplied box entirely outside the image
            (x0, y0, x1, y1), inside = overlap.box, overlap.patch
            labels, u, v = chart.labels[inside], chart.u[inside], chart.v[inside]
            points = sample_correspondences(labels, u, v, x0, y0, correspondence_stride)
            if depth_m is not None and intrinsics is not None:
                points.xyz = backproject(points.x, points.y, depth_m, intrinsics, (height, width))
            foreground = labels > 0
            confidence = np.zeros((0, 0), np.uint8)
            if chart.uv_sigma is not None:
                confidence = postprocess.uv_confidence_bytes(chart.uv_sigma[inside], labels)
            part, u8, v8, confidence = cap_chart(
                labels, postprocess.quantise_unit(u) * foreground,
                postprocess.quantise_unit(v) * foreground, confidence, max_size=chart_max_size)
            persons.append(PersonOutput(
                score=chart.score, roi=(x0, y0, x1 - x0, y1 - y0), chart_part=part,
                chart_u=u8, chart_v=v8, points=points, chart_uv_confidence=confidence,
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
