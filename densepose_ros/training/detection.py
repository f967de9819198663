"""Training forward of DensePose R-CNN: RPN, box-head and DensePose losses of one batch.

Runs the model's own modules (``densepose_ros.modeling``) the way detectron2 trains them:

- **RPN**: every anchor is matched to the persons (IoU >= 0.7 positive, < 0.3 negative,
  in between ignored; each person's best anchors positive too); 256 anchors per image are
  drawn, at most half positive. Objectness: binary cross-entropy; box deltas: L1
  (detectron2's smooth-L1 with beta 0) on the positives; both summed and divided by
  (images x 256).
- **Box head**: the RPN's proposals (no gradient flows back through them) plus the
  ground-truth boxes are matched at IoU 0.5; 512 per image are drawn, at most 25 %
  foreground. Classification: cross-entropy over the drawn RoIs; box deltas (weights
  10, 10, 5, 5): L1 on the foreground, summed and divided by the number drawn.
- **DensePose**: the drawn foreground RoIs whose person has DensePose annotations, with
  their matched persons, go through ``gather_chart_targets`` / ``densepose_chart_losses``.
- **Keypoints** (models with a keypoint head): the drawn foreground RoIs of persons with
  keypoints; each visible keypoint inside its RoI is a class among the H x W heatmap cells
  (Mask R-CNN): cross-entropy over the cells, divided by the number of such keypoints. With
  cross-talk the DensePose loss also trains the keypoint head through its heatmaps.

Crowd regions are left out of matching, as detectron2's dataset mapper drops them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from densepose_ros.data.batching import ImageTargets, TrainingBatch
from densepose_ros.modeling.box_ops import encode_boxes
from densepose_ros.modeling.model import ROI_LEVELS, RPN_LEVELS, DensePoseRCNN
from densepose_ros.training.distributed import mean_share
from densepose_ros.training.losses import (
    DensePoseLossWeights,
    densepose_chart_losses,
    gather_chart_targets,
)
from densepose_ros.training.matching import POSITIVE, match_by_iou, sample_balanced


@dataclass
class DetectionTrainingConfig:
    """Anchor / RoI matching and sampling of the detection losses (detectron2 defaults)."""

    # Anchors at IoU >= high with a person are positive, < low negative (RPN.IOU_THRESHOLDS).
    rpn_iou_high: float = 0.7
    rpn_iou_low: float = 0.3
    # Anchors drawn per image and the largest positive share (RPN.BATCH_SIZE_PER_IMAGE, ...).
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    # Proposals at IoU >= this with a person are foreground (ROI_HEADS.IOU_THRESHOLDS).
    roi_foreground_iou: float = 0.5
    # Of those, the DensePose head trains on the ones above this IoU with a person that has
    # DensePose annotations (ROI_DENSEPOSE_HEAD.FG_IOU_THRESHOLD, DensePoseDataFilter).
    densepose_iou: float = 0.7
    # RoIs drawn per image and the largest foreground share (ROI_HEADS.BATCH_SIZE_PER_IMAGE).
    roi_batch_size_per_image: int = 512
    roi_positive_fraction: float = 0.25
    # Weights of the detection losses (detectron2: all 1).
    rpn_cls_weight: float = 1.0
    rpn_loc_weight: float = 1.0
    box_cls_weight: float = 1.0
    box_reg_weight: float = 1.0
    # DensePose loss weights; defaults are the non-legacy s1x ones.
    densepose: DensePoseLossWeights = field(default_factory=DensePoseLossWeights)
    # Keypoint loss weight (ROI_KEYPOINT_HEAD.LOSS_WEIGHT, loss normalised by the visible
    # keypoints).
    keypoint_weight: float = 1.0


@dataclass
class ForegroundRoIs:
    """Foreground RoIs the DensePose head trained on, per image.

    Attributes:
        boxes: per image [Fi, 4] float (x1, y1, x2, y2) input pixels.
        gt_index: per image [Fi] int64 index of the matched person in the image's
            ``ImageTargets`` (crowds included in the numbering).
        iou: per image [Fi] float IoU of each RoI with that person.
    """

    boxes: list[torch.Tensor]
    gt_index: list[torch.Tensor]
    iou: list[torch.Tensor]


@dataclass
class TrainingStepOutput:
    """Losses of one batch and what they were computed on.

    Attributes:
        losses: name -> weighted scalar loss (``loss_rpn_cls``, ``loss_rpn_loc``,
            ``loss_cls``, ``loss_box_reg``, ``loss_densepose_{U,V,I,S}``).
        foreground: the foreground RoIs with DensePose annotations (DensePose head input).
        num_positive_anchors: positive anchors drawn over the batch.
        num_foreground_rois: foreground RoIs drawn over the batch (with or without
            DensePose annotations).
    """

    losses: dict[str, torch.Tensor]
    foreground: ForegroundRoIs
    num_positive_anchors: int
    num_foreground_rois: int

    def total(self) -> torch.Tensor:
        return torch.stack(list(self.losses.values())).sum()


def _person_boxes(targets: ImageTargets) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [G, 4] of the non-crowd persons and their indices [G] in ``targets``."""
    keep = torch.nonzero(~targets.is_crowd).flatten()
    return targets.boxes[keep].float(), keep


