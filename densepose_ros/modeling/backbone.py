"""ResNet bottom-up network and FPN with detectron2's conventions.

Module and parameter names follow the layout of detectron2 checkpoints
(``bottom_up.res2.0.conv1.norm.running_var``, ``fpn_lateral2`` ...) so model-zoo weights load
one to one; the implementation is this project's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from densepose_ros.modeling.config import FPN_LEVELS, BackboneConfig
from densepose_ros.modeling.winograd import conv3x3_on_map, map_winograd_for

# Blocks per stage res2..res5 for each supported depth.
_STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers, never trained).

    Stored like a BatchNorm2d (weight, bias, running_mean, running_var) so checkpoints keep
    their keys; applied as one per-channel scale and shift.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_and_shift()
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if kind == "BN":
        return nn.BatchNorm2d(channels)
    if kind == "GN":  # 32 groups, as detectron2's "GN"
        return nn.GroupNorm(32, channels)
    raise ValueError(f"unknown norm '{kind}' (expected 'FrozenBN', 'BN' or 'GN')")


class ConvNorm(nn.Conv2d):
    """A bias-free convolution followed by its normalisation, held as the child ``norm``.

    ``fold_norm()`` merges an inference-time norm into the convolution's weight and bias, which
    removes one full pass over every activation map (the model does this after loading).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, norm: str = "BN"):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm: nn.Module = make_norm(norm, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))

    @torch.no_grad()
    def fold_norm(self) -> None:
        if isinstance(self.norm, nn.Identity | nn.GroupNorm):
            return  # nothing to fold; a GroupNorm depends on the activations
        if isinstance(self.norm, FrozenBatchNorm2d):
            scale, shift = self.norm.scale_and_shift()
        elif isinstance(self.norm, nn.BatchNorm2d):
            scale = self.norm.weight * (self.norm.running_var + self.norm.eps).rsqrt()
            shift = self.norm.bias - self.norm.running_mean * scale
        else:
            raise TypeError(f"cannot fold {type(self.norm).__name__}")
        self.weight.mul_(scale.view(-1, 1, 1, 1))
        self.bias = nn.Parameter(shift.clone())
        self.norm = nn.Identity()


