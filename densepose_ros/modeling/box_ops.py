"""Box arithmetic shared by the RPN, the box head and training: delta encoding and
decoding, clipping, RoI pooling.

Conventions (detectron2's): boxes are float xyxy in input pixels, width = x2 - x1 (no +1);
deltas are (dx, dy, dw, dh) divided by per-stage weights; dw/dh are clamped before exp.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from densepose_ros.modeling.config import PoolerGeometry
from densepose_ros.modeling.threads import run_split

# torchvision's CPU RoIAlign runs on one core whatever torch's thread count; at inference the
# boxes are split over that many threads (it releases the GIL): 1000 R-50 box-head RoIs in
# 126 instead of 218 ms on 2 cores. Fewer boxes than this stay in one call.
PARALLEL_ROI_ALIGN_MIN_BOXES = 32


def roi_align_boxes(feature: torch.Tensor, rois: torch.Tensor, size: tuple[int, int],
                    scale: float, sampling_ratio: int, aligned: bool) -> torch.Tensor:
    """torchvision's ``roi_align``; at inference on a CPU with several threads and many
    boxes, the boxes split over those threads (the same numbers, computed in parallel).
    Grad and autocast modes are per thread, so with either on it stays one call."""
    workers = torch.get_num_threads()
    if (workers < 2 or rois.shape[0] < PARALLEL_ROI_ALIGN_MIN_BOXES
            or feature.device.type != "cpu" or torch.is_grad_enabled()
            or torch.is_autocast_enabled("cpu") or feature.dtype != rois.dtype
            or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
        return roi_align(feature, rois, size, scale, sampling_ratio, aligned)
    return torch.cat(run_split(rois.shape[0], workers, lambda begin, end: roi_align(
        feature, rois[begin:end], size, scale, sampling_ratio, aligned)))


def centres_and_sizes(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Centre x, centre y, width, height [R] each of xyxy boxes [R, 4]."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights


def encode_boxes(reference: torch.Tensor, target: torch.Tensor,
                 weights: tuple[float, float, float, float]) -> torch.Tensor:
    """Deltas [R, 4] (dx, dy, dw, dh) times `weights` taking `reference` to `target`: the
    regression targets whose ``decode_boxes`` gives the target box."""
    ref_x, ref_y, ref_w, ref_h = centres_and_sizes(reference.float())
    tgt_x, tgt_y, tgt_w, tgt_h = centres_and_sizes(target.float())
    wx, wy, ww, wh = weights
    return torch.stack((wx * (tgt_x - ref_x) / ref_w, wy * (tgt_y - ref_y) / ref_h,
                        ww * torch.log(tgt_w / ref_w), wh * torch.log(tgt_h / ref_h)), dim=1)


def decode_boxes(
    deltas: torch.Tensor,
    boxes: torch.Tensor,
    weights: tuple[float, float, float, float],
    scale_clamp: float,
) -> torch.Tensor:
    """Apply regression deltas [R, 4k] to reference boxes [R, 4]; returns boxes [R, 4k]."""
    ctr_x, ctr_y, widths, heights = centres_and_sizes(boxes.to(deltas.dtype))

    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = (deltas[:, 2::4] / ww).clamp(max=scale_clamp)
    dh = (deltas[:, 3::4] / wh).clamp(max=scale_clamp)

    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]

    x1 = pred_ctr_x - 0.5 * pred_w
    y1 = pred_ctr_y - 0.5 * pred_h
    x2 = pred_ctr_x + 0.5 * pred_w
    y2 = pred_ctr_y + 0.5 * pred_h
    return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clamp xyxy boxes [..., 4] to the image (x in [0, width], y in [0, height])."""
    x1 = boxes[..., 0].clamp(min=0, max=width)
    y1 = boxes[..., 1].clamp(min=0, max=height)
    x2 = boxes[..., 2].clamp(min=0, max=width)
    y2 = boxes[..., 3].clamp(min=0, max=height)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def assign_fpn_levels(
    boxes: torch.Tensor, min_level: int, max_level: int, canonical_size: float = 224.0,
    canonical_level: int = 4,
) -> torch.Tensor:
    """Pyramid level index (0 = min_level) of each box [R, 4], as in the FPN paper (eq. 1).

    A box of side `canonical_size` maps to `canonical_level`; each halving of the side moves
    one level down. The 1e-8 keeps empty boxes finite (they land on the finest level).
    """
    sizes = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_size + 1e-8))
    return (levels.clamp(min=min_level, max=max_level) - min_level).to(torch.int64)


class MultiLevelRoIAlign(nn.Module):
    """RoIAlign of boxes over one or several feature levels (each box on its FPN level).

    `strides` are the levels' strides (4, 8, 16, 32 for p2..p5, or a single stride). Boxes
    are given as one [R, 5] tensor of (batch index, x1, y1, x2, y2) in input pixels.
    """

    def __init__(self, output_size: int, strides: tuple[int, ...], sampling_ratio: int,
                 aligned: bool):
        super().__init__()
        self.geometry = PoolerGeometry(output_size, tuple(strides), sampling_ratio, aligned)

    @classmethod
    def of(cls, geometry: PoolerGeometry) -> MultiLevelRoIAlign:
        return cls(geometry.output_size, geometry.strides, geometry.sampling_ratio,
                   geometry.aligned)

    def forward(self, features: list[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        if len(features) != len(g.scales):
            raise ValueError(f"expected {len(g.scales)} feature maps, got {len(features)}")
        size = (g.output_size, g.output_size)
        if len(features) == 1:
            return roi_align_boxes(features[0], rois, size, g.scales[0], g.sampling_ratio,
                                   g.aligned)
        levels = assign_fpn_levels(rois[:, 1:], g.min_level, g.max_level)
        channels = features[0].shape[1]
        output = features[0].new_zeros((rois.shape[0], channels, *size))
        for index, (feature, scale) in enumerate(zip(features, g.scales, strict=True)):
            chosen = torch.nonzero(levels == index).squeeze(1)
            output[chosen] = roi_align_boxes(feature, rois[chosen], size, scale,
                                             g.sampling_ratio, g.aligned)
        return output


def boxes_to_rois(boxes: list[torch.Tensor]) -> torch.Tensor:
    """Per-image boxes [Ri, 4] -> one [sum Ri, 5] tensor with the image index first."""
    if not boxes:
        return torch.zeros((0, 5))
    indices = [torch.full((b.shape[0], 1), i, dtype=b.dtype, device=b.device)
               for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(indices), torch.cat(boxes)], dim=1)
