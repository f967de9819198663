"""Datasets for training: DensePose-COCO files (real or synthetic), mixed by ratios.

``DensePoseCocoDataset`` reads one annotation file and its images directory and yields
augmented ``Sample`` objects; ``MixedDataset`` joins several of them, drawn with given
ratios by ``sampling.TrainingSampler``; ``collate_samples`` (in ``batching``) turns a list
of samples into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from densepose_ros.data.coco import DensePoseCocoFile, ImageRecord, load_densepose_coco
from densepose_ros.data.symmetry import ChartSymmetry, load_symmetry
from densepose_ros.data.transforms import (
    AugmentationConfig,
    DenseTarget,
    FixedResize,
    Sample,
    TargetInstance,
    TrainingAugmentation,
)


@dataclass
class DatasetSpec:
    """One training source.

    Attributes:
        annotations: the DensePose-COCO JSON.
        images: directory that the JSON's ``file_name`` entries are relative to; None: see
            ``default_images_dir``.
        symmetry: chart symmetry for flips: ``"anny"`` (synthetic data), the path of a
            DensePose ``UV_symmetry_transforms.mat``/``.npz``, or None (no flipping).
        ratio: relative share of this source in a mix.
        name: label of the source (defaults to the JSON's file name).
        kind: "coco" (the annotated points) or "distill" (a ``densepose label`` folder:
            the teacher's dense charts, ``data/distill.py``).
        uv_confidence, soft_targets, point_stride, max_points: distill only: least teacher
            probability of a pixel with a U/V target; use the stored teacher probabilities
            as soft part targets; take every n-th pixel in x and y; at most this many
            pixels per person each time an image is drawn (0: all).
    """

    annotations: Path | str
    images: Path | str | None = None
    symmetry: str | None = None
    ratio: float = 1.0
    name: str = ""
    kind: str = "coco"
    uv_confidence: float = 0.8
    soft_targets: bool = True
    point_stride: int = 1
    max_points: int = 300


def default_images_dir(annotations: Path | str) -> Path:
    """``images/`` next to the annotation file if it exists (the layout ``densepose synth``
    writes), else the annotation file's own directory."""
    parent = Path(annotations).parent
    return parent / "images" if (parent / "images").is_dir() else parent


def record_to_sample(record: ImageRecord, image: np.ndarray, source: str = "") -> Sample:
    """A ``Sample`` (image pixels, boxes xyxy, dense targets) from a parsed image record."""
    instances = []
    for inst in record.instances:
        dense = None
        if inst.dense is not None and len(inst.dense):
            d = inst.dense
            dense = DenseTarget(x=d.x.copy(), y=d.y.copy(), part=d.part.copy(), u=d.u.copy(),
                                v=d.v.copy(),
                                segm=d.coarse_label_map() if d.masks is not None else None)
        instances.append(TargetInstance(box=inst.bbox_xyxy, is_crowd=inst.is_crowd, dense=dense,
                                        keypoints=inst.keypoints))
    return Sample(image=image, instances=instances, image_id=record.id, source=source)


def read_image(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 BGR image, or a FileNotFoundError naming the path."""
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image: {path}")
    return image


class DensePoseCocoDataset(Dataset):
    """Samples of one DensePose-COCO file.

    Args:
        spec: the source (annotation file, images directory, symmetry).
        augmentation: training augmentation settings; with ``train=False`` only the fixed
            test resize is applied.
        train: random augmentation (True) or deterministic resize (False).
        skip_empty: leave out images without any non-crowd person (as detectron2 training).
    """

    def __init__(self, spec: DatasetSpec, augmentation: AugmentationConfig | None = None,
                 train: bool = True, skip_empty: bool = True) -> None:
        self.spec = spec
        self.file: DensePoseCocoFile = load_densepose_coco(spec.annotations)
        self.images_dir = (Path(spec.images) if spec.images is not None
                           else default_images_dir(spec.annotations))
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"images directory not found: {self.images_dir}")
        self.name = spec.name or Path(spec.annotations).name
        self.records = [r for r in self.file.images
                        if not skip_empty or any(not i.is_crowd for i in r.instances)]
        config = augmentation or AugmentationConfig()
        symmetry: ChartSymmetry | None = (load_symmetry(spec.symmetry)
                                          if spec.symmetry is not None else None)
        self.transform = TrainingAugmentation(config, symmetry) if train else FixedResize(config)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Sample:
        """The sample without augmentation."""
        record = self.records[index]
        image = read_image(self.images_dir / record.file_name)
        if image.shape[:2] != (record.height, record.width):
            raise ValueError(f"{self.images_dir / record.file_name}: size {image.shape[1]}x"
                             f"{image.shape[0]} differs from the annotation's "
                             f"{record.width}x{record.height}")
        return record_to_sample(record, image, self.name)

    def __getitem__(self, index: int) -> Sample:
        # torch seeds each DataLoader worker differently, so draws differ across workers.
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 31 - 1, ()).item()))
        return self.transform(self.load(index), rng)


def source_offsets(sizes: list[int]) -> np.ndarray:
    """[S + 1] int64 first index of each source in the sources' concatenation, then the
    total (how ``MixedDataset`` and ``sampling.TrainingSampler`` number items)."""
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


class MixedDataset(Dataset):
    """Several datasets as one, with the share of draws each should get.

    Item ``k`` is item ``k - offsets[s]`` of source ``s`` (the sources one after another);
    ``probabilities`` say how often ``TrainingSampler`` draws from each source.
    """

    def __init__(self, datasets: list[Dataset], ratios: list[float]) -> None:
        if len(datasets) != len(ratios) or not datasets:
            raise ValueError("give one ratio per dataset (and at least one dataset)")
        ratios_array = np.asarray(ratios, dtype=np.float64)
        if (ratios_array < 0).any() or ratios_array.sum() <= 0:
            raise ValueError(f"ratios must be >= 0 with a positive sum, got {ratios}")
        for k, dataset in enumerate(datasets):
            if ratios_array[k] > 0 and len(dataset) == 0:
                raise ValueError(f"dataset {k} is empty but has ratio {ratios[k]}")
        self.datasets = datasets
        self.probabilities = ratios_array / ratios_array.sum()
        self.sizes = [len(d) for d in datasets]
        self.offsets = source_offsets(self.sizes)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def source_of(self, index: int) -> tuple[int, int]:
        """(dataset number, index in it) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} of a mixed dataset of {len(self)}")
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return which, int(index - self.offsets[which])

    def __getitem__(self, index: int) -> Sample:
        which, inner = self.source_of(index)
        return self.datasets[which][inner]


def build_training_dataset(specs: list[DatasetSpec], augmentation: AugmentationConfig | None
                           ) -> Dataset:
    """One dataset per spec, mixed by their ratios (a single spec is used as is)."""
    from densepose_ros.data.distill import DistillDataset

    kinds = {"coco": DensePoseCocoDataset, "distill": DistillDataset}
    for spec in specs:
        if spec.kind not in kinds:
            raise ValueError(f"{spec.annotations}: dataset type must be one of "
                             f"{', '.join(kinds)}, got {spec.kind!r}")
    datasets = [kinds[spec.kind](spec, augmentation, train=True) for spec in specs]
    if len(datasets) == 1:
        return datasets[0]
    return MixedDataset(datasets, [spec.ratio for spec in specs])
