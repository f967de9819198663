"""Ground-truth matching, balanced sampling and box encoding for the detection losses.

Conventions as detectron2's (boxes xyxy in input pixels, width = x2 - x1); the regression
targets come from ``modeling.box_ops.encode_boxes``, the inverse of the decoding the model
runs:

- ``match_by_iou``: each reference box (anchor or proposal) takes the ground-truth box it
  overlaps most; its label comes from that IoU (below ``low``: negative, from ``low`` to
  ``high``: ignored, at least ``high``: positive). With ``keep_best_matches`` every
  ground-truth box also makes positive the reference boxes it overlaps most (ties
  included), so that small or odd-shaped persons still get an anchor (RPN only).
- ``sample_balanced``: at most ``count`` labelled boxes, at most ``positive_fraction`` of
  them positive, negatives filling the rest; ignored boxes are never drawn.
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
        iou: [R] float IoU of each reference box with its ground-truth box (0 when G == 0).
    """

    gt_index: torch.Tensor
    labels: torch.Tensor
    iou: torch.Tensor


def match_by_iou(gt_boxes: torch.Tensor, boxes: torch.Tensor, high: float, low: float,
                 keep_best_matches: bool) -> Matches:
    """Match reference `boxes` [R, 4] to `gt_boxes` [G, 4] (see the module docstring)."""
    num = boxes.shape[0]
    if gt_boxes.shape[0] == 0:  # an image without persons: everything is background
        return Matches(torch.zeros(num, dtype=torch.int64, device=boxes.device),
                       torch.full((num,), NEGATIVE, dtype=torch.int8, device=boxes.device),
                       torch.zeros(num, device=boxes.device))
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
    return Matches(gt_index, labels, best_iou)


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
