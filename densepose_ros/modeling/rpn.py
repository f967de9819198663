"""Region proposal network: anchors, the shared conv head and test-time proposal selection."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.ops import batched_nms

from densepose_ros.modeling.box_ops import clip_boxes, decode_boxes
from densepose_ros.modeling.config import RPNConfig
from densepose_ros.modeling.winograd import WinogradConv3x3, conv3x3_on_map, map_winograd_for


def cell_anchors(size: float, aspect_ratios: tuple[float, ...]) -> torch.Tensor:
    """Anchors [A, 4] of one size centred on (0, 0), one per aspect ratio (height / width)."""
    rows = []
    area = size**2.0
    for ratio in aspect_ratios:
        w = math.sqrt(area / ratio)
        h = ratio * w
        rows.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(rows, dtype=torch.float32)


def grid_anchors(base: torch.Tensor, height: int, width: int, stride: int,
                 offset: float) -> torch.Tensor:
    """All anchors [height * width * A, 4] of one level, ordered (row, column, anchor)."""
    shifts_x = torch.arange(offset * stride, width * stride, step=stride, dtype=torch.float32)
    shifts_y = torch.arange(offset * stride, height * stride, step=stride, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
    shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=1)
    return (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by all levels, then per-anchor objectness and box deltas."""

    def __init__(self, channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness_logits = nn.Conv2d(channels, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * 4, 1)
        self.winograd: WinogradConv3x3 | None = None  # prepare_winograd()

    def prepare_winograd(self) -> bool:
        """Let the shared 3x3 convolution run Winograd at float32 CPU inference where that
        is faster (``map_winograd_for``)."""
        self.winograd = map_winograd_for(self.conv)
        return self.winograd is not None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level map [N, C, H, W] -> logits [N, H*W*A], deltas [N, H*W*A, 4]."""
        return self.flatten(*self.raw(x))

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Convolution outputs as maps: logits [N, A, H, W], deltas [N, A*4, H, W] (what the
        exported graph returns: no shape arithmetic, and each level's size stays visible)."""
        t = conv3x3_on_map(self.conv, self.winograd, x, relu=True, training=self.training)
        return self.objectness_logits(t), self.anchor_deltas(t)

    @staticmethod
    def flatten(logits: torch.Tensor, deltas: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps from ``raw`` -> logits [N, H*W*A], deltas [N, H*W*A, 4] (row, col, anchor)."""
        n, a, h, w = logits.shape
        logits = logits.permute(0, 2, 3, 1).reshape(n, -1)
        deltas = deltas.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
        # float32 for decoding even when the convolutions ran in reduced precision
        return logits.float(), deltas.float()


class RPN(nn.Module):
    """Proposals per image: top-k per level, decode, clip, drop empty boxes, per-level NMS."""

    def __init__(self, cfg: RPNConfig, channels: int, strides: tuple[int, ...],
                 box_scale_clamp: float, head: nn.Module | None = None):
        super().__init__()
        if len(cfg.anchor_sizes) != len(strides):
            raise ValueError("one anchor size per RPN level is expected")
        self.cfg = cfg
        self.strides = strides
        self.box_scale_clamp = box_scale_clamp
        self.rpn_head = head if head is not None else RPNHead(channels, len(cfg.aspect_ratios))
        self._base_anchors = [cell_anchors(s, cfg.aspect_ratios) for s in cfg.anchor_sizes]
        self._anchor_cache: dict[tuple, torch.Tensor] = {}

    def anchors(self, level: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (level, height, width, str(device))
        if key not in self._anchor_cache:
            if len(self._anchor_cache) > 64:  # input sizes vary little; bound the cache anyway
                self._anchor_cache.clear()
            self._anchor_cache[key] = grid_anchors(
                self._base_anchors[level], height, width, self.strides[level],
                self.cfg.anchor_offset,
            ).to(device)
        return self._anchor_cache[key]

    def forward(
        self, features: list[torch.Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image: proposals [R, 4] (xyxy, input pixels) and objectness logits [R], sorted."""
        return self.select_proposals([self.rpn_head.raw(f) for f in features], image_sizes)

    def select_proposals(
        self, level_maps: list[tuple[torch.Tensor, torch.Tensor]],
        image_sizes: list[tuple[int, int]],
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Proposal selection from the head's raw maps of each level (logits
        [N, A, H, W], deltas [N, A*4, H, W]): top-k per level, decode, clip, NMS. Also used on
        the outputs of an exported backbone graph (``densepose_ros.export``)."""
        cfg = self.cfg
        # training takes more candidates (RPNConfig); exported graphs run in eval mode
        pre_nms_topk = cfg.pre_nms_topk_train if self.training else cfg.pre_nms_topk
        post_nms_topk = cfg.post_nms_topk_train if self.training else cfg.post_nms_topk
        num_images = level_maps[0][0].shape[0]
        top_logits, top_boxes, top_levels = [], [], []
        for level, (logit_map, delta_map) in enumerate(level_maps):
            logits, deltas = RPNHead.flatten(logit_map, delta_map)
            anchors = self.anchors(level, logit_map.shape[2], logit_map.shape[3],
                                   logit_map.device)
            k = min(pre_nms_topk, logits.shape[1])
            scores, index = logits.topk(k, dim=1)
            # Decoding is per box, so decoding only the kept anchors gives the same numbers.
            picked = torch.gather(deltas, 1, index.unsqueeze(-1).expand(-1, -1, 4))
            boxes = decode_boxes(picked.reshape(-1, 4), anchors[index.reshape(-1)],
                                 cfg.box_reg_weights, self.box_scale_clamp)
            top_logits.append(scores)
            top_boxes.append(boxes.view(num_images, k, 4))
            top_levels.append(torch.full((k,), level, dtype=torch.int64,
                                         device=logit_map.device))
        all_logits = torch.cat(top_logits, dim=1)
        all_boxes = torch.cat(top_boxes, dim=1)
        all_levels = torch.cat(top_levels)

        results = []
        for i, (height, width) in enumerate(image_sizes):
            boxes, scores, levels = all_boxes[i], all_logits[i], all_levels
            valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
            boxes = clip_boxes(boxes, height, width)
            sides_ok = ((boxes[:, 2] - boxes[:, 0]) > cfg.min_box_size) & (
                (boxes[:, 3] - boxes[:, 1]) > cfg.min_box_size
            )
            boxes, scores, levels = boxes[sides_ok], scores[sides_ok], levels[sides_ok]
            keep = batched_nms(boxes, scores, levels, cfg.nms_threshold)[:post_nms_topk]
            results.append((boxes[keep], scores[keep]))
        return results
