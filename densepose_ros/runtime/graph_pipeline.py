"""One image through the exported graphs: the order of the stages, written once.

``GraphPipeline`` runs preprocess -> backbone graph -> proposals -> box-head graph ->
detections -> [keypoint graph] -> DensePose-head graph -> result in source pixels, with
``run_graph(graph_name, input) -> {output_name: output}`` executing one graph. The glue
between the graphs is a subclass's: ``numpy_pipeline.NumpySplitPipeline`` (numpy arrays, no
torch: onnxruntime, OpenVINO) and ``split_pipeline.SplitPipeline`` (the eager model's torch
code on the runtime's device: TensorRT on CUDA). This module imports neither torch nor the
glue.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from densepose_ros.export.names import (
    BACKBONE,
    BOX_HEAD,
    DECODER_OUTPUT,
    DENSEPOSE_HEAD,
    KEYPOINT_HEAD,
    KEYPOINT_OUTPUT,
    chart_output_names,
)
from densepose_ros.inference.preprocess import PreparedImage
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult, StageClock
from densepose_ros.modeling.config import ROI_LEVELS, RPN_LEVELS, ModelConfig
from densepose_ros.runtime.base import InferenceSettings

# (graph name, input) -> {output name: output}; arrays or tensors, as the subclass's glue
GraphRunner = Callable[[str, Any], dict[str, Any]]


class GraphPipeline(ABC):
    """Image -> ``DensePoseResult`` with the graphs run by ``run_graph``; the subclass
    supplies the glue (the abstract methods, each one step between two graphs)."""

    #: where the glue's arrays live ("cpu" or a CUDA device; the stage clock waits for it)
    device: Any = "cpu"

    def __init__(self, cfg: ModelConfig, run_graph: GraphRunner):
        self.model_cfg = cfg
        self.run_graph = run_graph
        self.chart_outputs = chart_output_names(cfg)
        self.configure(InferenceSettings())

    def configure(self, settings: InferenceSettings) -> None:
        """Thresholds and resize (``InferenceSettings.resolve``, as the torch backend)."""
        self.settings = settings
        self.resolved = settings.resolve(self.model_cfg)
        self.cfg = self.resolved.model_cfg  # with the resize settings applied

    def __call__(self, image_bgr: np.ndarray) -> DensePoseResult:
        clock = StageClock(self.device)
        with self._mode():
            prepared = self._prepare(image_bgr)
            clock.lap("preprocess")
            outputs = self.run_graph(BACKBONE, prepared.tensor)
            clock.lap("backbone")
            level_maps = [(outputs[f"rpn_logits_{n}"], outputs[f"rpn_deltas_{n}"])
                          for n in RPN_LEVELS]
            proposals = self._proposals(level_maps, prepared.input_size)
            clock.lap("rpn")
            fpn = [outputs[n] for n in ROI_LEVELS]
            if len(proposals) == 0:
                boxes, scores = self._no_detections()
            else:
                head = self.run_graph(BOX_HEAD, self._pool_boxes(fpn, proposals))
                boxes, scores = self._detections(head["class_logits"], head["box_deltas"],
                                                 proposals, prepared.input_size)
            clock.lap("box_head")
            heatmaps = self._keypoint_heatmaps(fpn, boxes)
            dp = self.model_cfg.densepose
            if len(boxes) == 0:
                charts = DensePoseChartOutput.empty(dp.num_coarse_segm_channels, dp.heatmap_size,
                                                    dp.confidence_outputs,
                                                    numpy=isinstance(boxes, np.ndarray))
            else:
                dp_maps = [outputs[DECODER_OUTPUT]] if DECODER_OUTPUT in outputs else fpn
                pooled = self._pool_densepose(dp_maps, boxes)
                if self.model_cfg.keypoints.cross_talk and heatmaps is not None:
                    pooled = self._with_heatmaps(pooled, heatmaps)
                charts_out = self.run_graph(DENSEPOSE_HEAD, pooled)
                charts = DensePoseChartOutput(**{n: charts_out[n] for n in self.chart_outputs})
            clock.lap("densepose_head")
            keypoints = None if heatmaps is None else self._keypoints(heatmaps, boxes)
            result = prepared.result_in_source(boxes, scores, charts, keypoints)
            clock.lap("postprocess")
        result.timings = clock.timings
        return result

    def _keypoint_heatmaps(self, fpn: list, boxes):
        """The keypoint graph's heatmaps of the boxes, for models with a keypoint head."""
        kp = self.model_cfg.keypoints
        if not kp.enabled:
            return None
        if len(boxes) == 0:
            return self._no_heatmaps()
        return self.run_graph(KEYPOINT_HEAD, self._pool_keypoints(fpn, boxes))[KEYPOINT_OUTPUT]

    def _detections(self, logits, deltas, proposals, input_size: tuple[int, int]):
        """(boxes [N, 4], scores [N]) from the box-head graph's outputs."""
        resolved = self.resolved
        return self._select_detections(logits, deltas, proposals, input_size,
                                       resolved.score_threshold, resolved.nms_threshold,
                                       resolved.max_detections)

    def _mode(self) -> contextlib.AbstractContextManager:
        """Context the glue runs in (torch: inference mode)."""
        return contextlib.nullcontext()

    # ---- the glue ----------------------------------------------------------------------
    @abstractmethod
    def _prepare(self, image_bgr: np.ndarray) -> PreparedImage:
        """The network input of the image (``self.cfg.input``, ``self.resolved.resize``)."""

    @abstractmethod
    def _proposals(self, level_maps: list, input_size: tuple[int, int]):
        """Proposals [R, 4] from the RPN maps of each level (logits, deltas)."""

    @abstractmethod
    def _select_detections(self, logits, deltas, proposals, input_size: tuple[int, int],
                           score_threshold: float, nms_threshold: float, max_detections: int):
        """(boxes [N, 4], scores [N]): decode, clip, threshold, NMS, top detections."""

    @abstractmethod
    def _no_detections(self):
        """(boxes [0, 4], scores [0]) of a frame without proposals."""

    @abstractmethod
    def _pool_boxes(self, fpn: list, boxes):
        """The box head's input [R, C, 7, 7] (RoIAlign on each box's FPN level)."""

    @abstractmethod
    def _pool_densepose(self, maps: list, boxes):
        """The DensePose head's input [N, C, P, P] (decoder map or FPN levels)."""

    @abstractmethod
    def _pool_keypoints(self, fpn: list, boxes):
        """The keypoint head's input [N, C, P, P]."""

    @abstractmethod
    def _no_heatmaps(self):
        """Keypoint heatmaps of zero boxes [0, K, S, S]."""

    @abstractmethod
    def _with_heatmaps(self, pooled, heatmaps):
        """Cross-talk: the pooled features followed by the heatmaps resized to P x P."""

    @abstractmethod
    def _keypoints(self, heatmaps, boxes):
        """Keypoints [N, K, 3] (x, y, score) in input pixels from the heatmaps."""
