"""DensePose R-CNN assembled: FPN backbone, RPN, box head and DensePose branch.

The stages are separate methods so that callers (the predictor, the benchmark, an ONNX
export) can run and time them one by one:

    features = model.backbone_features(images)            # dict p2..p6
    proposals = model.propose(features, image_sizes)       # per image (boxes, logits)
    detections = model.detect(features, proposals, image_sizes)
    charts = model.densepose_on_boxes(features, boxes)     # DensePoseChartOutput

All boxes are xyxy in the pixels of the (resized, unpadded) network input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.inference.structures import DensePoseChartOutput
from densepose_ros.modeling.backbone import ConvNorm, FPNBackbone
from densepose_ros.modeling.box_head import BoxStage
from densepose_ros.modeling.box_ops import MultiLevelRoIAlign, boxes_to_rois
from densepose_ros.modeling.config import (
    FPN_STRIDES,
    ROI_LEVELS,
    ROI_STRIDES,
    RPN_LEVELS,
    RPN_STRIDES,
    DensePoseHeadConfig,
    KeypointHeadConfig,
    ModelConfig,
    densepose_pooler_geometry,
    keypoint_pooler_geometry,
)
from densepose_ros.modeling.densepose_head import (
    ChartPredictor,
    Decoder,
    DensePoseConvXHead,
    build_densepose_head,
)
from densepose_ros.modeling.keypoint_head import KeypointHead
from densepose_ros.modeling.rpn import RPN, RPNHead


def make_densepose_pooler(dp: DensePoseHeadConfig) -> MultiLevelRoIAlign:
    """RoIAlign of the DensePose branch: on the decoder's map, or on p2..p5."""
    return MultiLevelRoIAlign.of(densepose_pooler_geometry(dp))


def make_keypoint_pooler(kp: KeypointHeadConfig) -> MultiLevelRoIAlign:
    """RoIAlign of the keypoint branch (ROIAlignV2, adaptive sampling) on p2..p5."""
    return MultiLevelRoIAlign.of(keypoint_pooler_geometry(kp))


