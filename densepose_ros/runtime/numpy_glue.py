"""The box bookkeeping between the exported graphs, in numpy: no torch in the process.

The CPU runtimes (onnxruntime, OpenVINO) return numpy arrays; importing PyTorch only for the
few hundred boxes between their graphs cost the node 630-650 MB of resident memory (node at
640x480: 877 -> 250 MB after loading; ``import torch, torchvision`` alone is 780 MB max RSS on
the development VM, numpy + OpenCV + SciPy 95 MB). These are ports of the eager model's own
selection code, which stays the reference: ``test/test_numpy_glue.py`` checks each against it.

- ``select_proposals``: ``RPN.select_proposals`` (anchors, top-k per level, decode, clip,
  per-level NMS);
- ``select_detections``: ``BoxStage.select_detections`` (softmax, decode, clip, threshold,
  NMS, top detections);
- ``MultiLevelRoIAlign``: torchvision's ``roi_align`` with FPN level routing. Bilinear
  sampling is separable, so each box's pooled map is two small matrix products,
  ``Wy @ F @ Wx.T``, with the per-axis sample weights (sampling grid, averaging and
  torchvision's border rules folded in);
- ``heatmaps_to_keypoints``: the keypoint decoding, its bicubic resize as per-axis matrices
  (``inference.resample``, which also resizes the cross-talk heatmaps).

All float32, as the torch code; results agree with it up to float rounding (summation order).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from densepose_ros.inference.resample import bicubic_matrix, resize_separable
from densepose_ros.modeling.config import (
    BoxHeadConfig,
    KeypointHeadConfig,
    PoolerGeometry,
    RPNConfig,
)

log = logging.getLogger(__name__)


def single_threaded_blas() -> None:
    """numpy's BLAS (OpenBLAS) to one thread, process-wide. The glue's matrix products are
    small, and OpenBLAS's idle threads spin on the cores the graph runtime needs: in the node
    at 640x480 (OpenVINO bf16) 19.9 -> 24.9 fps, node CPU 187 -> 139 %, inference 45 -> 33 ms.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # requirements/core.txt installs it; without it only slower
        log.warning("threadpoolctl is not installed: numpy's BLAS threads may compete with "
                    "the inference runtime for the CPU")
        return
    threadpool_limits(1, user_api="blas")


# ---- boxes -------------------------------------------------------------------------------

def cell_anchors(size: float, aspect_ratios: tuple[float, ...]) -> np.ndarray:
    """Anchors [A, 4] of one size centred on (0, 0), one per aspect ratio (height / width)."""
    rows = []
    for ratio in aspect_ratios:
        w = math.sqrt(size**2.0 / ratio)
        h = ratio * w
        rows.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return np.array(rows, dtype=np.float32)