def rpn_losses(model: DensePoseRCNN, features: dict[str, torch.Tensor],
               targets: list[ImageTargets], cfg: DetectionTrainingConfig,
               generator: torch.Generator | None = None
               ) -> tuple[dict[str, torch.Tensor], int]:
    """Objectness and anchor-delta losses of the RPN, and the number of positive anchors."""
    rpn = model.proposal_generator
    logits_levels, deltas_levels, anchors_levels = [], [], []
    for level, name in enumerate(RPN_LEVELS):
        feature = features[name]
        logits, deltas = rpn.rpn_head(feature)
        logits_levels.append(logits)
        deltas_levels.append(deltas)
        anchors_levels.append(rpn.anchors(level, feature.shape[2], feature.shape[3],
                                          feature.device))
    logits = torch.cat(logits_levels, dim=1)  # [B, A]
    deltas = torch.cat(deltas_levels, dim=1)  # [B, A, 4]
    anchors = torch.cat(anchors_levels)  # [A, 4]

    picked_logits, picked_labels, pos_deltas, pos_targets = [], [], [], []
    for i, image_targets in enumerate(targets):
        gt, _ = _person_boxes(image_targets)
        matches = match_by_iou(gt, anchors, cfg.rpn_iou_high, cfg.rpn_iou_low,
                               keep_best_matches=True)
        positive, negative = sample_balanced(matches.labels, cfg.rpn_batch_size_per_image,
                                             cfg.rpn_positive_fraction, generator)
        picked = torch.cat([positive, negative])
        picked_logits.append(logits[i, picked])
        picked_labels.append((matches.labels[picked] == POSITIVE).float())
        pos_deltas.append(deltas[i, positive])
        pos_targets.append(encode_boxes(anchors[positive], gt[matches.gt_index[positive]],
                                        rpn.cfg.box_reg_weights))
    normalizer = float(len(targets) * cfg.rpn_batch_size_per_image)
    loss_cls = F.binary_cross_entropy_with_logits(
        torch.cat(picked_logits), torch.cat(picked_labels), reduction="sum") / normalizer
    pos_deltas_all = torch.cat(pos_deltas)
    loss_loc = F.l1_loss(pos_deltas_all, torch.cat(pos_targets), reduction="sum") / normalizer
    losses = {"loss_rpn_cls": loss_cls * cfg.rpn_cls_weight,
              "loss_rpn_loc": loss_loc * cfg.rpn_loc_weight}
    return losses, int(pos_deltas_all.shape[0])


def box_head_losses(model: DensePoseRCNN, features: dict[str, torch.Tensor],
                    proposals: list[torch.Tensor], targets: list[ImageTargets],
                    cfg: DetectionTrainingConfig, generator: torch.Generator | None = None
                    ) -> tuple[dict[str, torch.Tensor], ForegroundRoIs]:
    """Classification and box-delta losses of the box head, and the foreground RoIs drawn.

    `proposals` are per image [Ri, 4] RPN boxes (detached); the persons' own boxes are
    added to them so the head sees well-placed foreground from the first iteration."""
    heads = model.roi_heads
    num_classes = heads.cfg.num_classes
    sampled_boxes, class_targets, fg_counts, reg_targets = [], [], [], []
    fg_boxes, fg_gt, fg_iou = [], [], []
    for image_proposals, image_targets in zip(proposals, targets, strict=True):
        gt, gt_keep = _person_boxes(image_targets)
        candidates = torch.cat([image_proposals.detach().float(), gt])
        matches = match_by_iou(gt, candidates, cfg.roi_foreground_iou, cfg.roi_foreground_iou,
                               keep_best_matches=False)
        positive, negative = sample_balanced(matches.labels, cfg.roi_batch_size_per_image,
                                             cfg.roi_positive_fraction, generator)
        # foreground first: rows 0..len(positive)-1 of each image's drawn RoIs
        sampled_boxes.append(candidates[torch.cat([positive, negative])])
        labels = torch.full((positive.numel() + negative.numel(),), num_classes,
                            dtype=torch.int64, device=candidates.device)
        labels[:positive.numel()] = 0  # the one foreground class: person
        class_targets.append(labels)
        fg_counts.append(positive.numel())
        matched = matches.gt_index[positive]
        reg_targets.append(encode_boxes(candidates[positive], gt[matched],
                                        heads.cfg.box_reg_weights))
        fg_boxes.append(candidates[positive])
        fg_gt.append(gt_keep[matched])
        fg_iou.append(matches.iou[positive])
    logits, deltas = heads.head_outputs(
        heads.pool([features[n] for n in ROI_LEVELS], sampled_boxes))
    labels_all = torch.cat(class_targets)
    share = mean_share(labels_all.numel())  # normalised over the global batch
    loss_cls = F.cross_entropy(logits, labels_all) * share
    fg_rows = torch.nonzero(labels_all < num_classes).flatten()
    fg_classes = labels_all[fg_rows]
    num_reg = deltas.shape[1] // 4  # 1 when class-agnostic
    columns = (fg_classes if num_reg > 1 else torch.zeros_like(fg_classes))[:, None] * 4 \
        + torch.arange(4, device=deltas.device)
    fg_deltas = deltas[fg_rows[:, None], columns]
    loss_reg = F.l1_loss(fg_deltas, torch.cat(reg_targets), reduction="sum") \
        / max(1, labels_all.numel()) * share
    losses = {"loss_cls": loss_cls * cfg.box_cls_weight,
              "loss_box_reg": loss_reg * cfg.box_reg_weight}
    return losses, ForegroundRoIs(fg_boxes, fg_gt, fg_iou)


