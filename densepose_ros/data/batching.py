"""Batching training samples into tensors (a ``DataLoader`` ``collate_fn``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from densepose_ros.data.coco import DP_FRAME_SIZE, NUM_CHARTS
from densepose_ros.data.transforms import Sample
from densepose_ros.inference.preprocess import network_batch
from densepose_ros.modeling.config import InputConfig

NUM_KEYPOINTS = 17


@dataclass
class ImageTargets:
    """Ground truth of one batch image (N persons, P DensePose points in all).

    Attributes:
        boxes: [N, 4] float32 (x1, y1, x2, y2) in pixels of the (resized) network input.
        is_crowd: [N] bool crowd regions (to be ignored by box/RPN matching).
        has_dense: [N] bool persons with DensePose points.
        point_instance: [P] int64 person (0..N-1) of each point.
        point_xy: [P, 2] float32 point (x, y) on the 256 x 256 frame of its person's box.
        point_part: [P] int64 chart I of each point, 1..24.
        point_uv: [P, 2] float32 chart coordinates (U, V).
        point_uv_weight: [P] float32 weight of each point's U/V loss (1 for annotations).
        point_probs: [P, 25] float32 soft part targets where ``point_is_soft``, else 0.
        point_is_soft: [P] bool points with soft part targets (distillation).
        segm: [N, 256, 256] uint8 coarse part labels over each box (0 background, 1..14);
            zeros where ``has_segm`` is False.
        has_segm: [N] bool persons with part masks.
        keypoints: [N, 17, 3] float32 COCO keypoints (x, y, visibility) in input pixels;
            visibility 0 where unknown.
    """

    boxes: torch.Tensor
    is_crowd: torch.Tensor
    has_dense: torch.Tensor
    point_instance: torch.Tensor
    point_xy: torch.Tensor
    point_part: torch.Tensor
    point_uv: torch.Tensor
    point_uv_weight: torch.Tensor
    point_probs: torch.Tensor
    point_is_soft: torch.Tensor
    segm: torch.Tensor
    has_segm: torch.Tensor
    keypoints: torch.Tensor

    def to(self, device: torch.device | str) -> ImageTargets:
        return ImageTargets(**{name: getattr(self, name).to(device)
                               for name in self.__dataclass_fields__})


@dataclass
class TrainingBatch:
    """A batch of B images for the model.

    Attributes:
        images: [B, 3, Hp, Wp] float32 normalised network input (``InputConfig`` mean/std,
            colour order), zero-padded at the bottom/right to the size divisibility.
        image_sizes: B (height, width) of each unpadded input.
        targets: B ``ImageTargets``.
        image_ids: B ids in their annotation files.
        sources: B dataset names.
    """

    images: torch.Tensor
    image_sizes: list[tuple[int, int]]
    targets: list[ImageTargets]
    image_ids: list[int]
    sources: list[str]


def sample_targets(sample: Sample) -> ImageTargets:
    """Tensors of one sample's ground truth."""
    n = len(sample.instances)
    boxes = np.zeros((n, 4), np.float32)
    segm = np.zeros((n, DP_FRAME_SIZE, DP_FRAME_SIZE), np.uint8)
    has_segm = np.zeros(n, bool)
    keypoints = np.zeros((n, NUM_KEYPOINTS, 3), np.float32)
    point_instance, point_xy, point_part, point_uv = [], [], [], []
    point_uv_weight, point_probs, point_is_soft = [], [], []
    has_dense = np.zeros(n, bool)
    for k, inst in enumerate(sample.instances):
        boxes[k] = inst.box
        if inst.keypoints is not None and inst.keypoints.shape == (NUM_KEYPOINTS, 3):
            keypoints[k] = inst.keypoints
        dense = inst.dense
        if dense is None or not len(dense.part):
            continue
        has_dense[k] = True
        point_instance.append(np.full(len(dense.part), k, np.int64))
        point_xy.append(np.stack([dense.x, dense.y], axis=1).astype(np.float32))
        point_part.append(dense.part.astype(np.int64))
        point_uv.append(np.stack([dense.u, dense.v], axis=1).astype(np.float32))
        count = len(dense.part)
        point_uv_weight.append(np.ones(count, np.float32) if dense.uv_weight is None
                               else dense.uv_weight.astype(np.float32))
        soft = dense.part_probs is not None
        point_probs.append(dense.part_probs.astype(np.float32) if soft
                           else np.zeros((count, NUM_CHARTS + 1), np.float32))
        point_is_soft.append(np.full(count, soft))
        if dense.segm is not None:
            segm[k] = dense.segm
            has_segm[k] = True

    def cat(parts, shape, dtype):
        return torch.from_numpy(np.concatenate(parts) if parts else np.zeros(shape, dtype))

    return ImageTargets(
        boxes=torch.from_numpy(boxes),
        is_crowd=torch.tensor([inst.is_crowd for inst in sample.instances], dtype=torch.bool),
        has_dense=torch.from_numpy(has_dense),
        point_instance=cat(point_instance, (0,), np.int64),
        point_xy=cat(point_xy, (0, 2), np.float32),
        point_part=cat(point_part, (0,), np.int64),
        point_uv=cat(point_uv, (0, 2), np.float32),
        point_uv_weight=cat(point_uv_weight, (0,), np.float32),
        point_probs=cat(point_probs, (0, NUM_CHARTS + 1), np.float32),
        point_is_soft=cat(point_is_soft, (0,), np.bool_),
        segm=torch.from_numpy(segm), has_segm=torch.from_numpy(has_segm),
        keypoints=torch.from_numpy(keypoints))


def collate_samples(samples: list[Sample], input_config: InputConfig | None = None
                    ) -> TrainingBatch:
    """Normalise, pad and stack the images; turn each sample's ground truth into tensors."""
    cfg = input_config or InputConfig()
    sizes = [(s.image.shape[0], s.image.shape[1]) for s in samples]
    # Samples hold BGR images, as decoded by OpenCV.
    images = network_batch([s.image for s in samples], cfg, color_order="BGR")
    return TrainingBatch(images=images, image_sizes=sizes,
                         targets=[sample_targets(s) for s in samples],
                         image_ids=[s.image_id for s in samples],
                         sources=[s.source for s in samples])
