"""Fast R-CNN second stage: RoIAlign on p2..p5, two FC layers, class scores and box deltas."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from densepose_ros.modeling.box_ops import (
    MultiLevelRoIAlign,
    boxes_to_rois,
    clip_boxes,
    decode_boxes,
)
from densepose_ros.modeling.config import BoxHeadConfig


class FCBoxHead(nn.Module):
    """Flatten the pooled RoI features, then `num_fc` fully connected layers with ReLU."""

    def __init__(self, in_features: int, fc_dim: int, num_fc: int):
        super().__init__()
        self.num_fc = num_fc
        for k in range(num_fc):
            self.add_module(f"fc{k + 1}", nn.Linear(in_features if k == 0 else fc_dim, fc_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for k in range(self.num_fc):
            x = F.relu_(getattr(self, f"fc{k + 1}")(x))
        return x


class BoxPredictor(nn.Module):
    """Class logits (foreground classes, then background last) and class-agnostic deltas."""

    def __init__(self, fc_dim: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(fc_dim, 4 * num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 for scores and decoding even when the layers ran in reduced precision
        return self.cls_score(x).float(), self.bbox_pred(x).float()


class BoxStage(nn.Module):
    """Scores and refines proposals; keeps the best non-overlapping boxes per image.

    The test-time filter comes from `cfg` unless a call overrides it (the predictor does, so
    its thresholds can change between frames).
    """

    def __init__(self, cfg: BoxHeadConfig, channels: int, strides: tuple[int, ...],
                 box_scale_clamp: float, box_head: nn.Module | None = None,
                 box_predictor: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.box_scale_clamp = box_scale_clamp
        self.pooler = MultiLevelRoIAlign(cfg.pooler_resolution, strides,
                                         cfg.pooler_sampling_ratio, cfg.pooler_aligned)
        in_features = channels * cfg.pooler_resolution**2
        self.box_head = box_head or FCBoxHead(in_features, cfg.fc_dim, cfg.num_fc)
        self.box_predictor = box_predictor or BoxPredictor(cfg.fc_dim, cfg.num_classes)

    def forward(
        self,
        features: list[torch.Tensor],
        proposals: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image: boxes [D, 4] (xyxy, input pixels), scores [D], class ids [D]."""
        logits, deltas = self.head_outputs(self.pool(features, proposals))
        return self.select_detections(logits, deltas, proposals, image_sizes, score_threshold,
                                      nms_threshold, max_detections)

    def pool(self, features: list[torch.Tensor], boxes: list[torch.Tensor]) -> torch.Tensor:
        """RoIAlign of every box of every image [sum Ri, C, P, P] on its FPN level."""
        return self.pooler(features, boxes_to_rois(boxes))

    def head_outputs(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box head + predictor on pooled RoIs: class logits [R, K+1], deltas [R, 4K]
        (training, inference and the exported box-head graph all run this)."""
        return self.box_predictor(self.box_head(pooled))

    def select_detections(
        self,
        logits: torch.Tensor,
        deltas: torch.Tensor,
        proposals: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Test-time filter on the predictor's outputs for all proposals (class logits
        [R, K+1], deltas [R, 4K]): decode, clip, score threshold, NMS, top detections. Also
        used on the outputs of an exported box-head graph (``densepose_ros.export``)."""
        cfg = self.cfg
        score_threshold = cfg.score_threshold if score_threshold is None else score_threshold
        nms_threshold = cfg.nms_threshold if nms_threshold is None else nms_threshold
        max_detections = cfg.max_detections if max_detections is None else max_detections
        probabilities = F.softmax(logits, dim=-1)
        boxes_all = decode_boxes(deltas, torch.cat(proposals), cfg.box_reg_weights,
                                 self.box_scale_clamp)
        results = []
        start = 0
        for props, (height, width) in zip(proposals, image_sizes, strict=True):
            end = start + props.shape[0]
            boxes, scores = boxes_all[start:end], probabilities[start:end]
            start = end
            valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
            boxes, scores = boxes[valid], scores[valid][:, :-1]  # background is the last class
            num_reg = boxes.shape[1] // 4
            boxes = clip_boxes(boxes.reshape(-1, 4), height, width).view(-1, num_reg, 4)
            passing = scores > score_threshold
            rows_cols = passing.nonzero()
            if num_reg == 1:
                boxes = boxes[rows_cols[:, 0], 0]
            else:
                boxes = boxes[passing]
            scores = scores[passing]
            classes = rows_cols[:, 1]
            keep = batched_nms(boxes, scores, classes, nms_threshold)[:max_detections]
            results.append((boxes[keep], scores[keep], classes[keep]))
        return results