class Stem(nn.Module):
    """7x7 stride-2 convolution, norm, ReLU, 3x3 stride-2 max-pool: stride 4 overall."""

    def __init__(self, out_ch: int, norm: str):
        super().__init__()
        self.conv1 = ConvNorm(3, out_ch, 7, stride=2, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand; the stride sits in the first 1x1 when `stride_in_1x1`."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, stride_in_1x1: bool):
        super().__init__()
        mid = out_ch // 4
        self.shortcut = (
            ConvNorm(in_ch, out_ch, 1, stride=stride, norm=norm) if in_ch != out_ch else None
        )
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_ch, mid, 1, stride=s1, norm=norm)
        self.conv2 = ConvNorm(mid, mid, 3, stride=s3, norm=norm)
        self.conv3 = ConvNorm(mid, out_ch, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        y = F.relu_(self.conv1(x))
        y = F.relu_(self.conv2(y))
        y = self.conv3(y)
        y += identity  # in place: no fresh feature-map-sized buffer per block (as below)
        return F.relu_(y)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34); stride in the first."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, stride_in_1x1: bool):
        super().__init__()
        del stride_in_1x1  # only meaningful for bottleneck blocks
        self.shortcut = (
            ConvNorm(in_ch, out_ch, 1, stride=stride, norm=norm)
            if in_ch != out_ch or stride != 1
            else None
        )
        self.conv1 = ConvNorm(in_ch, out_ch, 3, stride=stride, norm=norm)
        self.conv2 = ConvNorm(out_ch, out_ch, 3, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        y = F.relu_(self.conv1(x))
        y = self.conv2(y)
        y += identity
        return F.relu_(y)


class ResNet(nn.Module):
    """ResNet stem + res2..res5; returns the four stage outputs (strides 4, 8, 16, 32)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        if cfg.depth not in _STAGE_BLOCKS:
            known = sorted(_STAGE_BLOCKS)
            raise ValueError(f"unsupported ResNet depth {cfg.depth}; known {known}")
        block = BottleneckBlock if cfg.depth >= 50 else BasicBlock
        self.stem = Stem(cfg.stem_channels, cfg.norm)
        in_ch, out_ch = cfg.stem_channels, cfg.res2_out_channels
        self.out_channels: list[int] = []
        for index, num_blocks in enumerate(_STAGE_BLOCKS[cfg.depth]):
            first_stride = 1 if index == 0 else 2
            blocks = []
            for b in range(num_blocks):
                blocks.append(
                    block(in_ch, out_ch, first_stride if b == 0 else 1, cfg.norm,
                          cfg.stride_in_1x1)
                )
                in_ch = out_ch
            self.add_module(f"res{index + 2}", nn.Sequential(*blocks))
            self.out_channels.append(out_ch)
            out_ch *= 2

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for name in ("res2", "res3", "res4", "res5"):
            x = getattr(self, name)(x)
            outputs.append(x)
        return outputs


class FPNBackbone(nn.Module):
    """ResNet + FPN: p2..p5 from the stages (sum fusion), p6 by stride-2 subsampling of p5."""

    def __init__(self, cfg: BackboneConfig, bottom_up: nn.Module | None = None):
        super().__init__()
        if cfg.fpn_fuse != "sum":
            raise ValueError(f"unsupported FPN fusion '{cfg.fpn_fuse}' (only 'sum')")
        self.bottom_up = bottom_up if bottom_up is not None else ResNet(cfg)
        channels = cfg.fpn_channels
        self.out_channels = channels
        for level, in_ch in zip((2, 3, 4, 5), self.bottom_up.out_channels, strict=True):
            self.add_module(f"fpn_lateral{level}", nn.Conv2d(in_ch, channels, 1))
            self.add_module(f"fpn_output{level}", nn.Conv2d(channels, channels, 3, padding=1))
        self.output_winograd: nn.ModuleDict | None = None  # prepare_winograd()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = self.bottom_up(x)
        top_down = self.fpn_lateral5(stages[3])
        outputs = {"p5": self._output(5, top_down)}
        for level in (4, 3, 2):
            lateral = getattr(self, f"fpn_lateral{level}")(stages[level - 2])
            lateral += F.interpolate(top_down, scale_factor=2.0, mode="nearest")
            top_down = lateral
            outputs[f"p{level}"] = self._output(level, top_down)
        # A 1x1 max-pool with stride 2 keeps every other p5 cell (the RPN's extra level).
        outputs["p6"] = F.max_pool2d(outputs["p5"], kernel_size=1, stride=2, padding=0)
        return {name: outputs[name] for name in FPN_LEVELS}

    def _output(self, level: int, x: torch.Tensor) -> torch.Tensor:
        conv = getattr(self, f"fpn_output{level}")
        winograd = None if self.output_winograd is None else self.output_winograd[str(level)]
        return conv3x3_on_map(conv, winograd, x, relu=False, training=self.training)

    def prepare_winograd(self) -> bool:
        """Let the 3x3 output convolutions run Winograd at float32 CPU inference where that
        is faster (``map_winograd_for``: the 256-channel FPNs, with a C compiler)."""
        prepared = {str(level): map_winograd_for(getattr(self, f"fpn_output{level}"))
                    for level in (2, 3, 4, 5)}
        self.output_winograd = (nn.ModuleDict(prepared)
                                if all(w is not None for w in prepared.values()) else None)
        return self.output_winograd is not None

    def fold_norms(self) -> None:
        """Merge every inference-time norm into its convolution (eval-only speed-up)."""
        for module in self.modules():
            if isinstance(module, ConvNorm):
                module.fold_norm()
