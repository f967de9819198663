"""DensePose chart losses, as detectron2 computes them.

For R RoIs (proposals matched to annotated persons) with predictor outputs on an M x M grid
spanning each RoI:

- U, V: smooth-L1 (beta 1) summed over the annotated foreground points inside the RoI,
  with the prediction of the annotated chart bilinearly interpolated at the point,
  times ``points`` (0.01; legacy 0.1);
- I: cross-entropy of the 25 fine-segmentation logits, bilinearly interpolated at every
  annotated point inside the RoI, averaged over those points, times ``part`` (1.0; legacy
  0.3);
- S: cross-entropy of the coarse segmentation over the M x M grid against the part masks
  resampled from the annotation box into the RoI (nearest), averaged over pixels, times
  ``segm`` (5.0; legacy 2.0); with 2 channels the 14 parts collapse to foreground.

Points are mapped from the 256 frame of the annotation box into the RoI grid the way
detectron2 does: grid position = (image position - RoI start) * M / RoI size, lower and
upper neighbours clamped to the grid, points outside the RoI left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from densepose_ros.data.batching import ImageTargets
from densepose_ros.data.coco import DP_FRAME_SIZE, NUM_CHARTS
from densepose_ros.training.distributed import mean_share, sum_share


@dataclass
class DensePoseLossWeights:
    """Loss weights (detectron2 names: POINT_REGRESSION_WEIGHTS, PART_WEIGHTS, INDEX_WEIGHTS).

    Defaults are the non-legacy ``densepose_rcnn_R_50_FPN_s1x``; ``legacy()`` gives the
    ``_legacy`` configs' values.
    """

    points: float = 0.01
    part: float = 1.0
    segm: float = 5.0

    @classmethod
    def legacy(cls) -> DensePoseLossWeights:
        return cls(points=0.1, part=0.3, segm=2.0)


@dataclass
class ChartTargets:
    """Ground truth of R RoIs, packed (P points in all).

    Attributes:
        roi_boxes: [R, 4] float (x1, y1, x2, y2) boxes the predictor outputs span.
        gt_boxes: [R, 4] float (x1, y1, x2, y2) boxes of the matched annotated persons.
        point_roi: [P] int64 RoI (0..R-1) of each point.
        point_xy: [P, 2] float point (x, y) on the 256 frame of the matched annotation box.
        point_part: [P] int64 annotated chart 1..24.
        point_uv: [P, 2] float annotated (U, V).
        segm: [R, 256, 256] int64 coarse part labels over the annotation box (0..14).
        has_segm: [R] bool RoIs whose annotation has part masks.
        point_uv_weight: [P] float weight of each point's U/V loss (None: 1).
        point_probs: [P, 25] float soft part targets where ``point_is_soft`` (None: none).
        point_is_soft: [P] bool points whose part target is ``point_probs`` (None: none).
    """

    roi_boxes: torch.Tensor
    gt_boxes: torch.Tensor
    point_roi: torch.Tensor
    point_xy: torch.Tensor
    point_part: torch.Tensor
    point_uv: torch.Tensor
    segm: torch.Tensor
    has_segm: torch.Tensor
    point_uv_weight: torch.Tensor | None = None
    point_probs: torch.Tensor | None = None
    point_is_soft: torch.Tensor | None = None


@dataclass
class DensePoseLosses:
    """The four weighted DensePose losses (scalar tensors, weights applied)."""

    loss_densepose_U: torch.Tensor
    loss_densepose_V: torch.Tensor
    loss_densepose_I: torch.Tensor
    loss_densepose_S: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)

    def total(self) -> torch.Tensor:
        return (self.loss_densepose_U + self.loss_densepose_V + self.loss_densepose_I
                + self.loss_densepose_S)


def gather_chart_targets(targets: list[ImageTargets], roi_boxes: list[torch.Tensor],
                         matched_gt: list[torch.Tensor]) -> tuple[torch.Tensor, ChartTargets]:
    """Pack the ground truth of the RoIs matched to annotated persons.

    Args:
        targets: per image, the batch's ``ImageTargets``.
        roi_boxes: per image, [Ri, 4] boxes (x1, y1, x2, y2) the DensePose head ran on.
        matched_gt: per image, [Ri] int64 index of the matched ground-truth person, -1 for
            none (background RoIs).

    Returns:
        (roi_index, targets): [R] int64 positions, in the concatenation of all images' RoIs,
        of the RoIs matched to persons with DensePose points (select the predictor outputs
        with it), and their ``ChartTargets``.
    """
    index, rois, gts, segms, has_segm = [], [], [], [], []
    point_roi, point_xy, point_part, point_uv = [], [], [], []
    point_uv_weight, point_probs, point_is_soft = [], [], []
    offset, count = 0, 0
    for image_targets, boxes, matches in zip(targets, roi_boxes, matched_gt, strict=True):
        matches = matches.to(torch.int64)
        valid = matches >= 0
        valid[valid.clone()] = image_targets.has_dense[matches[valid]]
        for k in torch.nonzero(valid).flatten().tolist():
            g = int(matches[k])
            index.append(offset + k)
            rois.append(boxes[k])
            gts.append(image_targets.boxes[g])
            segms.append(image_targets.segm[g].to(torch.int64))
            has_segm.append(bool(image_targets.has_segm[g]))
            of_gt = image_targets.point_instance == g
            point_roi.append(torch.full((int(of_gt.sum()),), count, dtype=torch.int64))
            point_xy.append(image_targets.point_xy[of_gt])
            point_part.append(image_targets.point_part[of_gt])
            point_uv.append(image_targets.point_uv[of_gt])
            point_uv_weight.append(image_targets.point_uv_weight[of_gt])
            point_probs.append(image_targets.point_probs[of_gt])
            point_is_soft.append(image_targets.point_is_soft[of_gt])
            count += 1
        offset += boxes.shape[0]
    device = roi_boxes[0].device if roi_boxes else torch.device("cpu")

    def stack(items, shape, dtype=torch.float32):
        return torch.stack(items).to(device) if items else torch.zeros(shape, dtype=dtype,
                                                                       device=device)

    def cat(items, shape, dtype=torch.float32):
        return torch.cat(items).to(device) if items else torch.zeros(shape, dtype=dtype,
                                                                     device=device)

    return torch.tensor(index, dtype=torch.int64, device=device), ChartTargets(
        roi_boxes=stack(rois, (0, 4)), gt_boxes=stack(gts, (0, 4)),
        point_roi=cat(point_roi, (0,), torch.int64), point_xy=cat(point_xy, (0, 2)),
        point_part=cat(point_part, (0,), torch.int64), point_uv=cat(point_uv, (0, 2)),
        segm=stack(segms, (0, DP_FRAME_SIZE, DP_FRAME_SIZE), torch.int64),
        has_segm=torch.tensor(has_segm, dtype=torch.bool, device=device),
        point_uv_weight=cat(point_uv_weight, (0,)),
        point_probs=cat(point_probs, (0, NUM_CHARTS + 1)),
        point_is_soft=cat(point_is_soft, (0,), torch.bool))


@dataclass
class PointSampling:
    """Bilinear sampling positions of P points on the M x M grids of their RoIs.

    Attributes:
        valid: [P] bool, the point lies inside its RoI.
        x_lo, x_hi, y_lo, y_hi: [P] int64 neighbouring grid columns / rows.
        w_x, w_y: [P] float interpolation weights of the upper neighbours.
    """

    valid: torch.Tensor
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    y_lo: torch.Tensor
    y_hi: torch.Tensor
    w_x: torch.Tensor
    w_y: torch.Tensor


def _axis_sampling(pos_frame, gt_start, gt_size, roi_start, roi_size, grid):
    position = gt_start + pos_frame * gt_size / DP_FRAME_SIZE
    inside = (position >= roi_start) & (position < roi_start + roi_size)
    scaled = (position - roi_start) * grid / roi_size
    lo = scaled.floor().long().clamp(0, grid - 1)
    hi = (lo + 1).clamp(max=grid - 1)
    weight = torch.minimum(hi.to(scaled.dtype), scaled) - lo.to(scaled.dtype)
    return inside, lo, hi, weight


def point_sampling(targets: ChartTargets, grid_size: int) -> PointSampling:
    """Where each annotated point falls on its RoI's output grid."""
    roi = targets.roi_boxes[targets.point_roi]
    gt = targets.gt_boxes[targets.point_roi]
    in_x, x_lo, x_hi, w_x = _axis_sampling(targets.point_xy[:, 0], gt[:, 0], gt[:, 2] - gt[:, 0],
                                           roi[:, 0], roi[:, 2] - roi[:, 0], grid_size)
    in_y, y_lo, y_hi, w_y = _axis_sampling(targets.point_xy[:, 1], gt[:, 1], gt[:, 3] - gt[:, 1],
                                           roi[:, 1], roi[:, 3] - roi[:, 1], grid_size)
    return PointSampling(in_x & in_y, x_lo, x_hi, y_lo, y_hi, w_x, w_y)