def grid_anchors(base: np.ndarray, height: int, width: int, stride: int,
                 offset: float) -> np.ndarray:
    """All anchors [height * width * A, 4] of one level, ordered (row, column, anchor)."""
    xs = np.arange(offset * stride, width * stride, stride, dtype=np.float32)
    ys = np.arange(offset * stride, height * stride, stride, dtype=np.float32)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
    shifts = np.stack((grid_x, grid_y, grid_x, grid_y), axis=1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


def decode_boxes(deltas: np.ndarray, boxes: np.ndarray,
                 weights: tuple[float, float, float, float], scale_clamp: float) -> np.ndarray:
    """Deltas [R, 4k] applied to reference boxes [R, 4] -> boxes [R, 4k] (``box_ops``)."""
    deltas = deltas.astype(np.float32, copy=False)
    boxes = boxes.astype(np.float32, copy=False)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + np.float32(0.5) * widths
    ctr_y = boxes[:, 1] + np.float32(0.5) * heights
    wx, wy, ww, wh = (np.float32(w) for w in weights)
    clamp = np.float32(scale_clamp)
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = np.minimum(deltas[:, 2::4] / ww, clamp)
    dh = np.minimum(deltas[:, 3::4] / wh, clamp)
    pred_x = dx * widths[:, None] + ctr_x[:, None]
    pred_y = dy * heights[:, None] + ctr_y[:, None]
    half_w = np.float32(0.5) * (np.exp(dw) * widths[:, None])
    half_h = np.float32(0.5) * (np.exp(dh) * heights[:, None])
    out = np.stack((pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h), -1)
    return out.reshape(deltas.shape)


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clamp xyxy boxes [..., 4] to the image (x in [0, width], y in [0, height])."""
    limits = np.array([width, height, width, height], dtype=np.float32)
    return np.clip(boxes, np.float32(0), limits)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression (torchvision's ``nms``): indices of the kept boxes,
    best score first; a box is dropped when its IoU with a kept one is above `threshold`."""
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return order
    b = boxes[order].astype(np.float32, copy=False)
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter_w = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    inter_h = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    inter = np.maximum(inter_w, 0) * np.maximum(inter_h, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        over = inter / (areas[:, None] + areas[None, :] - inter) > np.float32(threshold)
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= ~over[i, i + 1:]
    return order[keep]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                threshold: float) -> np.ndarray:
    """NMS within each group (torchvision's ``batched_nms``): kept indices, best first."""
    kept = [np.flatnonzero(groups == g)[nms(boxes[groups == g], scores[groups == g],
                                            threshold)] for g in np.unique(groups)]
    kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return kept[np.argsort(-scores[kept], kind="stable")]


def select_proposals(level_maps: list[tuple[np.ndarray, np.ndarray]],
                     image_size: tuple[int, int], cfg: RPNConfig, strides: tuple[int, ...],
                     scale_clamp: float, anchor_cache: dict | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Proposals [R, 4] and their objectness logits [R] of one image from the backbone
    graph's raw RPN maps (per level logits [1, A, H, W], deltas [1, 4A, H, W]), as the eager
    model's inference: top-k per level, decode, clip, drop small boxes, per-level NMS."""
    anchor_cache = {} if anchor_cache is None else anchor_cache
    top_scores, top_boxes, top_levels = [], [], []
    for level, (logit_map, delta_map) in enumerate(level_maps):
        _, a, h, w = logit_map.shape
        logits = logit_map[0].transpose(1, 2, 0).reshape(-1).astype(np.float32, copy=False)
        deltas = delta_map[0].reshape(a, 4, h, w).transpose(2, 3, 0, 1).reshape(-1, 4)
        key = (level, h, w)
        if key not in anchor_cache:
            if len(anchor_cache) > 64:  # input sizes vary little; bound the cache anyway
                anchor_cache.clear()
            anchor_cache[key] = grid_anchors(cell_anchors(cfg.anchor_sizes[level],
                                                          cfg.aspect_ratios),
                                             h, w, strides[level], cfg.anchor_offset)
        k = min(cfg.pre_nms_topk, logits.shape[0])
        # top-k, best first (torch.topk's order); decoding only the kept anchors
        index = np.argpartition(-logits, k - 1)[:k] if k < logits.shape[0] else \
            np.arange(logits.shape[0])
        index = index[np.argsort(-logits[index], kind="stable")]
        top_scores.append(logits[index])
        top_boxes.append(decode_boxes(deltas[index].astype(np.float32, copy=False),
                                      anchor_cache[key][index], cfg.box_reg_weights,
                                      scale_clamp))
        top_levels.append(np.full(k, level, dtype=np.int64))
    scores, boxes, levels = (np.concatenate(x) for x in (top_scores, top_boxes, top_levels))
    valid = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
    boxes = clip_boxes(boxes, *image_size)
    sides_ok = ((boxes[:, 2] - boxes[:, 0]) > cfg.min_box_size) & (
        (boxes[:, 3] - boxes[:, 1]) > cfg.min_box_size)
    boxes, scores, levels = boxes[sides_ok], scores[sides_ok], levels[sides_ok]
    keep = batched_nms(boxes, scores, levels, cfg.nms_threshold)[:cfg.post_nms_topk]
    return boxes[keep], scores[keep]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float32."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def select_detections(logits: np.ndarray, deltas: np.ndarray, proposals: np.ndarray,
                      image_size: tuple[int, int], cfg: BoxHeadConfig, scale_clamp: float,
                      score_threshold: float, nms_threshold: float, max_detections: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Detections [N, 4] and scores [N] of one image from the box-head graph's outputs
    (class logits [R, K+1], deltas [R, 4K]), as ``BoxStage.select_detections``."""
    probabilities = softmax(logits.astype(np.float32, copy=False))
    boxes = decode_boxes(deltas, proposals, cfg.box_reg_weights, scale_clamp)
    valid = np.isfinite(boxes).all(axis=1) & np.isfinite(probabilities).all(axis=1)
    boxes, scores = boxes[valid], probabilities[valid][:, :-1]  # background is the last class
    num_reg = boxes.shape[1] // 4
    boxes = clip_boxes(boxes.reshape(-1, 4), *image_size).reshape(-1, num_reg, 4)
    rows, cols = np.nonzero(scores > np.float32(score_threshold))
    boxes = boxes[rows, 0] if num_reg == 1 else boxes[rows, cols]
    scores = scores[rows, cols]
    keep = batched_nms(boxes, scores, cols, nms_threshold)[:max_detections]
    return boxes[keep], scores[keep]


# ---- RoIAlign -------------------------------------------------------------------------------

def assign_fpn_levels(boxes: np.ndarray, min_level: int, max_level: int,
                      canonical_size: float = 224.0, canonical_level: int = 4) -> np.ndarray:
    """Pyramid level index (0 = min_level) of each box [R, 4] (``box_ops.assign_fpn_levels``)."""
    sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = np.floor(canonical_level + np.log2(sizes / np.float32(canonical_size)
                                                + np.float32(1e-8)))
    return (np.clip(levels, min_level, max_level) - min_level).astype(np.int64)


def roi_align_weights(starts: np.ndarray, ends: np.ndarray, size: int, bins: int,
                      sampling_ratio: int, aligned: bool) -> np.ndarray:
    """Per-axis RoIAlign weights [R, bins, size]: row b of box r averages the bilinear
    samples of output bin b along this axis (torchvision's sample positions and border
    rules), so pooled = Wy @ feature @ Wx.T. `starts`/`ends` are the boxes' edges along the
    axis in feature-map pixels (already scaled, before the alignment offset)."""
    offset = np.float32(0.5 if aligned else 0.0)
    start = starts.astype(np.float32) - offset
    length = ends.astype(np.float32) - offset - start
    if not aligned:
        length = np.maximum(length, np.float32(1.0))
    bin_size = length / np.float32(bins)
    if sampling_ratio > 0:
        grid = np.full(len(starts), sampling_ratio, dtype=np.int64)
    else:
        grid = np.ceil(length / np.float32(bins)).astype(np.int64)
    most = max(int(grid.max()) if len(grid) else 1, 1)
    sample = np.arange(most, dtype=np.float32)
    b = np.arange(bins, dtype=np.float32)
    # [R, bins, most] sample positions; samples beyond a box's own grid weigh nothing
    safe_grid = np.maximum(grid, 1).astype(np.float32)
    pos = (start[:, None, None] + b[None, :, None] * bin_size[:, None, None]
           + (sample[None, None, :] + np.float32(0.5)) * bin_size[:, None, None]
           / safe_grid[:, None, None])
    used = (sample[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, np.float32(0.0))
    low = pos.astype(np.int64)
    at_edge = low >= size - 1
    low = np.where(at_edge, size - 1, low)
    high = np.where(at_edge, size - 1, low + 1)
    frac = np.where(at_edge, np.float32(0.0), pos - low.astype(np.float32))
    share = used / safe_grid[:, None, None]
    weights = np.zeros((len(starts), bins, size), dtype=np.float32)
    rows = np.arange(len(starts))[:, None, None]
    cols = b.astype(np.int64)[None, :, None]
    np.add.at(weights, (rows, cols, low), (share * (1 - frac)).astype(np.float32))
    np.add.at(weights, (rows, cols, high), (share * frac).astype(np.float32))
    return weights


def _used_range(used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last True index of each row of [R, N] bools (0, 0 if none)."""
    any_used = used.any(axis=1)
    first = np.where(any_used, used.argmax(axis=1), 0)
    last = np.where(any_used, used.shape[1] - used[:, ::-1].argmax(axis=1), 0)
    return first, last


def _pool_one_level(feature: np.ndarray, boxes: np.ndarray, scale: float, side: int,
                    sampling_ratio: int, aligned: bool, out: np.ndarray) -> None:
    """RoIAlign of `boxes` [R, 4] on `feature` [C, H, W] into `out` [R, C, side, side]."""
    channels, height, width = feature.shape
    scale = np.float32(scale)
    wy = roi_align_weights(boxes[:, 1] * scale, boxes[:, 3] * scale, height, side,
                           sampling_ratio, aligned)
    wx = roi_align_weights(boxes[:, 0] * scale, boxes[:, 2] * scale, width, side,
                           sampling_ratio, aligned)
    # only the rows and columns a box's weights touch
    r0, r1 = _used_range(wy.any(axis=1))
    c0, c1 = _used_range(wx.any(axis=1))
    # Many boxes (the box head's 1000 proposals): the map once in rows of (x, channel), so
    # each box's rows are contiguous runs and the products read them in place; a box's
    # crop copied out of the channel-major map cost 1.7x torchvision's RoIAlign. Few boxes
    # (the DensePose and keypoint heads): their crops, without moving the whole map.
    channels_last = int(((r1 - r0) * (c1 - c0)).sum()) > height * width // 4
    rows_view = np.ascontiguousarray(feature.transpose(1, 2, 0)) if channels_last else None
    for i in range(len(boxes)):
        if r0[i] == r1[i] or c0[i] == c1[i]:
            out[i] = 0.0
            continue
        h, w = r1[i] - r0[i], c1[i] - c0[i]
        row_w, col_w = wy[i, :, r0[i]:r1[i]], wx[i, :, c0[i]:c1[i]]
        if channels_last:
            # rows: [side, h] @ [h, w*C] (strided rows, no copy); columns per output row
            rows = rows_view[r0[i]:r1[i], c0[i]:c1[i]].reshape(h, w * channels)
            by_rows = (row_w @ rows).reshape(side, w, channels)
            pooled = np.matmul(col_w, by_rows)  # [side (y), side (x), C]
            out[i] = pooled.transpose(2, 0, 1)
            continue
        crop = np.ascontiguousarray(feature[:, r0[i]:r1[i], c0[i]:c1[i]])
        # columns: [C*h, w] @ [w, side]; rows: [side, h] @ [h, C*side]
        by_cols = crop.reshape(channels * h, w) @ col_w.T
        by_cols = by_cols.reshape(channels, h, side).transpose(1, 0, 2).reshape(h, -1)
        out[i] = (row_w @ by_cols).reshape(side, channels, side).transpose(1, 0, 2)


class MultiLevelRoIAlign:
    """``box_ops.MultiLevelRoIAlign`` in numpy: each box pooled on its FPN level (or on the
    single map), from maps [1, C, H, W]; boxes [R, 4] in input pixels -> [R, C, P, P]."""

    def __init__(self, geometry: PoolerGeometry):
        self.geometry = geometry

    def __call__(self, features: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        g = self.geometry
        if len(features) != len(g.scales):
            raise ValueError(f"expected {len(g.scales)} feature maps, got {len(features)}")
        side = g.output_size
        boxes = boxes.astype(np.float32, copy=False)
        out = np.empty((len(boxes), features[0].shape[1], side, side), dtype=np.float32)
        levels = (np.zeros(len(boxes), dtype=np.int64) if len(features) == 1 else
                  assign_fpn_levels(boxes, g.min_level, g.max_level))
        for index, (feature, scale) in enumerate(zip(features, g.scales, strict=True)):
            chosen = np.flatnonzero(levels == index)
            if len(chosen) == 0:
                continue
            pooled = np.empty((len(chosen), *out.shape[1:]), dtype=np.float32)
            _pool_one_level(feature[0], boxes[chosen], scale, side, g.sampling_ratio,
                            g.aligned, pooled)
            out[chosen] = pooled
        return out


# ---- keypoints ------------------------------------------------------------------------------

def no_heatmaps(cfg: KeypointHeadConfig) -> np.ndarray:
    """The heatmaps of zero boxes, [0, K, S, S]."""
    return np.zeros((0, cfg.num_keypoints, cfg.heatmap_size, cfg.heatmap_size), np.float32)


def heatmaps_to_keypoints(heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Keypoints [N, K, 3] (x, y, score) from heatmap logits [N, K, H, W] over boxes [N, 4],
    as ``keypoint_head.heatmaps_to_keypoints`` (detectron2's decoding: bicubic resize to the
    ceiled box size, peak at the pixel centre, softmax score of the peak over the map)."""
    count, keypoints = heatmaps.shape[:2]
    out = np.zeros((count, keypoints, 3), dtype=np.float32)
    heatmaps = heatmaps.astype(np.float32, copy=False)
    boxes = boxes.astype(np.float32, copy=False)
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], np.float32(1))
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], np.float32(1))
    for i in range(count):
        size = (int(np.ceil(heights[i])), int(np.ceil(widths[i])))
        maps = resize_separable(heatmaps[i], bicubic_matrix(heatmaps.shape[2], size[0]),
                                bicubic_matrix(heatmaps.shape[3], size[1]))
        flat = maps.reshape(keypoints, -1)
        position = flat.argmax(axis=1)
        peak = flat[np.arange(keypoints), position]
        normaliser = np.exp(heatmaps[i] - peak[:, None, None]).sum(axis=(1, 2))
        rows, cols = np.divmod(position, size[1])
        out[i, :, 0] = (cols.astype(np.float32) + np.float32(0.5)) * (widths[i] / size[1]) \
            + boxes[i, 0]
        out[i, :, 1] = (rows.astype(np.float32) + np.float32(0.5)) * (heights[i] / size[0]) \
            + boxes[i, 1]
        out[i, :, 2] = 1.0 / normaliser
    return out
