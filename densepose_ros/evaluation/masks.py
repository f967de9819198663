"""Person masks in image pixels, for GPSm and mask IoU.

The annotated mask is the union of the 14 ``dp_masks`` (256 x 256 over the box) resized
to the box (bilinear, threshold 0.5), else the COCO ``segmentation``; the predicted mask
is the foreground of the detection's IUV labels resized to its box.
"""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from densepose_ros.data.coco import InstanceAnnotation
from densepose_ros.inference.postprocess import PersonIUV, image_overlap


def _paste(patch: np.ndarray, x0: int, y0: int, height: int, width: int) -> np.ndarray:
    """Place a [h, w] patch with its top-left at (x0, y0) in an empty image, clipped."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    h, w = patch.shape
    overlap = image_overlap((x0, y0, x0 + w, y0 + h), height, width)
    if overlap is not None:
        canvas[overlap.image] = patch[overlap.patch]
    return canvas


def annotation_mask(instance: InstanceAnnotation, height: int, width: int) -> np.ndarray:
    """[height, width] uint8 0/1 mask of an annotated person (empty if none is given)."""
    dense = instance.dense
    if dense is not None and dense.masks is not None:
        union = (dense.coarse_label_map() > 0).astype(np.float32)
        x, y, w, h = instance.bbox_xywh
        size = (max(int(w), 1), max(int(h), 1))
        resized = cv2.resize(union, size, interpolation=cv2.INTER_LINEAR) > 0.5
        return _paste(resized.astype(np.uint8), int(x), int(y), height, width)
    segmentation = instance.segmentation
    if isinstance(segmentation, list) and segmentation:
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        return mask_utils.decode(rle).astype(np.uint8)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            counts = segmentation["counts"]
            rle = {"size": segmentation["size"],
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(np.uint8)
    return np.zeros((height, width), dtype=np.uint8)


def prediction_mask(person: PersonIUV, height: int, width: int) -> np.ndarray:
    """[height, width] uint8 0/1 foreground of a detection, its IUV placed on its box."""
    x1, y1, x2, y2 = (int(c) for c in person.box)
    size = (max(x2 - x1, 1), max(y2 - y1, 1))
    foreground = (person.labels > 0).astype(np.uint8)
    if foreground.shape[::-1] != size:
        foreground = cv2.resize(foreground, size, interpolation=cv2.INTER_NEAREST)
    return _paste(foreground, int(x1), int(y1), height, width)


def mask_iou_matrix(pred_masks: list[np.ndarray], gt_masks: list[np.ndarray],
                    gt_crowd: np.ndarray) -> np.ndarray:
    """[D, G] IoU of predicted and annotated masks (crowd: intersection over prediction)."""
    if not pred_masks or not gt_masks:
        return np.zeros((len(pred_masks), len(gt_masks)))
    def encode(masks):
        return [mask_utils.encode(np.asfortranarray(m)) for m in masks]

    ious = mask_utils.iou(encode(pred_masks), encode(gt_masks),
                          [int(c) for c in gt_crowd])
    return np.asarray(ious, dtype=np.float64).reshape(len(pred_masks), len(gt_masks))
