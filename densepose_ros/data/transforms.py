"""Training samples and their augmentation: multi-scale resize, horizontal flip, colour jitter.

DensePose points and part masks live on the 256 x 256 frame of their person's box, so a
resize leaves them unchanged (only boxes and keypoints scale) and a horizontal flip mirrors
them inside the box: x -> 256 - x, charts and (U, V) through a ``ChartSymmetry``, part
masks flipped with left/right parts swapped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from densepose_ros.data.coco import DP_FRAME_SIZE
from densepose_ros.data.symmetry import CHART_MIRROR, COARSE_MIRROR, KEYPOINT_MIRROR, ChartSymmetry
from densepose_ros.inference.preprocess import resized_shape


@dataclass
class DenseTarget:
    """DensePose ground truth of one person, on the 256 x 256 frame of its box.

    Attributes:
        x, y: [P] float32 point coordinates on the box frame (0..256).
        part: [P] int64 chart 1..24.
        u, v: [P] float32 chart coordinates.
        segm: [256, 256] uint8 coarse part labels over the box (0 background, 1..14), or
            None when the person has no part masks.
        uv_weight: [P] float32 weight of each point's U/V loss (0: no U/V target there,
            e.g. where a teacher is unsure), or None: 1 everywhere.
        part_probs: [P, 25] float32 soft part targets (a teacher's probabilities of
            background and the 24 charts), or None: ``part`` is a hard target.
    """

    x: np.ndarray
    y: np.ndarray
    part: np.ndarray
    u: np.ndarray
    v: np.ndarray
    segm: np.ndarray | None
    uv_weight: np.ndarray | None = None
    part_probs: np.ndarray | None = None


@dataclass
class TargetInstance:
    """One person of a training sample.

    Attributes:
        box: [4] float64 (x1, y1, x2, y2) in pixels of the sample's image.
        is_crowd: a crowd region (not a single person).
        dense: DensePose ground truth, or None.
        keypoints: [17, 3] float32 (x, y, visibility) in image pixels, or None.
    """

    box: np.ndarray
    is_crowd: bool = False
    dense: DenseTarget | None = None
    keypoints: np.ndarray | None = None


@dataclass
class Sample:
    """An image and its persons, before batching.

    Attributes:
        image: [H, W, 3] uint8 BGR.
        instances: the persons.
        image_id: id in its annotation file.
        source: name of the dataset it came from.
    """

    image: np.ndarray
    instances: list[TargetInstance]
    image_id: int = -1
    source: str = ""


@dataclass
class AugmentationConfig:
    """Training augmentation (defaults: detectron2's DensePose R-CNN training).

    Attributes:
        min_sizes: shortest-edge sizes, one drawn per image.
        max_size: cap on the longest edge after resizing.
        flip_probability: chance of a horizontal flip.
        brightness, contrast, saturation: jitter strengths; each factor is drawn uniformly
            from [1 - s, 1 + s] (0 disables it).
        jitter_probability: chance that an image gets the colour jitter.
        test_min_size: shortest edge of the deterministic (evaluation) resize.
    """

    min_sizes: tuple[int, ...] = (640, 672, 704, 736, 768, 800)
    max_size: int = 1333
    flip_probability: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    jitter_probability: float = 0.5
    test_min_size: int = 800


def resize_shortest_edge(sample: Sample, short: int, max_size: int) -> Sample:
    """Resize so the shortest edge is ``short`` and the longest at most ``max_size``."""
    h, w = sample.image.shape[:2]
    new_h, new_w = resized_shape(h, w, short, max_size)
    if (new_w, new_h) == (w, h):
        return sample
    sx, sy = new_w / w, new_h / h
    # INTER_AREA when shrinking, as the inference preprocessing does.
    interpolation = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
    image = cv2.resize(sample.image, (new_w, new_h), interpolation=interpolation)
    instances = []
    for inst in sample.instances:
        keypoints = None
        if inst.keypoints is not None:
            keypoints = inst.keypoints.copy()
            keypoints[:, 0] *= sx
            keypoints[:, 1] *= sy
        instances.append(replace(inst, box=inst.box * np.array([sx, sy, sx, sy]),
                                 keypoints=keypoints))
    return replace(sample, image=image, instances=instances)


def horizontal_flip(sample: Sample, symmetry: ChartSymmetry) -> Sample:
    """Mirror the image left-right, with boxes, keypoints and DensePose targets."""
    width = sample.image.shape[1]
    image = np.ascontiguousarray(sample.image[:, ::-1])
    instances = []
    for inst in sample.instances:
        x1, y1, x2, y2 = inst.box
        box = np.array([width - x2, y1, width - x1, y2], dtype=np.float64)
        keypoints = None
        if inst.keypoints is not None:
            keypoints = inst.keypoints[KEYPOINT_MIRROR].copy()
            keypoints[:, 0] = width - keypoints[:, 0]
        dense = inst.dense
        if dense is not None:
            part, u, v = symmetry.mirror(dense.part, dense.u, dense.v)
            segm = None
            if dense.segm is not None:
                segm = COARSE_MIRROR[dense.segm[:, ::-1]].astype(np.uint8)
            probs = None if dense.part_probs is None else dense.part_probs[:, CHART_MIRROR]
            dense = DenseTarget(x=(DP_FRAME_SIZE - dense.x).astype(np.float32), y=dense.y,
                                part=np.asarray(part, np.int64), u=np.asarray(u, np.float32),
                                v=np.asarray(v, np.float32), segm=segm,
                                uv_weight=dense.uv_weight, part_probs=probs)
        instances.append(replace(inst, box=box, keypoints=keypoints, dense=dense))
    return replace(sample, image=image, instances=instances)


def photometric_jitter(image: np.ndarray, rng: np.random.Generator,
                       config: AugmentationConfig) -> np.ndarray:
    """Random brightness, contrast and saturation of a BGR uint8 image."""
    out = image.astype(np.float32)
    if config.brightness > 0:
        out *= rng.uniform(1 - config.brightness, 1 + config.brightness)
    if config.contrast > 0:
        mean = out.mean()
        out = (out - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    if config.saturation > 0:
        # Grey by the ITU-R 601 luma weights, in BGR order.
        grey = out @ np.array([0.114, 0.587, 0.299], dtype=np.float32)
        factor = rng.uniform(1 - config.saturation, 1 + config.saturation)
        out = (out - grey[..., None]) * factor + grey[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


class TrainingAugmentation:
    """Draws and applies one random augmentation per call."""

    def __init__(self, config: AugmentationConfig, symmetry: ChartSymmetry | None) -> None:
        self.config = config
        self.symmetry = symmetry

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        cfg = self.config
        sample = resize_shortest_edge(sample, int(rng.choice(cfg.min_sizes)), cfg.max_size)
        if self.symmetry is not None and rng.random() < cfg.flip_probability:
            sample = horizontal_flip(sample, self.symmetry)
        if rng.random() < cfg.jitter_probability:
            sample = replace(sample, image=photometric_jitter(sample.image, rng, cfg))
        return sample


class FixedResize:
    """Deterministic resize for evaluation-style loading (shortest edge ``test_min_size``)."""

    def __init__(self, config: AugmentationConfig) -> None:
        self.config = config

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        del rng  # deterministic
        return resize_shortest_edge(sample, self.config.test_min_size, self.config.max_size)
