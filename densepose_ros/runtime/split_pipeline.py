"""The PyTorch glue between the exported graphs (see the package docstring for the split).

``SplitPipeline`` runs one image through a runtime whose tensors torch works on in place
(TensorRT on a CUDA device: the glue stays on the GPU); the runtime is a callable
``run_graph(graph_name, input_tensor) -> {output_name: tensor}``. Proposal selection,
detection filtering and RoIAlign are the model's own code (``RPN.select_proposals``,
``BoxStage.select_detections``, ``MultiLevelRoIAlign``), built here from the configuration
without weights, so results match the eager model up to the runtime's float rounding. The
CPU runtimes (onnxruntime, OpenVINO) use its numpy port, ``numpy_pipeline.NumpySplitPipeline``,
and keep torch out of the process.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from densepose_ros.export.names import (
    BACKBONE,
    BOX_HEAD,
    DECODER_OUTPUT,
    DENSEPOSE_HEAD,
    KEYPOINT_HEAD,
    KEYPOINT_OUTPUT,
    chart_output_names,
)
from densepose_ros.inference.preprocess import preprocess_image
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult, StageClock
from densepose_ros.modeling.box_head import BoxStage
from densepose_ros.modeling.box_ops import boxes_to_rois
from densepose_ros.modeling.config import ModelConfig
from densepose_ros.modeling.keypoint_head import heatmaps_to_keypoints, no_heatmaps
from densepose_ros.modeling.model import (
    ROI_LEVELS,
    ROI_STRIDES,
    RPN_LEVELS,
    RPN_STRIDES,
    make_densepose_pooler,
    make_keypoint_pooler,
    with_keypoint_heatmaps,
)
from densepose_ros.modeling.rpn import RPN
from densepose_ros.runtime.base import InferenceSettings

GraphRunner = Callable[[str, torch.Tensor], dict[str, torch.Tensor]]


class SplitPipeline:
    """Image -> ``DensePoseResult`` with the graphs run by ``run_graph`` and the glue on
    ``device`` (where ``run_graph`` returns its tensors)."""

    def __init__(self, cfg: ModelConfig, run_graph: GraphRunner,
                 device: torch.device | str = "cpu"):
        self.model_cfg = cfg
        self.cfg = cfg  # with the resize settings applied (``configure``)
        self.run_graph = run_graph
        self.device = torch.device(device)
        channels = cfg.backbone.fpn_channels
        # Identity heads: only the selection code and the poolers of these modules are used.
        # eval(): inference-time selection (the RPN keeps more proposals while training)
        self.rpn = RPN(cfg.rpn, channels, RPN_STRIDES, cfg.box_scale_clamp,
                       head=nn.Identity()).eval()
        self.box_stage = BoxStage(cfg.box_head, channels, ROI_STRIDES, cfg.box_scale_clamp,
                                  box_head=nn.Identity(), box_predictor=nn.Identity()).eval()
        self.densepose_pooler = make_densepose_pooler(cfg.densepose)
        self.keypoint_pooler = make_keypoint_pooler(cfg.keypoints)
        self.chart_outputs = chart_output_names(cfg)
        self.settings = InferenceSettings()
        self.configure(self.settings)

    def configure(self, settings: InferenceSettings) -> None:
        """Thresholds and resize (``InferenceSettings.resolve``, as the torch backend)."""
        self.settings = settings
        self.resolved = settings.resolve(self.model_cfg)
        self.cfg = self.resolved.model_cfg

    def __call__(self, image_bgr: np.ndarray) -> DensePoseResult:
        clock = StageClock(self.device)
        with torch.inference_mode():
            prepared = preprocess_image(image_bgr, self.cfg.input, color_order="BGR",
                                        resize=self.resolved.resize, device=self.device)
            clock.lap("preprocess")
            outputs = self.run_graph(BACKBONE, prepared.tensor)
            clock.lap("backbone")
            level_maps = [(outputs[f"rpn_logits_{n}"], outputs[f"rpn_deltas_{n}"])
                          for n in RPN_LEVELS]
            sizes = [prepared.input_size]
            (proposals, _), = self.rpn.select_proposals(level_maps, sizes)
            clock.lap("rpn")
            fpn = [outputs[n] for n in ROI_LEVELS]
            boxes, scores = self._detect(fpn, proposals, sizes)
            clock.lap("box_head")
            heatmaps = self._keypoint_heatmaps(fpn, boxes)
            if boxes.shape[0] == 0:
                dp = self.model_cfg.densepose
                charts = DensePoseChartOutput.empty(dp.num_coarse_segm_channels, dp.heatmap_size,
                                                    dp.confidence_outputs)
            else:
                dp_maps = [outputs[DECODER_OUTPUT]] if DECODER_OUTPUT in outputs else fpn
                pooled = self.densepose_pooler(dp_maps, boxes_to_rois([boxes]))
                if self.model_cfg.keypoints.cross_talk:
                    pooled = with_keypoint_heatmaps(pooled, heatmaps)
                charts_out = self.run_graph(DENSEPOSE_HEAD, pooled.contiguous())
                charts = DensePoseChartOutput(**{n: charts_out[n] for n in self.chart_outputs})
            clock.lap("densepose_head")
            keypoints = None if heatmaps is None else heatmaps_to_keypoints(heatmaps, boxes)
            result = prepared.result_in_source(boxes, scores, charts, keypoints)
            clock.lap("postprocess")
        result.timings = clock.timings
        return result

    def _keypoint_heatmaps(self, fpn: list[torch.Tensor], boxes: torch.Tensor
                           ) -> torch.Tensor | None:
        """The keypoint graph's heatmaps of the boxes, for models with a keypoint head."""
        kp = self.model_cfg.keypoints
        if not kp.enabled:
            return None
        if boxes.shape[0] == 0:
            return no_heatmaps(kp, boxes.device)
        pooled = self.keypoint_pooler(fpn, boxes_to_rois([boxes]))
        return self.run_graph(KEYPOINT_HEAD, pooled.contiguous())[KEYPOINT_OUTPUT]

    def _detect(self, fpn: list[torch.Tensor], proposals: torch.Tensor,
                sizes: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        if proposals.shape[0] == 0:
            empty = proposals.new_zeros((0, 4))
            return empty, proposals.new_zeros((0,))
        pooled = self.box_stage.pool(fpn, [proposals])
        head = self.run_graph(BOX_HEAD, pooled.contiguous())
        resolved = self.resolved
        (boxes, scores, _), = self.box_stage.select_detections(
            head["class_logits"], head["box_deltas"], [proposals], sizes,
            resolved.score_threshold, resolved.nms_threshold, resolved.max_detections)
        return boxes, scores
