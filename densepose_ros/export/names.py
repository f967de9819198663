"""Names and shapes of the exported graphs' inputs and outputs (no torch: the runtimes and the
numpy glue read them; ``graphs`` holds the modules that are exported under these names)."""

from __future__ import annotations

from densepose_ros.modeling.config import ROI_LEVELS, RPN_LEVELS, ModelConfig

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


def chart_output_names(cfg: ModelConfig) -> list[str]:
    """Output names of the DensePose-head graph: the charts, then the model's confidences."""
    return list(CHART_OUTPUTS) + list(cfg.densepose.confidence_outputs)


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
