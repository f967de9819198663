"""The three exported sub-networks as modules with flat tensor inputs and outputs.

Each wraps the (norm-folded) ``DensePoseRCNN`` and calls the same stage code the eager model
runs, so the graphs compute exactly what the PyTorch model computes.
"""

from __future__ import annotations

import torch
from torch import nn

from densepose_ros.modeling.config import ModelConfig
from densepose_ros.modeling.model import ROI_LEVELS, RPN_LEVELS, DensePoseRCNN

BACKBONE = "backbone"
BOX_HEAD = "box_head"
DENSEPOSE_HEAD = "densepose_head"
KEYPOINT_HEAD = "keypoint_head"
# The graphs of every export; models with a keypoint head add KEYPOINT_HEAD (graph_names).
GRAPH_NAMES = (BACKBONE, BOX_HEAD, DENSEPOSE_HEAD)

IMAGES = "images"
DECODER_OUTPUT = "decoder_features"
BOX_FEATURES = "box_features"
DENSEPOSE_FEATURES = "densepose_features"
KEYPOINT_FEATURES = "keypoint_features"
KEYPOINT_OUTPUT = "keypoint_heatmaps"
BOX_OUTPUTS = ("class_logits", "box_deltas")
CHART_OUTPUTS = ("coarse_segm", "fine_segm", "u", "v")


def graph_names(cfg: ModelConfig) -> tuple[str, ...]:
    """The graphs an export of this configuration holds."""
    return GRAPH_NAMES + ((KEYPOINT_HEAD,) if cfg.keypoints.enabled else ())


def rpn_output_names() -> list[str]:
    return [f"rpn_{kind}_{level}" for level in RPN_LEVELS for kind in ("logits", "deltas")]


def backbone_output_names(cfg: ModelConfig) -> list[str]:
    """Output names of the backbone graph, in order."""
    decoder = [DECODER_OUTPUT] if cfg.densepose.decoder_on else []
    return list(ROI_LEVELS) + decoder + rpn_output_names()


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


def chart_output_names(cfg: ModelConfig) -> list[str]:
    """Output names of the DensePose-head graph: the charts, then the model's confidences."""
    return list(CHART_OUTPUTS) + list(cfg.densepose.confidence_outputs)


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


def densepose_pooled_shape(cfg: ModelConfig) -> tuple[int, int, int]:
    """(channels, side, side) of the DensePose head's input."""
    dp, kp = cfg.densepose, cfg.keypoints
    channels = dp.decoder_out_channels if dp.decoder_on else cfg.backbone.fpn_channels
    if kp.enabled and kp.cross_talk:
        channels += kp.num_keypoints
    return channels, dp.pooler_resolution, dp.pooler_resolution


def keypoint_pooled_shape(cfg: ModelConfig) -> tuple[int, int, int]:
    """(channels, side, side) of the keypoint head's input."""
    side = cfg.keypoints.pooler_resolution
    return cfg.backbone.fpn_channels, side, side


def box_pooled_shape(cfg: ModelConfig) -> tuple[int, int, int]:
    """(channels, side, side) of the box head's input."""
    side = cfg.box_head.pooler_resolution
    return cfg.backbone.fpn_channels, side, side
