"""Distillation data: ``densepose label`` output, trained on the teacher's dense charts.

Each person's DensePose target becomes the sure foreground pixels of the teacher's charts
in its box (``point_stride`` thins them; each time an image is drawn, a fresh random subset
of at most ``max_points`` per person, so over a run every pixel is used), instead of the
~100 sampled ``dp_*`` points:
part targets everywhere (the teacher's probabilities as soft targets when ``densepose label
--keep-probs`` stored them and ``soft_targets`` is on), U/V targets only where the
teacher's part probability reaches ``uv_confidence``, weighted so that a person's U/V loss
weighs what ~100 annotated points would. The coarse segmentation target stays
the annotation's ``dp_masks``. Layout of the maps: ``densepose_ros/tools/label.py``;
``densepose synth --save-maps`` output (exact labels) and ``densepose label --inpaint``
output (a teacher's densified annotations) read the same way.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from densepose_ros.data.coco import DP_FRAME_SIZE, NUM_CHARTS
from densepose_ros.data.dataset import DatasetSpec, DensePoseCocoDataset
from densepose_ros.data.transforms import AugmentationConfig, DenseTarget, Sample

# About how many points DensePose-COCO annotates per person (and `densepose synth` samples).
ANNOTATED_POINTS_PER_PERSON = 100


def dense_target_from_maps(maps, instance_id: int, box_xyxy: np.ndarray, *,
                           uv_confidence: float, soft_targets: bool, point_stride: int = 1,
                           max_points: int = 0, rng: np.random.Generator | None = None,
                           segm: np.ndarray | None = None) -> DenseTarget | None:
    """The teacher's target for person ``instance_id`` (1-based, the maps' ``instance``) of
    the box ``box_xyxy`` (image pixels): its sure pixels, on the box's 256 frame (at most
    ``max_points`` of them, drawn with ``rng``; 0: all); None when it has none."""
    x0, y0, x1, y1 = (float(c) for c in box_xyxy)
    height, width = maps["part"].shape
    c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    c1, r1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
    if c1 <= c0 or r1 <= r0 or x1 <= x0 or y1 <= y0:
        return None
    region = np.s_[r0:r1, c0:c1]
    part = maps["part"][region]
    mine = (maps["instance"][region] == instance_id) & (part >= 1) & (part <= NUM_CHARTS)
    if point_stride > 1:
        rows_grid, cols_grid = np.ogrid[r0:r1, c0:c1]
        mine &= (rows_grid % point_stride == 0) & (cols_grid % point_stride == 0)
    rows, cols = np.nonzero(mine)
    if len(rows) == 0:
        return None
    if max_points and len(rows) > max_points:
        # every RoI matched to the person is trained on its points: tens of thousands of
        # pixels times dozens of RoIs would make a step take seconds
        keep = np.sort((rng or np.random.default_rng(0)).choice(len(rows), max_points,
                                                                 replace=False))
        rows, cols = rows[keep], cols[keep]
    rows_img, cols_img = rows + r0, cols + c0
    x = ((cols_img + 0.5 - x0) / (x1 - x0) * DP_FRAME_SIZE).astype(np.float32)
    y = ((rows_img + 0.5 - y0) / (y1 - y0) * DP_FRAME_SIZE).astype(np.float32)
    # exact labels (`densepose synth --save-maps`) have no confidence: sure everywhere
    confidence = (maps["confidence"][region][rows, cols].astype(np.float32)
                  if "confidence" in maps else np.ones(len(rows), np.float32))
    probs = None
    if soft_targets and "probs" in maps:
        probs = _teacher_probabilities(maps, instance_id - 1, rows_img, cols_img)
    # The U/V loss is a sum over points (detectron2), sized for DensePose-COCO's ~100
    # points per person: thousands of dense pixels share that person's weight.
    uv_sure = (confidence >= uv_confidence).astype(np.float32)
    uv_weight = uv_sure * min(1.0, ANNOTATED_POINTS_PER_PERSON / max(uv_sure.sum(), 1.0))
    return DenseTarget(
        x=x, y=y, part=part[rows, cols].astype(np.int64),
        u=maps["u"][region][rows, cols].astype(np.float32),
        v=maps["v"][region][rows, cols].astype(np.float32), segm=segm,
        uv_weight=uv_weight.astype(np.float32), part_probs=probs)


def _teacher_probabilities(maps, person: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[P, 25] the teacher's part probabilities at the pixels: the cell of its M x M grid
    over its own box that holds each pixel."""
    probs, (bx0, by0, bx1, by1) = maps["probs"][person], maps["boxes"][person]
    size = probs.shape[-1]
    gx = np.clip(((cols + 0.5 - bx0) / max(bx1 - bx0, 1e-6) * size).astype(np.int64), 0, size - 1)
    gy = np.clip(((rows + 0.5 - by0) / max(by1 - by0, 1e-6) * size).astype(np.int64), 0, size - 1)
    return probs[:, gy, gx].T.astype(np.float32)


class DistillDataset(DensePoseCocoDataset):
    """Samples of a ``densepose label`` folder with dense teacher targets (module doc)."""

    def __init__(self, spec: DatasetSpec, augmentation: AugmentationConfig | None = None,
                 train: bool = True) -> None:
        super().__init__(spec, augmentation, train=train)
        self.maps_dir = Path(spec.annotations).parent / "maps"
        if not self.maps_dir.is_dir():
            raise FileNotFoundError(f"{spec.annotations}: no maps/ folder next to it (a "
                                    "`densepose label` output folder is needed for distill)")
        raw = json.loads(Path(spec.annotations).read_text())
        self._map_instance = {int(a["id"]): a.get("map_instance")
                              for a in raw.get("annotations", [])}

    def load(self, index: int) -> Sample:
        sample = super().load(index)
        record = self.records[index]
        path = self.maps_dir / (Path(record.file_name).stem + ".npz")
        try:
            # read every array once: an NpzFile decompresses an array again on each access,
            # and each person reads several
            with np.load(path) as archive:
                maps = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"cannot read the teacher maps {path}: {error}") from None
        # a fresh subset of each person's pixels every time the image is drawn: over the run
        # every sure pixel is trained on (torch seeds each loader worker differently)
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 31 - 1, ()).item()))
        instances = []
        for annotation, instance in zip(record.instances, sample.instances, strict=True):
            map_id = self._map_instance.get(annotation.id)
            dense = None
            if map_id is not None and not instance.is_crowd:
                segm = instance.dense.segm if instance.dense is not None else None
                dense = dense_target_from_maps(
                    maps, int(map_id), instance.box, uv_confidence=self.spec.uv_confidence,
                    soft_targets=self.spec.soft_targets, point_stride=self.spec.point_stride,
                    max_points=self.spec.max_points, rng=rng, segm=segm)
            instances.append(replace(instance, dense=dense if dense is not None
                                     else instance.dense))
        return replace(sample, instances=instances)