def training_step_losses(model: DensePoseRCNN, batch: TrainingBatch,
                         cfg: DetectionTrainingConfig | None = None,
                         generator: torch.Generator | None = None) -> TrainingStepOutput:
    """All losses of one batch (model in train mode; batch and model on the same device)."""
    cfg = cfg or DetectionTrainingConfig()
    features = model.backbone_features(batch.images)
    rpn, num_positive_anchors = rpn_losses(model, features, batch.targets, cfg, generator)
    with torch.no_grad():  # detectron2 does not back-propagate through proposal boxes
        proposals = [boxes for boxes, _ in model.propose(features, batch.image_sizes)]
    box, foreground = box_head_losses(model, features, proposals, batch.targets, cfg,
                                      generator)
    num_foreground = sum(b.shape[0] for b in foreground.boxes)
    # Only well-placed RoIs of persons with DensePose points/masks feed the DensePose head.
    dense_boxes, dense_gt, dense_iou = [], [], []
    for boxes, gt_index, iou, image_targets in zip(foreground.boxes, foreground.gt_index,
                                                   foreground.iou, batch.targets, strict=True):
        keep = image_targets.has_dense[gt_index] & (iou > cfg.densepose_iou)
        dense_boxes.append(boxes[keep])
        dense_gt.append(gt_index[keep])
        dense_iou.append(iou[keep])
    roi_index, chart_targets = gather_chart_targets(batch.targets, dense_boxes, dense_gt)
    charts = model.densepose_on_boxes(features, dense_boxes)[roi_index]
    dense = densepose_chart_losses(charts.coarse_segm, charts.fine_segm, charts.u, charts.v,
                                   chart_targets, cfg.densepose)
    losses = {**rpn, **box, **dense.as_dict()}
    if model.cfg.keypoints.enabled:
        losses["loss_keypoint"] = keypoint_loss(model, features, foreground,
                                                batch.targets) * cfg.keypoint_weight
    return TrainingStepOutput(losses, ForegroundRoIs(dense_boxes, dense_gt, dense_iou),
                              num_positive_anchors, num_foreground)


def keypoint_heatmap_targets(boxes: torch.Tensor, keypoints: torch.Tensor, size: int
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per RoI and keypoint the heatmap cell (row * size + col) of the keypoint and whether
    it counts (visible and inside the RoI), for RoIs [R, 4] and their persons' keypoints
    [R, K, 3] (x, y, visibility), as detectron2's ``Keypoints.to_heatmap``."""
    x0, y0 = boxes[:, 0:1], boxes[:, 1:2]
    scale_x = size / (boxes[:, 2:3] - x0).clamp(min=1e-6)
    scale_y = size / (boxes[:, 3:4] - y0).clamp(min=1e-6)
    x, y = keypoints[..., 0], keypoints[..., 1]
    col = ((x - x0) * scale_x).floor().long()
    row = ((y - y0) * scale_y).floor().long()
    col[x == boxes[:, 2:3]] = size - 1  # a keypoint on the right/bottom edge is inside
    row[y == boxes[:, 3:4]] = size - 1
    valid = (col >= 0) & (row >= 0) & (col < size) & (row < size) & (keypoints[..., 2] > 0)
    return (row * size + col) * valid, valid


def keypoint_loss(model: DensePoseRCNN, features: dict[str, torch.Tensor],
                  foreground: ForegroundRoIs, targets: list[ImageTargets]) -> torch.Tensor:
    """Mask R-CNN's keypoint loss on the foreground RoIs (see the module docstring)."""
    heatmaps = model.keypoint_heatmaps(features, foreground.boxes)
    size = heatmaps.shape[-1]
    cells, valid = [], []
    for boxes, gt_index, image_targets in zip(foreground.boxes, foreground.gt_index, targets,
                                              strict=True):
        cell, ok = keypoint_heatmap_targets(boxes, image_targets.keypoints[gt_index], size)
        cells.append(cell)
        valid.append(ok)
    cells, valid = torch.cat(cells).flatten(), torch.cat(valid).flatten()
    share = mean_share(valid.sum())  # before the branch: every process calls it
    if not valid.any():  # keep the graph connected: a zero that still has gradients
        return heatmaps.sum() * 0.0
    logits = heatmaps.flatten(2).flatten(0, 1)  # [R * K, size * size]
    return F.cross_entropy(logits[valid], cells[valid], reduction="sum") / valid.sum() * share
