"""DensePose branch: Panoptic-FPN decoder, the heads (DensePoseV1ConvXHead,
DensePoseDeepLabHead) and the chart predictor with its optional confidence outputs.

Modules and parameters are named as detectron2 names them, so model-zoo checkpoints load key
for key (the importer checks every key and shape).

Everything here is a fixed sequence of tensor operations (no data-dependent control flow),
so the head exports to ONNX as one graph on pooled RoI features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.inference.structures import DensePoseChartOutput
from densepose_ros.modeling.backbone import ConvNorm
from densepose_ros.modeling.config import DensePoseHeadConfig
from densepose_ros.modeling.winograd import (
    WinogradConvReLUStack,
    conv_relu_stack,
    winograd_stack_for,
)


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
            x = F.relu_(getattr(self, str(2 * k if self.upsample else k))(x))
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
        self.winograd: WinogradConvReLUStack | None = None

    def convs(self) -> list[nn.Conv2d]:
        return [getattr(self, f"body_conv_fcn{k + 1}") for k in range(self.num_convs)]

    @torch.no_grad()
    def prepare_winograd(self) -> bool:
        """Run the convolutions with Winograd F(2x2, 3x3) at inference on float32 CPU input
        where that is faster (``modeling.winograd``). Returns whether it will be used."""
        self.winograd = winograd_stack_for(self.convs())
        return self.winograd is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_relu_stack(self.convs(), self.winograd, x, self.training)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3, Chen et al. 2017) as DensePose uses it:
    a 1x1 branch, three dilated 3x3 branches and an image-pooling branch, each with
    GroupNorm and ReLU, concatenated and projected back by a 1x1 convolution and ReLU."""

    def __init__(self, channels: int, rates: tuple[int, int, int] = (6, 12, 56)):
        super().__init__()

        def branch(*layers: nn.Module) -> nn.Sequential:
            return nn.Sequential(*layers, nn.GroupNorm(32, channels), nn.ReLU())

        self.convs = nn.ModuleList(
            [branch(nn.Conv2d(channels, channels, 1, bias=False))]
            + [branch(nn.Conv2d(channels, channels, 3, padding=r, dilation=r, bias=False))
               for r in rates]
            # image pooling: index 0 is the pooling, so its conv is "4.1" as in detectron2
            + [branch(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1, bias=False))]
        )
        self.project = nn.Sequential(nn.Conv2d(5 * channels, channels, 1, bias=False),
                                     nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [conv(x) for conv in self.convs[:-1]]
        pooled = self.convs[-1](x)
        branches.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear",
                                      align_corners=False))
        return self.project(torch.cat(branches, dim=1))


class DensePoseDeepLabHead(nn.Module):
    """ASPP on the pooled features, then `num_convs` 3x3 convolutions with GroupNorm and
    ReLU (DensePoseDeepLabHead; its non-local block is off in every model-zoo config)."""

    def __init__(self, cfg: DensePoseHeadConfig, in_channels: int):
        super().__init__()
        self.ASPP = ASPP(in_channels)
        self.num_convs = cfg.num_convs
        for k in range(cfg.num_convs):
            conv = ConvNorm(in_channels if k == 0 else cfg.conv_channels, cfg.conv_channels,
                            cfg.conv_kernel, norm="GN")
            self.add_module(f"body_conv_fcn{k + 1}", conv)
        self.out_channels = cfg.conv_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ASPP(x)
        for k in range(self.num_convs):
            x = F.relu_(getattr(self, f"body_conv_fcn{k + 1}")(x))
        return x


def build_densepose_head(cfg: DensePoseHeadConfig, in_channels: int) -> nn.Module:
    """The head ``cfg.head`` names, on pooled features of ``in_channels``."""
    if cfg.head == "convx":
        return DensePoseConvXHead(cfg, in_channels)
    if cfg.head == "deeplab":
        return DensePoseDeepLabHead(cfg, in_channels)
    raise ValueError(f"unknown DensePose head '{cfg.head}' (expected 'convx' or 'deeplab')")


class ChartPredictor(nn.Module):
    """Per output a stride-2 transposed conv, then bilinear upscaling (x`upscale`).

    Outputs (a ``DensePoseChartOutput``, all [N, C, M, M], M = 4 x pooled size): coarse
    segmentation logits (C = num_coarse_segm_channels), fine segmentation logits
    (C = num_patches + 1), U and V (C = num_patches + 1, one regression map per chart,
    channel 0 unused), and the confidences ``cfg.confidence_outputs`` names.
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
        self.confidences = cfg.confidence_outputs
        for name in self.confidences:
            channels = 1 if name.endswith("segm_confidence") else cfg.num_patches + 1
            self.add_module(f"{name}_lowres", deconv(channels))
        self.epsilon = cfg.confidence_epsilon
        self.upscale = cfg.upscale
        # (output name, layer name, channels) in forward's order; `fused` (``fuse()``) runs
        # them as one layer
        self._outputs = [("coarse_segm", "ann_index_lowres", cfg.num_coarse_segm_channels),
                         ("fine_segm", "index_uv_lowres", cfg.num_patches + 1),
                         ("u", "u_lowres", cfg.num_patches + 1),
                         ("v", "v_lowres", cfg.num_patches + 1)]
        self._outputs += [(name, f"{name}_lowres", getattr(self, f"{name}_lowres").out_channels)
                          for name in self.confidences]
        self.fused: nn.ConvTranspose2d | None = None

    @torch.no_grad()
    def fuse(self) -> None:
        """Run every output's transposed convolution as one (inference only): the input is
        read once instead of 4-8 times, 30 % faster at 100 R-50 RoIs on a CPU; outputs are
        the same numbers (each output channel sums the same products)."""
        layers = [getattr(self, layer) for _, layer, _ in self._outputs]
        first = layers[0]
        fused = nn.ConvTranspose2d(first.in_channels, sum(c for *_, c in self._outputs),
                                   first.kernel_size, stride=first.stride, padding=first.padding)
        fused.weight.copy_(torch.cat([layer.weight for layer in layers], dim=1))
        fused.bias.copy_(torch.cat([layer.bias for layer in layers]))
        self.fused = fused.to(device=first.weight.device, dtype=first.weight.dtype)

    def _lowres(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.fused is None:
            return {name: getattr(self, layer)(x) for name, layer, _ in self._outputs}
        parts = self.fused(x).split([c for *_, c in self._outputs], dim=1)
        return {name: part for (name, *_), part in zip(self._outputs, parts, strict=True)}

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        # float32 outputs even when the layers ran in reduced precision
        return F.interpolate(x.float(), scale_factor=float(self.upscale), mode="bilinear",
                             align_corners=False)

    def forward(self, x: torch.Tensor) -> DensePoseChartOutput:
        lowres = self._lowres(x)
        outputs = {name: self._up(lowres[name]) for name in ("coarse_segm", "fine_segm", "u", "v")}
        for name in self.confidences:
            value = self._up(lowres[name])
            if name.endswith("segm_confidence"):
                # as detectron2: softplus + epsilon, and it scales that segmentation's logits
                value = F.softplus(value) + self.epsilon
                segm = name.removesuffix("_confidence")
                outputs[segm] = outputs[segm] * value
            outputs[name] = value
        return DensePoseChartOutput(**outputs)
