"""The PyTorch glue between the exported graphs (see the package docstring for the split).

``SplitPipeline`` (the stages are ``graph_pipeline.GraphPipeline``'s) runs one image through
a runtime whose tensors torch works on in place (TensorRT on a CUDA device: the glue stays on
the GPU); the runtime is a callable ``run_graph(graph_name, input_tensor) -> {output_name:
tensor}``. Proposal selection, detection filtering and RoIAlign are the model's own code
(``RPN.select_proposals``, ``BoxStage.select_detections``, ``MultiLevelRoIAlign``), built
here from the configuration without weights, so results match the eager model up to the
runtime's float rounding. The CPU runtimes (onnxruntime, OpenVINO) use its numpy port,
``numpy_pipeline.NumpySplitPipeline``, and keep torch out of the process.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from densepose_ros.inference.preprocess import PreparedImage, preprocess_image
from densepose_ros.modeling.box_head import BoxStage
from densepose_ros.modeling.box_ops import boxes_to_rois
from densepose_ros.modeling.config import ROI_STRIDES, RPN_STRIDES, ModelConfig
from densepose_ros.modeling.keypoint_head import heatmaps_to_keypoints, no_heatmaps
from densepose_ros.modeling.model import (
    make_densepose_pooler,
    make_keypoint_pooler,
    with_keypoint_heatmaps,
)
from densepose_ros.modeling.rpn import RPN
from densepose_ros.runtime.graph_pipeline import GraphPipeline, GraphRunner


class SplitPipeline(GraphPipeline):
    """Image -> ``DensePoseResult`` with the graphs run by ``run_graph`` and the glue on
    ``device`` (where ``run_graph`` returns its tensors)."""

    def __init__(self, cfg: ModelConfig, run_graph: GraphRunner,
                 device: torch.device | str = "cpu"):
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
        super().__init__(cfg, run_graph)

    def _mode(self) -> contextlib.AbstractContextManager:
        return torch.inference_mode()

    def _prepare(self, image_bgr: np.ndarray) -> PreparedImage:
        return preprocess_image(image_bgr, self.cfg.input, color_order="BGR",
                                resize=self.resolved.resize, device=self.device)

    def _proposals(self, level_maps, input_size):
        (proposals, _), = self.rpn.select_proposals(level_maps, [input_size])
        return proposals

    def _select_detections(self, logits, deltas, proposals, input_size, score_threshold,
                           nms_threshold, max_detections):
        (boxes, scores, _), = self.box_stage.select_detections(
            logits, deltas, [proposals], [input_size], score_threshold, nms_threshold,
            max_detections)
        return boxes, scores

    def _no_detections(self):
        return (torch.zeros((0, 4), device=self.device),
                torch.zeros((0,), device=self.device))

    def _pool_boxes(self, fpn, boxes):
        return self.box_stage.pool(fpn, [boxes]).contiguous()

    def _pool_densepose(self, maps, boxes):
        return self.densepose_pooler(maps, boxes_to_rois([boxes])).contiguous()

    def _pool_keypoints(self, fpn, boxes):
        return self.keypoint_pooler(fpn, boxes_to_rois([boxes])).contiguous()

    def _no_heatmaps(self):
        return no_heatmaps(self.model_cfg.keypoints, self.device)

    def _with_heatmaps(self, pooled, heatmaps):
        return with_keypoint_heatmaps(pooled, heatmaps).contiguous()

    def _keypoints(self, heatmaps, boxes):
        return heatmaps_to_keypoints(heatmaps, boxes)