def sample_at_points(values: torch.Tensor, rois: torch.Tensor, s: PointSampling) -> torch.Tensor:
    """Bilinear interpolation of [R, C, M, M] ``values`` at the points: [P, C]."""
    def at(y, x):
        return values[rois, :, y, x]

    wx, wy = s.w_x[:, None], s.w_y[:, None]
    return (at(s.y_lo, s.x_lo) * (1 - wx) * (1 - wy) + at(s.y_lo, s.x_hi) * wx * (1 - wy)
            + at(s.y_hi, s.x_lo) * (1 - wx) * wy + at(s.y_hi, s.x_hi) * wx * wy)


def resample_segm_to_rois(targets: ChartTargets, grid_size: int) -> torch.Tensor:
    """[R, M, M] int64 coarse labels of the annotation masks at the RoI grid positions.

    Grid cell (i, j) of a RoI reads the annotation mask at the image point
    ``roi start + (j, i) / M * roi size`` (nearest mask pixel, 0 outside the annotation box).
    """
    r = targets.roi_boxes.shape[0]
    roi, gt = targets.roi_boxes.float(), targets.gt_boxes.float()
    steps = torch.arange(grid_size, dtype=torch.float32, device=roi.device) / grid_size
    gt_w = (gt[:, 2] - gt[:, 0]).clamp(min=1e-6)
    gt_h = (gt[:, 3] - gt[:, 1]).clamp(min=1e-6)
    x = roi[:, 0, None] + steps[None] * (roi[:, 2] - roi[:, 0])[:, None]  # [R, M]
    y = roi[:, 1, None] + steps[None] * (roi[:, 3] - roi[:, 1])[:, None]
    # grid_sample with align_corners=True: -1 and +1 are the centres of mask pixels 0 and 255.
    x_norm = 2 * (x - gt[:, 0, None]) / gt_w[:, None] - 1
    y_norm = 2 * (y - gt[:, 1, None]) / gt_h[:, None] - 1
    grid = torch.stack([x_norm[:, None, :].expand(r, grid_size, grid_size),
                        y_norm[:, :, None].expand(r, grid_size, grid_size)], dim=3)
    labels = F.grid_sample(targets.segm[:, None].float(), grid, mode="nearest",
                           padding_mode="zeros", align_corners=True)
    return labels[:, 0].round().long()


