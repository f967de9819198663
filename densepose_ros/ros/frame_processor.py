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
from densepose_ros.ros.node_config import NodeConfig
from densepose_ros.runtime.base import Backend, InferenceSettings
from densepose_ros.tracking.bytetrack import ByteTracker, TrackerConfig, follow


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
    track_id: int = 0  # >= 1 while tracked; 0 when tracking is off
    # (17, 3) float32 (x, y, score) COCO keypoints in source pixels; (0, 3) without a
    # keypoint head.
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    # With depth: (17, 3) float32 camera-frame keypoints (NaN where depth is missing), and
    # the person's position, the median of their 3D surface points (NaN: none); without
    # depth (0, 3) and None.
    keypoints_xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    position: np.ndarray | None = None


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


def _median_point(xyz: np.ndarray) -> np.ndarray:
    """Component-wise median of the finite 3D points (NaN when there is none): robust to
    the background pixels that depth edges give a person."""
    finite = xyz[np.isfinite(xyz).all(axis=1)]
    if len(finite) == 0:
        return np.full(3, np.nan, np.float32)
    return np.median(finite, axis=0).astype(np.float32)


def _keypoints_3d(keypoints: np.ndarray, depth_m: np.ndarray, intrinsics: CameraIntrinsics,
                  image_size: tuple[int, int]) -> np.ndarray:
    """Camera-frame points of the keypoints inside the image (NaN elsewhere)."""
    height, width = image_size
    x, y = keypoints[:, 0], keypoints[:, 1]
    inside = (x >= 0) & (y >= 0) & (x < width) & (y < height)
    xyz = np.full((len(keypoints), 3), np.nan, np.float32)
    if inside.any():
        xyz[inside] = backproject(np.floor(x[inside]), np.floor(y[inside]), depth_m,
                                  intrinsics, image_size)
    return xyz


class FrameProcessor:
    """Runs a backend (and a tracker, if given) and builds :class:`FrameOutputs`. Not
    thread-safe: one worker."""

    def __init__(self, backend: Backend, tracker: ByteTracker | None = None):
        self.backend = backend
        self.tracker = tracker

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
        track_ids: np.ndarray | None = None,
    ) -> FrameOutputs:
        """Build the published outputs from a backend result (see :meth:`process`);
        ``track_ids`` [N] gives each person's track id (None: 0, untracked)."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        charts = postprocess.person_iuv_charts(result, chart_mode)
        if track_ids is not None:
            for chart, track_id in zip(charts, track_ids, strict=True):
                chart.track_id = int(track_id)
        persons = []
        height, width = image_bgr.shape[:2]
        for chart in charts:
            overlap = postprocess.image_overlap(chart.box, height, width)
            if overlap is None:
                continue  # a caller-supplied box entirely outside the image
            (x0, y0, x1, y1), inside = overlap.box, overlap.patch
            labels, u, v = chart.labels[inside], chart.u[inside], chart.v[inside]
            points = sample_correspondences(labels, u, v, x0, y0, correspondence_stride)
            keypoints = (np.zeros((0, 3), np.float32) if chart.keypoints is None
                         else chart.keypoints.astype(np.float32))
            keypoints_xyz, position = np.zeros((0, 3), np.float32), None
            if depth_m is not None and intrinsics is not None:
                points.xyz = backproject(points.x, points.y, depth_m, intrinsics, (height, width))
                position = _median_point(points.xyz)
                if len(keypoints):
                    keypoints_xyz = _keypoints_3d(keypoints, depth_m, intrinsics,
                                                  (height, width))
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
                track_id=chart.track_id, keypoints=keypoints, keypoints_xyz=keypoints_xyz,
                position=position,
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
        """Infer on one BGR frame; keyword arguments as :meth:`outputs_from_result`. With a
        tracker, persons get their track ids and low-score detections that continue no
        track are dropped before any chart is computed."""
        start = time.perf_counter()
        result = self.backend.infer(image_bgr)
        inference = time.perf_counter() - start
        track_ids = None
        if self.tracker is not None:
            result, track_ids = follow(self.tracker, result)
        outputs = self.outputs_from_result(result, image_bgr, track_ids=track_ids, **kwargs)
        outputs.timings["inference"] = inference
        return outputs


def apply_node_settings(backend: Backend, tracker: ByteTracker | None, cfg: NodeConfig) -> None:
    """The node's detection and tracking parameters -> the backend and the tracker. The node
    and ``densepose infer`` on bags both call this, so they compute the same outputs."""
    threshold = cfg.score_threshold
    if tracker is not None:
        # With tracking, lower-scoring detections are needed too: they may continue a track.
        threshold = min(cfg.score_threshold, cfg.track_low_threshold)
        tracker.config = TrackerConfig(
            high_threshold=cfg.score_threshold, low_threshold=cfg.track_low_threshold,
            track_buffer=cfg.track_buffer, box_smoothing=cfg.track_box_smoothing)
    backend.configure(InferenceSettings(
        score_threshold=threshold, nms_threshold=cfg.nms_threshold,
        max_detections=cfg.max_persons,
        resize_shortest_edge=cfg.resize_shortest_edge, resize_max_size=cfg.resize_max_size,
    ))


def node_process_options(cfg: NodeConfig) -> dict:
    """Keyword arguments of :meth:`FrameProcessor.process` that the node's parameters set."""
    return {"correspondence_stride": cfg.correspondence_stride,
            "chart_max_size": cfg.chart_max_size, "chart_mode": cfg.chart_mode,
            "want_iuv": cfg.publish_iuv}