def with_keypoint_heatmaps(pooled: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
    """Cross-talk: pooled DensePose features [N, C, P, P] followed by the keypoint heatmap
    logits [N, K, H, W] resized (bilinearly) to P x P: [N, C + K, P, P]."""
    resized = F.interpolate(heatmaps.to(pooled.dtype), size=pooled.shape[-2:],
                            mode="bilinear", align_corners=False)
    return torch.cat([pooled, resized], dim=1)


class RoIHeads(BoxStage):
    """Box stage plus the DensePose branch (decoder, pooler, head, chart predictor) and the
    optional keypoint branch (pooler, head)."""

    def __init__(self, cfg: ModelConfig, channels: int,
                 densepose_head: nn.Module | None = None,
                 densepose_predictor: nn.Module | None = None):
        super().__init__(cfg.box_head, channels, ROI_STRIDES, cfg.box_scale_clamp)
        dp = cfg.densepose
        if dp.decoder_on:
            self.decoder = Decoder(dp, channels, {n: FPN_STRIDES[n] for n in ROI_LEVELS})
            dp_channels = dp.decoder_out_channels
        else:
            self.decoder = None
            dp_channels = channels
        self.densepose_pooler = make_densepose_pooler(dp)
        kp = cfg.keypoints
        if kp.enabled:
            self.keypoint_pooler = make_keypoint_pooler(kp)
            self.keypoint_head = KeypointHead(kp, channels)
            if kp.cross_talk:  # the heatmaps join the DensePose head's input
                dp_channels += kp.num_keypoints
        else:
            self.keypoint_head = None
        self.densepose_head = densepose_head or build_densepose_head(dp, dp_channels)
        self.densepose_predictor = densepose_predictor or ChartPredictor(
            dp, self.densepose_head.out_channels
        )


class DensePoseRCNN(nn.Module):
    """DensePose R-CNN (Güler et al. 2018) with detectron2's layout and conventions.

    `images` given to the methods are normalised, padded batches [B, 3, H, W] (see
    ``densepose_ros.inference.preprocess``); `image_sizes` the unpadded (height, width) of each.
    """

    def __init__(self, cfg: ModelConfig, backbone: nn.Module | None = None,
                 proposal_generator: nn.Module | None = None,
                 roi_heads: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone or FPNBackbone(cfg.backbone)
        channels = cfg.backbone.fpn_channels
        self.proposal_generator = proposal_generator or RPN(
            cfg.rpn, channels, RPN_STRIDES, cfg.box_scale_clamp
        )
        self.roi_heads = roi_heads or RoIHeads(cfg, channels)
        self.norms_folded = False

    # -- stages -----------------------------------------------------------------------------
    def backbone_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """FPN features p2..p6 [B, C, H/s, W/s] of a normalised, padded batch."""
        return self.backbone(images)

    def propose(self, features: dict[str, torch.Tensor],
                image_sizes: list[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """RPN proposals per image: boxes [R, 4] and objectness logits [R], best first."""
        return self.proposal_generator([features[n] for n in RPN_LEVELS], image_sizes)

    def detect(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
               image_sizes: list[tuple[int, int]], score_threshold: float | None = None,
               nms_threshold: float | None = None, max_detections: int | None = None
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Final detections per image: boxes [D, 4] and scores [D], best first.

        The thresholds default to the configuration's (``cfg.box_head``)."""
        results = self.roi_heads([features[n] for n in ROI_LEVELS], proposals, image_sizes,
                                 score_threshold, nms_threshold, max_detections)
        return [(boxes, scores) for boxes, scores, _ in results]

    def densepose_features(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The maps the DensePose pooler reads: the decoder output, or p2..p5."""
        maps = [features[n] for n in ROI_LEVELS]
        if self.roi_heads.decoder is not None:
            return [self.roi_heads.decoder(maps)]
        return maps

    def pool_densepose(self, dp_features: list[torch.Tensor],
                       boxes: list[torch.Tensor]) -> torch.Tensor:
        """RoIAlign of every box [sum Ri, C, P, P], images in order."""
        return self.roi_heads.densepose_pooler(dp_features, boxes_to_rois(boxes))

    def densepose_head_input(self, pooled: torch.Tensor,
                             keypoint_heatmaps: torch.Tensor | None = None) -> torch.Tensor:
        """The DensePose head's input: the pooled features, with cross-talk followed by the
        keypoint heatmap logits [N, K, H, W] resized to the pooled size."""
        if not (self.cfg.keypoints.enabled and self.cfg.keypoints.cross_talk):
            return pooled
        if keypoint_heatmaps is None:
            raise ValueError("this model's DensePose head takes keypoint heatmaps (cross-talk)")
        return with_keypoint_heatmaps(pooled, keypoint_heatmaps)

    def densepose_from_input(self, head_input: torch.Tensor) -> DensePoseChartOutput:
        """DensePose head + chart predictor on their input (exportable on its own)."""
        heads = self.roi_heads
        return heads.densepose_predictor(heads.densepose_head(head_input))

    def densepose_from_pooled(self, pooled: torch.Tensor,
                              keypoint_heatmaps: torch.Tensor | None = None
                              ) -> DensePoseChartOutput:
        """Charts from pooled RoI features (and, with cross-talk, the boxes' heatmaps)."""
        return self.densepose_from_input(self.densepose_head_input(pooled, keypoint_heatmaps))

    def keypoint_heatmaps(self, features: dict[str, torch.Tensor],
                          boxes: list[torch.Tensor]) -> torch.Tensor | None:
        """Keypoint heatmap logits [sum Ri, K, H, W] of given boxes, or None without a
        keypoint head."""
        heads = self.roi_heads
        if heads.keypoint_head is None:
            return None
        pooled = heads.keypoint_pooler([features[n] for n in ROI_LEVELS], boxes_to_rois(boxes))
        return heads.keypoint_head(pooled)

    def densepose_on_boxes(self, features: dict[str, torch.Tensor],
                           boxes: list[torch.Tensor],
                           keypoint_heatmaps: torch.Tensor | None = None
                           ) -> DensePoseChartOutput:
        """DensePose charts of caller-given boxes (per image [Ri, 4], input pixels); with
        cross-talk the boxes' keypoint heatmaps are computed unless given."""
        if keypoint_heatmaps is None and self.cfg.keypoints.cross_talk:
            keypoint_heatmaps = self.keypoint_heatmaps(features, boxes)
        return self.densepose_from_pooled(
            self.pool_densepose(self.densepose_features(features), boxes), keypoint_heatmaps)

    def forward(self, images: torch.Tensor, image_sizes: list[tuple[int, int]]
                ) -> list[tuple[torch.Tensor, torch.Tensor, DensePoseChartOutput]]:
        """Full inference: per image (boxes [D, 4], scores [D], charts of those boxes)."""
        features = self.backbone_features(images)
        proposals = [boxes for boxes, _ in self.propose(features, image_sizes)]
        detections = self.detect(features, proposals, image_sizes)
        boxes = [b for b, _ in detections]
        charts = self.densepose_on_boxes(features, boxes)
        outputs, start = [], 0
        for det_boxes, det_scores in detections:
            end = start + det_boxes.shape[0]
            outputs.append((det_boxes, det_scores, charts[start:end]))
            start = end
        return outputs

    # -- inference optimisation ---------------------------------------------------------------
    def fold_norms(self) -> DensePoseRCNN:
        """Merge frozen/eval batch norms into their convolutions, the chart outputs'
        transposed convolutions into one (``ChartPredictor.fuse``), and let wide 3x3 head
        stacks, FPN outputs and the RPN convolution run Winograd on float32 CPU input
        (``prepare_winograd``). Inference only: the
        state dict then no longer matches the checkpoint layout, so such a model cannot be
        saved."""
        if self.training:
            raise RuntimeError("fold_norms() is for inference; call model.eval() first")
        for module in self.modules():
            if isinstance(module, ConvNorm):
                module.fold_norm()
            elif isinstance(module, ChartPredictor):
                module.fuse()
            elif isinstance(module, DensePoseConvXHead | KeypointHead | FPNBackbone | RPNHead):
                module.prepare_winograd()
        self.norms_folded = True
        return self


def build_model(cfg: ModelConfig) -> DensePoseRCNN:
    """DensePose R-CNN for `cfg`, in eval mode, with untrained (default-initialised) weights.
    (Training from scratch initialises them as detectron2 does: ``modeling.init``.)"""
    return DensePoseRCNN(cfg).eval()
