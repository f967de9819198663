"""DensePose branch: Panoptic-FPN decoder, DensePoseV1ConvXHead and the chart predictor.

Everything here is a fixed sequence of tensor operations (no data-dependent control flow),
so the head exports to ONNX as one graph on pooled RoI features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.modeling.config import DensePoseHeadConfig


class Decoder(nn.Module):
    """Sums p2..p5, each brought to stride `common_stride`, then a 1x1 projection."""

    def __init__(self, cfg: DensePoseHeadConfig, in_channels: int,
                 strides: dict[str, int]):
        super().__init__()
        self.in_features = tuple(strides)
        for name, stride in strides.items():
            self.add_module(name, ScaleHead(in_channels, cfg.decoder_channels, stride,
                                               cfg.decoder_common_stride))
        self.predictor = nn.Conv2d(cfg.decoder_channels, cfg.decoder_out_channels, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = getattr(self, self.in_features[0])(features[0])
        for name, feature in zip(self.in_features[1:], features[1:], strict=True):
            x = x + getattr(self, name)(feature)
        return self.predictor(x)


class ScaleHead(nn.Module):
    """Brings one FPN level to the common stride: (3x3 conv, ReLU[, bilinear x2]) repeated.

    Convolutions are named by their position in that sequence (0, 2, 4 when upsampling),
    which is how detectron2 checkpoints name them (``decoder.p4.2.weight``).
    """

    def __init__(self, in_ch: int, channels: int, stride: int, common_stride: int):
        super().__init__()
        self.steps = max(1, int(math.log2(stride) - math.log2(common_stride)))
        self.upsample = stride != common_stride
        for k in range(self.steps):
            conv = nn.Conv2d(in_ch if k == 0 else channels, channels, 3, padding=1)
            self.add_module(str(2 * k if self.upsample else k), conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(self.steps):
            x = F.relu(getattr(self, str(2 * k if self.upsample else k))(x))
            if self.upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class DensePoseConvXHead(nn.Module):
    """`num_convs` 3x3 convolutions with ReLU on pooled RoI features (DensePoseV1ConvXHead)."""

    def __init__(self, cfg: DensePoseHeadConfig, in_channels: int):
        super().__init__()
        self.num_convs = cfg.num_convs
        for k in range(cfg.num_convs):
            conv = nn.Conv2d(in_channels if k == 0 else cfg.conv_channels, cfg.conv_channels,
                             cfg.conv_kernel, padding=cfg.conv_kernel // 2)
            self.add_module(f"body_conv_fcn{k + 1}", conv)
        self.out_channels = cfg.conv_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(self.num_convs):
            x = F.relu(getattr(self, f"body_conv_fcn{k + 1}")(x))
        return x


class ChartPredictor(nn.Module):
    """Per output a stride-2 transposed conv, then bilinear upscaling (x`upscale`).

    Outputs (all [N, C, M, M], M = 4 x pooled size): coarse segmentation logits
    (C = num_coarse_segm_channels), fine segmentation logits (C = num_patches + 1), U and V
    (C = num_patches + 1, one regression map per chart, channel 0 unused).
    """

    def __init__(self, cfg: DensePoseHeadConfig, in_channels: int):
        super().__init__()
        k = cfg.deconv_kernel
        pad = k // 2 - 1  # with stride 2 this exactly doubles the side

        def deconv(out_ch: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(in_channels, out_ch, k, stride=2, padding=pad)

        self.ann_index_lowres = deconv(cfg.num_coarse_segm_channels)
        self.index_uv_lowres = deconv(cfg.num_patches + 1)
        self.u_lowres = deconv(cfg.num_patches + 1)
        self.v_lowres = deconv(cfg.num_patches + 1)
        self.upscale = cfg.upscale

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        # float32 outputs even when the layers ran in reduced precision
        return F.interpolate(x.float(), scale_factor=float(self.upscale), mode="bilinear",
                             align_corners=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            self._up(self.ann_index_lowres(x)),
            self._up(self.index_uv_lowres(x)),
            self._up(self.u_lowres(x)),
            self._up(self.v_lowres(x)),
        )
