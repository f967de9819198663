"""Ground-truth matching, balanced sampling and box encoding for the detection losses.

Conventions as detectron2's (boxes xyxy in input pixels, width = x2 - x1):

- ``match_by_iou``: each reference box (anchor or proposal) takes the ground-truth box it
  overlaps most; its label comes from that IoU (below ``low``: negative, from ``low`` to
  ``high``: ignored, at least ``high``: positive). With ``keep_best_matches`` every
  ground-truth box also makes positive the reference boxes it overlaps most (ties
  included), so that small or odd-shaped persons still get an anchor (RPN only).
- ``sample_balanced``: at most ``count`` labelled boxes, at most ``positive_fraction`` of
  them positive, negatives filling the rest; ignored boxes are never drawn.
- ``encode_boxes``: the regression targets whose ``decode_boxes`` gives the target box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

# Labels of reference boxes after matching.
NEGATIVE, IGNORED, POSITIVE = 0, -1, 1


@dataclass
class Matches:
    """Matching of R reference boxes to G ground-truth boxes.

    Attributes:
        gt_index: [R] int64 best ground-truth box of each reference box (0 when G == 0).
        labels: [R] int8 ``NEGATIVE`` / ``IGNORED`` / ``POSITIVE``.
    """

    gt_index: torch.Tensor
    labels: torch.Tensor


def match_by_iou(gt_boxes: torch.Tensor, boxes: torch.Tensor, high: float, low: float,
                 keep_best_matches: bool) -> Matches:
    """Match reference `boxes` [R, 4] to `gt_boxes` [G, 4] (see the module docstring)."""
    num = boxes.shape[0]
    if gt_boxes.shape[0] == 0:  # an image without persons: everything is background
        return Matches(torch.zeros(num, dtype=torch.int64, device=boxes.device),
                       torch.full((num,), NEGATIVE, dtype=torch.int8, device=boxes.device))
    iou = box_iou(gt_boxes, boxes)  # [G, R]
    best_iou, gt_index = iou.max(dim=0)
    labels = torch.full((num,), IGNORED, dtype=torch.int8, device=boxes.device)
    labels[best_iou < low] = NEGATIVE
    labels[best_iou >= high] = POSITIVE
    if keep_best_matches:
        best_per_gt = iou.max(dim=1, keepdim=True).values
        # ties count: every box reaching a person's best (non-zero) overlap is positive
        _, best_boxes = torch.nonzero((iou == best_per_gt) & (best_per_gt > 0), as_tuple=True)
        labels[best_boxes] = POSITIVE
    return Matches(gt_index, labels)


def sample_balanced(labels: torch.Tensor, count: int, positive_fraction: float,
                    generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the sampled positive and negative boxes (each [k] int64, random order)."""
    positive = torch.nonzero(labels == POSITIVE).flatten()
    negative = torch.nonzero(labels == NEGATIVE).flatten()
    num_positive = min(positive.numel(), int(count * positive_fraction))
    num_negative = min(negative.numel(), count - num_positive)

    def pick(indices: torch.Tensor, k: int) -> torch.Tensor:
        order = torch.randperm(indices.numel(), generator=generator).to(indices.device)
        return indices[order[:k]]

    return pick(positive, num_positive), pick(negative, num_negative)


def encode_boxes(reference: torch.Tensor, target: torch.Tensor,
                 weights: tuple[float, float, float, float]) -> torch.Tensor:
    """Deltas [R, 4] (dx, dy, dw, dh) times `weights` taking `reference` to `target`."""
    reference, target = reference.float(), target.float()
    ref_w = reference[:, 2] - reference[:, 0]
    ref_h = reference[:, 3] - reference[:, 1]
    ref_x = reference[:, 0] + 0.5 * ref_w
    ref_y = reference[:, 1] + 0.5 * ref_h
    tgt_w = target[:, 2] - target[:, 0]
    tgt_h = target[:, 3] - target[:, 1]
    tgt_x = target[:, 0] + 0.5 * tgt_w
    tgt_y = target[:, 1] + 0.5 * tgt_h
    wx, wy, ww, wh = weights
    return torch.stack((wx * (tgt_x - ref_x) / ref_w, wy * (tgt_y - ref_y) / ref_h,
                        ww * torch.log(tgt_w / ref_w), wh * torch.log(tgt_h / ref_h)), dim=1)
