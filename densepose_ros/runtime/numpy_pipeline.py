"""The graph pipeline of the CPU runtimes (onnxruntime, OpenVINO) with numpy glue: no torch.

``NumpySplitPipeline`` is ``graph_pipeline.GraphPipeline`` with the box bookkeeping of
``numpy_glue`` (see there for why) and numpy pre-processing: ``run_graph(graph_name, array)
-> {output_name: array}`` runs one exported graph; the result holds numpy arrays.
"""

from __future__ import annotations

import numpy as np

from densepose_ros.inference.preprocess import PreparedImage, preprocess_image_numpy
from densepose_ros.inference.resample import resize_bilinear
from densepose_ros.modeling.config import (
    RPN_STRIDES,
    ModelConfig,
    box_pooler_geometry,
    densepose_pooler_geometry,
    keypoint_pooler_geometry,
)
from densepose_ros.runtime import numpy_glue as glue
from densepose_ros.runtime.graph_pipeline import GraphPipeline, GraphRunner


class NumpySplitPipeline(GraphPipeline):
    """Image -> ``DensePoseResult`` (numpy arrays) with the graphs run by ``run_graph``."""

    def __init__(self, cfg: ModelConfig, run_graph: GraphRunner):
        glue.single_threaded_blas()
        self.box_pooler = glue.MultiLevelRoIAlign(box_pooler_geometry(cfg.box_head))
        self.densepose_pooler = glue.MultiLevelRoIAlign(densepose_pooler_geometry(cfg.densepose))
        self.keypoint_pooler = glue.MultiLevelRoIAlign(keypoint_pooler_geometry(cfg.keypoints))
        self._anchors: dict = {}
        super().__init__(cfg, run_graph)

    def _prepare(self, image_bgr: np.ndarray) -> PreparedImage:
        return preprocess_image_numpy(image_bgr, self.cfg.input, color_order="BGR",
                                      resize=self.resolved.resize)

    def _proposals(self, level_maps, input_size):
        cfg = self.model_cfg
        proposals, _ = glue.select_proposals(level_maps, input_size, cfg.rpn, RPN_STRIDES,
                                             cfg.box_scale_clamp, self._anchors)
        return proposals

    def _select_detections(self, logits, deltas, proposals, input_size, score_threshold,
                           nms_threshold, max_detections):
        cfg = self.model_cfg
        return glue.select_detections(logits, deltas, proposals, input_size, cfg.box_head,
                                      cfg.box_scale_clamp, score_threshold, nms_threshold,
                                      max_detections)

    def _no_detections(self):
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)

    def _pool_boxes(self, fpn, boxes):
        return self.box_pooler(fpn, boxes)

    def _pool_densepose(self, maps, boxes):
        return self.densepose_pooler(maps, boxes)

    def _pool_keypoints(self, fpn, boxes):
        return self.keypoint_pooler(fpn, boxes)

    def _no_heatmaps(self):
        return glue.no_heatmaps(self.model_cfg.keypoints)

    def _with_heatmaps(self, pooled, heatmaps):
        side = pooled.shape[-1]
        return np.concatenate([pooled, resize_bilinear(heatmaps, side, side)], axis=1)

    def _keypoints(self, heatmaps, boxes):
        return glue.heatmaps_to_keypoints(heatmaps, boxes)
