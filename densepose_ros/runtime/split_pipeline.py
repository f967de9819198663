"""The PyTorch glue between the exported graphs (see the package docstring for the split).

``SplitPipeline`` runs one image through any runtime that can execute the three graphs
(onnxruntime, TensorRT): the runtime is a callable ``run_graph(graph_name, input_tensor) ->
{output_name: tensor}``. Proposal selection, detection filtering and RoIAlign are the model's
own code (``RPN.select_proposals``, ``BoxStage.select_detections``, ``MultiLevelRoIAlign``),
built here from the configuration without weights, so results match the eager model up to the
runtime's float rounding.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from densepose_ros.export.graphs import (
    BACKBONE,
    BOX_HEAD,
    CHART_OUTPUTS,
    DECODER_OUTPUT,
    DENSEPOSE_HEAD,
)
from densepose_ros.inference.preprocess import preprocess_image
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult, StageTimings
from densepose_ros.modeling.backbone import FPN_STRIDES
from densepose_ros.modeling.box_head import BoxStage
from densepose_ros.modeling.box_ops import MultiLevelRoIAlign, boxes_to_rois
from densepose_ros.modeling.config import ModelConfig
from densepose_ros.modeling.model import ROI_LEVELS, RPN_LEVELS
from densepose_ros.modeling.rpn import RPN
from densepose_ros.runtime.base import Backend, InferenceSettings

GraphRunner = Callable[[str, torch.Tensor], dict[str, torch.Tensor]]


def _or(value, default):
    return default if value is None else value


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
        roi_strides = tuple(FPN_STRIDES[n] for n in ROI_LEVELS)
        # Identity heads: only the selection code and the poolers of these modules are used.
        self.rpn = RPN(cfg.rpn, channels, tuple(FPN_STRIDES[n] for n in RPN_LEVELS),
                       cfg.box_scale_clamp, head=nn.Identity())
        self.box_stage = BoxStage(cfg.box_head, channels, roi_strides, cfg.box_scale_clamp,
                                  box_head=nn.Identity(), box_predictor=nn.Identity())
        dp = cfg.densepose
        dp_strides = (dp.decoder_common_stride,) if dp.decoder_on else roi_strides
        self.densepose_pooler = MultiLevelRoIAlign(dp.pooler_resolution, dp_strides,
                                                   dp.pooler_sampling_ratio, dp.pooler_aligned)
        self.settings = InferenceSettings()
        self.configure(self.settings)

    def configure(self, settings: InferenceSettings) -> None:
        """Thresholds and resize, as ``TorchBackend.configure`` applies them."""
        self.settings = settings
        cfg = self.model_cfg
        self.resize = settings.resize_shortest_edge != 0
        self.cfg = dataclasses.replace(cfg, input=dataclasses.replace(
            cfg.input,
            min_size=_or(settings.resize_shortest_edge or None, cfg.input.min_size),
            max_size=_or(settings.resize_max_size, cfg.input.max_size),
        ))

    def __call__(self, image_bgr: np.ndarray) -> DensePoseResult:
        settings, box_cfg = self.settings, self.model_cfg.box_head
        timings = StageTimings()
        with torch.inference_mode():
            clock = time.perf_counter()
            prepared = preprocess_image(image_bgr, self.cfg.input, color_order="BGR",
                                        resize=self.resize, device=self.device)
            clock = self._lap(timings, "preprocess", clock)
            outputs = self.run_graph(BACKBONE, prepared.tensor)
            clock = self._lap(timings, "backbone", clock)
            level_maps = [(outputs[f"rpn_logits_{n}"], outputs[f"rpn_deltas_{n}"])
                          for n in RPN_LEVELS]
            sizes = [prepared.input_size]
            (proposals, _), = self.rpn.select_proposals(level_maps, sizes)
            clock = self._lap(timings, "rpn", clock)
            fpn = [outputs[n] for n in ROI_LEVELS]
            boxes, scores = self._detect(fpn, proposals, sizes, settings, box_cfg)
            clock = self._lap(timings, "box_head", clock)
            if boxes.shape[0] == 0:
                dp = self.model_cfg.densepose
                charts = DensePoseChartOutput.empty(dp.num_coarse_segm_channels, dp.heatmap_size)
            else:
                dp_maps = [outputs[DECODER_OUTPUT]] if DECODER_OUTPUT in outputs else fpn
                pooled = self.densepose_pooler(dp_maps, boxes_to_rois([boxes]))
                charts_out = self.run_graph(DENSEPOSE_HEAD, pooled.contiguous())
                charts = DensePoseChartOutput(*(charts_out[n] for n in CHART_OUTPUTS))
            clock = self._lap(timings, "densepose_head", clock)
            result = _to_source(prepared.scale_xy, prepared.source_size, boxes, scores, charts)
            self._lap(timings, "postprocess", clock)
        result.timings = timings
        return result

    def _detect(self, fpn: list[torch.Tensor], proposals: torch.Tensor,
                sizes: list[tuple[int, int]], settings: InferenceSettings, box_cfg
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if proposals.shape[0] == 0:
            empty = proposals.new_zeros((0, 4))
            return empty, proposals.new_zeros((0,))
        pooled = self.box_stage.pooler(fpn, boxes_to_rois([proposals]))
        head = self.run_graph(BOX_HEAD, pooled.contiguous())
        (boxes, scores, _), = self.box_stage.select_detections(
            head["class_logits"], head["box_deltas"], [proposals], sizes,
            float(_or(settings.score_threshold, box_cfg.score_threshold)),
            float(_or(settings.nms_threshold, box_cfg.nms_threshold)),
            int(_or(settings.max_detections, box_cfg.max_detections)),
        )
        return boxes, scores

    def _lap(self, timings: StageTimings, stage: str, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # GPU work is asynchronous: time where it ends
        now = time.perf_counter()
        setattr(timings, stage, now - start)
        return now


def _to_source(scale_xy: tuple[float, float], source_size: tuple[int, int],
               boxes: torch.Tensor, scores: torch.Tensor,
               charts: DensePoseChartOutput) -> DensePoseResult:
    """Boxes from network-input to source pixels (clamped), everything on the CPU."""
    sx, sy = scale_xy
    height, width = source_size
    boxes = boxes.to("cpu", torch.float32) * torch.tensor([sx, sy, sx, sy])
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return DensePoseResult(boxes, scores.to("cpu", torch.float32), charts.to("cpu"),
                           source_size)


class GraphBackend(Backend):
    """A backend whose work is a ``SplitPipeline`` (onnxruntime, TensorRT): subclasses set
    ``self.pipeline`` and ``self._description``."""

    pipeline: SplitPipeline
    _description: str = ""

    def infer(self, image_bgr: np.ndarray) -> DensePoseResult:
        return self.pipeline(image_bgr)

    def configure(self, settings: InferenceSettings) -> None:
        self.pipeline.configure(settings)

    def describe(self) -> str:
        return self._description
