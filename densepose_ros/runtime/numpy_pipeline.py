"""The graph pipeline of the CPU runtimes (onnxruntime, OpenVINO) with numpy glue: no torch.

``NumpySplitPipeline`` is ``split_pipeline.SplitPipeline`` with the box bookkeeping of
``numpy_glue`` (see there for why) and numpy pre-processing: ``run_graph(graph_name, array)
-> {output_name: array}`` runs one exported graph; the result holds numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable

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
from densepose_ros.inference.preprocess import preprocess_image_numpy
from densepose_ros.inference.resample import resize_bilinear
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult, StageClock
from densepose_ros.modeling.config import (
    ROI_LEVELS,
    RPN_LEVELS,
    RPN_STRIDES,
    ModelConfig,
    box_pooler_geometry,
    densepose_pooler_geometry,
    keypoint_pooler_geometry,
)
from densepose_ros.runtime import numpy_glue as glue
from densepose_ros.runtime.base import InferenceSettings

ArrayGraphRunner = Callable[[str, np.ndarray], dict[str, np.ndarray]]


class NumpySplitPipeline:
    """Image -> ``DensePoseResult`` (numpy arrays) with the graphs run by ``run_graph``."""

    def __init__(self, cfg: ModelConfig, run_graph: ArrayGraphRunner):
        self.model_cfg = cfg
        self.run_graph = run_graph
        glue.single_threaded_blas()
        self.box_pooler = glue.MultiLevelRoIAlign(box_pooler_geometry(cfg.box_head))
        self.densepose_pooler = glue.MultiLevelRoIAlign(densepose_pooler_geometry(cfg.densepose))
        self.keypoint_pooler = glue.MultiLevelRoIAlign(keypoint_pooler_geometry(cfg.keypoints))
        self.chart_outputs = chart_output_names(cfg)
        self._anchors: dict = {}
        self.configure(InferenceSettings())

    def configure(self, settings: InferenceSettings) -> None:
        """Thresholds and resize (``InferenceSettings.resolve``, as the torch backend)."""
        self.settings = settings
        self.resolved = settings.resolve(self.model_cfg)
        self.cfg = self.resolved.model_cfg

    def __call__(self, image_bgr: np.ndarray) -> DensePoseResult:
        clock = StageClock()
        cfg = self.model_cfg
        prepared = preprocess_image_numpy(image_bgr, self.cfg.input, color_order="BGR",
                                          resize=self.resolved.resize)
        clock.lap("preprocess")
        outputs = self.run_graph(BACKBONE, prepared.tensor)
        clock.lap("backbone")
        level_maps = [(outputs[f"rpn_logits_{n}"], outputs[f"rpn_deltas_{n}"])
                      for n in RPN_LEVELS]
        proposals, _ = glue.select_proposals(level_maps, prepared.input_size, cfg.rpn,
                                             RPN_STRIDES, cfg.box_scale_clamp, self._anchors)
        clock.lap("rpn")
        fpn = [outputs[n] for n in ROI_LEVELS]
        boxes, scores = self._detect(fpn, proposals, prepared.input_size)
        clock.lap("box_head")
        heatmaps = self._keypoint_heatmaps(fpn, boxes)
        dp = cfg.densepose
        if boxes.shape[0] == 0:
            charts = DensePoseChartOutput.empty(dp.num_coarse_segm_channels, dp.heatmap_size,
                                                dp.confidence_outputs, numpy=True)
        else:
            dp_maps = [outputs[DECODER_OUTPUT]] if DECODER_OUTPUT in outputs else fpn
            pooled = self.densepose_pooler(dp_maps, boxes)
            if cfg.keypoints.cross_talk and heatmaps is not None:
                side = pooled.shape[-1]
                pooled = np.concatenate([pooled, resize_bilinear(heatmaps, side, side)],
                                        axis=1)
            charts_out = self.run_graph(DENSEPOSE_HEAD, pooled)
            charts = DensePoseChartOutput(**{n: charts_out[n] for n in self.chart_outputs})
        clock.lap("densepose_head")
        keypoints = None if heatmaps is None else glue.heatmaps_to_keypoints(heatmaps, boxes)
        result = prepared.result_in_source(boxes, scores, charts, keypoints)
        clock.lap("postprocess")
        result.timings = clock.timings
        return result

    def _keypoint_heatmaps(self, fpn: list[np.ndarray], boxes: np.ndarray
                           ) -> np.ndarray | None:
        """The keypoint graph's heatmaps of the boxes, for models with a keypoint head."""
        kp = self.model_cfg.keypoints
        if not kp.enabled:
            return None
        if boxes.shape[0] == 0:
            return glue.no_heatmaps(kp)
        return self.run_graph(KEYPOINT_HEAD, self.keypoint_pooler(fpn, boxes))[KEYPOINT_OUTPUT]

    def _detect(self, fpn: list[np.ndarray], proposals: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if proposals.shape[0] == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        head = self.run_graph(BOX_HEAD, self.box_pooler(fpn, proposals))
        resolved = self.resolved
        return glue.select_detections(
            head["class_logits"], head["box_deltas"], proposals, size, self.model_cfg.box_head,
            self.model_cfg.box_scale_clamp, resolved.score_threshold, resolved.nms_threshold,
            resolved.max_detections)
