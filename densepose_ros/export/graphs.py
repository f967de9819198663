"""The three exported sub-networks as modules with flat tensor inputs and outputs.

Each wraps the (norm-folded) ``DensePoseRCNN`` and calls the same stage code the eager model
runs, so the graphs compute exactly what the PyTorch model computes.
"""

from __future__ import annotations

import torch
from torch import nn

from densepose_ros.export.names import ROI_LEVELS, RPN_LEVELS
from densepose_ros.modeling.model import DensePoseRCNN


class BackboneGraph(nn.Module):
    """images -> p2..p5, [decoder map,] raw RPN maps of p2..p6 (see ``backbone_output_names``)."""

    def __init__(self, model: DensePoseRCNN):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        features = model.backbone_features(images)
        outputs = [features[name] for name in ROI_LEVELS]
        if model.roi_heads.decoder is not None:
            outputs += model.densepose_features(features)
        for name in RPN_LEVELS:
            outputs += model.proposal_generator.rpn_head.raw(features[name])
        return tuple(outputs)


class BoxHeadGraph(nn.Module):
    """Pooled proposal features [R, C, 7, 7] -> class logits [R, K+1], box deltas [R, 4K]."""

    def __init__(self, model: DensePoseRCNN):
        super().__init__()
        self.model = model

    def forward(self, box_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.roi_heads.head_outputs(box_features)


class DensePoseHeadGraph(nn.Module):
    """The DensePose head's input [N, C', P, P] (pooled person features; with cross-talk
    followed by the resized keypoint heatmaps, see ``densepose_head_input``) ->
    coarse_segm, fine_segm, u, v[, confidences] (``chart_output_names``)."""

    def __init__(self, model: DensePoseRCNN):
        super().__init__()
        self.model = model

    def forward(self, densepose_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.densepose_from_input(densepose_features).tensors().values())


class KeypointHeadGraph(nn.Module):
    """Pooled person features [N, C, 14, 14] -> keypoint heatmap logits [N, K, 56, 56]."""

    def __init__(self, model: DensePoseRCNN):
        super().__init__()
        self.model = model

    def forward(self, keypoint_features: torch.Tensor) -> torch.Tensor:
        return self.model.roi_heads.keypoint_head(keypoint_features)
