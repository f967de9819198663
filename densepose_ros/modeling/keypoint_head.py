"""Mask R-CNN's keypoint branch (He et al. 2017) as detectron2 lays it out
(KRCNNConvDeconvUpsampleHead), and the conversion of its heatmaps to keypoints.

The head: ``num_convs`` 3x3 convolutions with ReLU (``conv_fcn1``..), a stride-2 transposed
convolution to one map per keypoint (``score_lowres``), then bilinear upscaling: heatmap
logits [N, K, 56, 56] over each box. A fixed sequence of tensor operations, so it exports to
ONNX as one graph on pooled RoI features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.modeling.config import KeypointHeadConfig
from densepose_ros.modeling.winograd import (
    WinogradConvReLUStack,
    conv_relu_stack,
    winograd_stack_for,
)


class KeypointHead(nn.Module):
    """Pooled RoI features [N, C, P, P] -> heatmap logits [N, K, 4P, 4P]."""

    def __init__(self, cfg: KeypointHeadConfig, in_channels: int):
        super().__init__()
        self.num_convs = cfg.num_convs
        for k in range(cfg.num_convs):
            self.add_module(f"conv_fcn{k + 1}", nn.Conv2d(
                in_channels if k == 0 else cfg.conv_channels, cfg.conv_channels, 3, padding=1))
        channels = cfg.conv_channels if cfg.num_convs else in_channels
        self.score_lowres = nn.ConvTranspose2d(channels, cfg.num_keypoints, cfg.deconv_kernel,
                                               stride=2, padding=cfg.deconv_kernel // 2 - 1)
        self.upscale = cfg.upscale
        self.winograd: WinogradConvReLUStack | None = None

    def convs(self) -> list[nn.Conv2d]:
        return [getattr(self, f"conv_fcn{k + 1}") for k in range(self.num_convs)]

    @torch.no_grad()
    def prepare_winograd(self) -> bool:
        """As ``DensePoseConvXHead.prepare_winograd`` (the R-50 heads: 8 x 512 channels)."""
        self.winograd = winograd_stack_for(self.convs())
        return self.winograd is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv_relu_stack(self.convs(), self.winograd, x, self.training)
        # float32 heatmaps even when the layers ran in reduced precision
        return F.interpolate(self.score_lowres(x).float(), scale_factor=float(self.upscale),
                             mode="bilinear", align_corners=False)


def no_heatmaps(cfg: KeypointHeadConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """The heatmaps of zero boxes, [0, K, S, S] (a frame without persons)."""
    size = cfg.heatmap_size
    return torch.zeros((0, cfg.num_keypoints, size, size), device=device)


def heatmaps_to_keypoints(heatmaps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Keypoints [N, K, 3] (x, y, score) in the boxes' pixels from heatmap logits
    [N, K, H, W] over boxes [N, 4] (xyxy), as detectron2 decodes them: each box's maps are
    resized bicubically to the box's (ceiled) size, the maximum is the keypoint (pixel
    centre, scaled back to the true box size), and its score is the softmax of that logit
    normalised over the H x W map (comparable across box sizes)."""
    count, keypoints = heatmaps.shape[:2]
    out = heatmaps.new_zeros((count, keypoints, 3), dtype=torch.float32)
    widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=1)
    heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=1)
    index = torch.arange(keypoints, device=heatmaps.device)
    for i in range(count):
        size = (int(heights[i].ceil()), int(widths[i].ceil()))
        maps = F.interpolate(heatmaps[i:i + 1].float(), size=size, mode="bicubic",
                             align_corners=False)[0]
        peak, position = maps.reshape(keypoints, -1).max(dim=1)
        normaliser = (heatmaps[i].float() - peak[:, None, None]).exp().sum(dim=(1, 2))
        cols = position % size[1]
        rows = torch.div(position, size[1], rounding_mode="floor")
        out[i, :, 0] = (cols.float() + 0.5) * (widths[i] / size[1]) + boxes[i, 0]
        out[i, :, 1] = (rows.float() + 0.5) * (heights[i] / size[0]) + boxes[i, 1]
        # the peak's own softmax term is exp(0) = 1
        out[i, :, 2] = 1.0 / normaliser[index]
    return out