def _part_loss(fine_at_points: torch.Tensor, part: torch.Tensor, targets: ChartTargets,
               valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the fine logits at the points, averaged over them: against the
    annotated chart, or against a teacher's probabilities where the point has soft
    targets (distillation)."""
    hard = F.cross_entropy(fine_at_points, part, reduction="none")
    if targets.point_is_soft is None or not bool(targets.point_is_soft[valid].any()):
        return hard.mean()
    soft = -(targets.point_probs[valid] * F.log_softmax(fine_at_points, dim=1)).sum(dim=1)
    return torch.where(targets.point_is_soft[valid], soft, hard).mean()


def densepose_chart_losses(coarse_segm: torch.Tensor, fine_segm: torch.Tensor, u: torch.Tensor,
                           v: torch.Tensor, targets: ChartTargets,
                           weights: DensePoseLossWeights | None = None) -> DensePoseLosses:
    """The weighted DensePose losses of R RoIs.

    Args:
        coarse_segm: [R, S, M, M] coarse segmentation logits (S = 2 or 15).
        fine_segm: [R, 25, M, M] fine segmentation logits.
        u, v: [R, 25, M, M] predicted U and V per chart.
        targets: the RoIs' ground truth (``gather_chart_targets``), in the same RoI order.
        weights: loss weights (default: non-legacy).

    Without any usable point (or mask) a loss is an exact zero that still depends on the
    outputs, so every parameter gets a (zero) gradient, as in detectron2.
    """
    weights = weights or DensePoseLossWeights()
    grid = u.shape[-1]
    zero_uv = (u.sum() + v.sum()) * 0.0
    sampling = point_sampling(targets, grid)
    valid = sampling.valid
    rois = targets.point_roi
    # shares of the global batch's means (training.distributed), taken before the branches
    # below: every process calls them
    point_share = mean_share(valid.sum())
    segm_share = mean_share(targets.has_segm.sum() if targets.has_segm.numel() else 0)
    if valid.any():
        valid_sampling = PointSampling(*(getattr(sampling, name)[valid] for name in
                                         ("valid", "x_lo", "x_hi", "y_lo", "y_hi", "w_x",
                                          "w_y")))
        part = targets.point_part[valid]
        fine_at_points = sample_at_points(fine_segm, rois[valid], valid_sampling)
        loss_i = _part_loss(fine_at_points, part, targets, valid) * weights.part * point_share
        foreground = part > 0
        chart = part[:, None]
        u_at = sample_at_points(u, rois[valid], valid_sampling).gather(1, chart)[:, 0]
        v_at = sample_at_points(v, rois[valid], valid_sampling).gather(1, chart)[:, 0]
        uv = targets.point_uv[valid]
        uv_weight = (torch.ones_like(uv[:, 0]) if targets.point_uv_weight is None
                     else targets.point_uv_weight[valid].to(uv.dtype))[foreground]
        loss_u = (F.smooth_l1_loss(u_at[foreground], uv[foreground, 0], reduction="none")
                  * uv_weight).sum()
        loss_v = (F.smooth_l1_loss(v_at[foreground], uv[foreground, 1], reduction="none")
                  * uv_weight).sum()
        loss_u, loss_v = (loss * weights.points * sum_share() for loss in (loss_u, loss_v))
    else:
        loss_i = fine_segm.sum() * 0.0
        loss_u = loss_v = zero_uv
    if targets.has_segm.any():
        labels = resample_segm_to_rois(targets, coarse_segm.shape[-1])[targets.has_segm]
        if coarse_segm.shape[1] == 2:
            labels = (labels > 0).long()
        loss_s = (F.cross_entropy(coarse_segm[targets.has_segm], labels) * weights.segm
                  * segm_share)
    else:
        loss_s = coarse_segm.sum() * 0.0
    return DensePoseLosses(loss_densepose_U=loss_u, loss_densepose_V=loss_v,
                           loss_densepose_I=loss_i, loss_densepose_S=loss_s)
