"""Typed outputs of DensePose R-CNN.

Arrays are torch tensors from the eager model (``DensePosePredictor``, the torch backend) and
numpy arrays from the graph backends (onnxruntime, OpenVINO), whose glue runs without
PyTorch; ``numpy()`` gives either as numpy (no copy on a CPU). This module imports torch only
when it meets a tensor.

Shapes use N for the number of detected persons, S for the coarse segmentation channels
(2 or 15), M for the side of the predictor output (112, or 56 in legacy models; the chart
covers the person's box, stretched to M x M).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    import torch

# A torch tensor or a numpy array (see the module docstring).
Array = Union["torch.Tensor", np.ndarray]


def to_torch(array):
    """A torch tensor sharing a numpy array's memory, a tensor as it is; None stays None.
    Imports torch: for callers that work in torch anyway (evaluation, tests)."""
    if array is None or not isinstance(array, np.ndarray):
        return array
    import torch

    return torch.from_numpy(array)


def to_numpy(array):
    """A numpy view of a CPU tensor (a copy from a GPU), anything else through
    ``np.asarray`` (numpy arrays as they are); None stays None."""
    if array is None or isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):  # a torch tensor
        return array.detach().cpu().numpy()
    return np.asarray(array)

# Stages timed by the predictor, in pipeline order.
STAGES = ("preprocess", "backbone", "rpn", "box_head", "densepose_head", "postprocess")


@dataclass
class DensePoseChartOutput:
    """Raw chart-predictor outputs for N boxes, on an M x M grid spanning each box.

    Attributes:
        coarse_segm: [N, S, M, M] float32 logits of the coarse segmentation; channel 0 is
            background, the others foreground (S = 2) or the 14 coarse body parts (S = 15).
        fine_segm: [N, 25, M, M] float32 logits of the fine segmentation: channel 0
            background, channel i the surface chart i (1..24).
        u: [N, 25, M, M] float32 U coordinate predicted for each chart i in channel i
            (values near [0, 1] for trained models; channel 0 is unused).
        v: [N, 25, M, M] float32 V coordinate, same layout as `u`.

    Confidences, None for models without them (detectron2's WC models, Neverova et al. 2019;
    the "M" models, Sanakoyeu et al. 2020), raw predictor values as detectron2 outputs them:
        sigma_2: [N, 25, M, M] per chart; the U/V residual variance is
            softplus(sigma_2) + epsilon (WC1 and WC2).
        kappa_u, kappa_v: [N, 25, M, M] per chart, the anisotropic part of the U/V
            covariance (WC2).
        fine_segm_confidence, coarse_segm_confidence: [N, 1, M, M], softplus + epsilon,
            already multiplied into `fine_segm` and `coarse_segm` (WC1M, WC2M).
    """

    coarse_segm: Array
    fine_segm: Array
    u: Array
    v: Array
    sigma_2: Array | None = None
    kappa_u: Array | None = None
    kappa_v: Array | None = None
    fine_segm_confidence: Array | None = None
    coarse_segm_confidence: Array | None = None

    def __len__(self) -> int:
        return self.coarse_segm.shape[0]

    def tensors(self) -> dict[str, Array]:
        """Every present output by name, in field order (the exported graph's outputs)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    def _map(self, function) -> DensePoseChartOutput:
        return DensePoseChartOutput(**{k: function(t) for k, t in self.tensors().items()})

    def __getitem__(self, index) -> DensePoseChartOutput:
        """Select boxes (int, slice, index array or boolean mask); keeps the batch axis."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self._map(lambda tensor: tensor[index])

    def to(self, device: torch.device | str) -> DensePoseChartOutput:
        return self._map(lambda tensor: tensor.to(device))

    def numpy(self) -> DensePoseChartOutput:
        """Every output as a numpy array (views of CPU tensors)."""
        return self._map(to_numpy)

    def torch(self) -> DensePoseChartOutput:
        """Every output as a torch tensor (numpy arrays shared, not copied)."""
        return self._map(to_torch)

    @classmethod
    def empty(cls, num_coarse: int, size: int,
              confidences: tuple[str, ...] = (), numpy: bool = False) -> DensePoseChartOutput:
        """No boxes: zero-length outputs of the right channel counts (torch tensors, or
        numpy arrays with `numpy`)."""
        def zeros(c: int):
            if numpy:
                return np.zeros((0, c, size, size), dtype=np.float32)
            import torch

            return torch.zeros((0, c, size, size), dtype=torch.float32)

        extra = {name: zeros(1 if name.endswith("segm_confidence") else 25)
                 for name in confidences}
        return cls(zeros(num_coarse), zeros(25), zeros(25), zeros(25), **extra)


@dataclass
class StageTimings:
    """Wall-clock seconds spent in each stage of one call (see ``STAGES``); 0.0 if skipped."""

    preprocess: float = 0.0
    backbone: float = 0.0
    rpn: float = 0.0
    box_head: float = 0.0
    densepose_head: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return sum(getattr(self, name) for name in STAGES)


class StageClock:
    """Times consecutive stages of one call into ``timings``. GPU work is asynchronous: on a
    CUDA device each lap waits for it, so a stage is timed where its work ends."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.timings = StageTimings()
        self._device = device if str(device).startswith("cuda") else None
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self._device is not None:
            import torch

            torch.cuda.synchronize(self._device)
        now = time.perf_counter()
        setattr(self.timings, stage, now - self._last)
        self._last = now


@dataclass
class DensePoseResult:
    """DensePose R-CNN output for one image, in the pixels of the source image.

    Attributes:
        boxes: [N, 4] float32 person boxes (x1, y1, x2, y2), source-image pixels, sorted by
            decreasing score.
        scores: [N] float32 detection scores in [0, 1] (1.0 for caller-supplied boxes).
        charts: the chart outputs of the N boxes; chart i spans `boxes[i]`.
        image_size: (height, width) of the source image.
        timings: per-stage wall-clock times of the call that produced this result, if timed.
        keypoints: [N, K, 3] float32 (x, y, score) per COCO keypoint in source pixels, for
            models with a keypoint head (K = 17), else None. The score is the softmax
            probability of the heatmap peak.
    """

    boxes: Array
    scores: Array
    charts: DensePoseChartOutput
    image_size: tuple[int, int]
    timings: StageTimings | None = field(default=None, compare=False)
    keypoints: Array | None = None

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def select(self, keep) -> DensePoseResult:
        """The persons ``keep`` selects (bool mask or index array), in that order."""
        # index logic in numpy: a handful of torch ops on tiny tensors cost more than this
        keep = np.asarray(to_numpy(keep))
        keep = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        if len(keep) == len(self) and (keep == np.arange(len(self))).all():
            # everyone, in order (the usual frame): a shallow copy, no tensor op at all
            return dataclasses.replace(self)
        if len(keep) and keep[-1] - keep[0] == len(keep) - 1 and (np.diff(keep) == 1).all():
            # a contiguous run (the usual case: the best-scoring persons): views, no copy
            # of the [N, C, M, M] charts
            keep = slice(int(keep[0]), int(keep[0]) + len(keep))
        elif not isinstance(self.boxes, np.ndarray):
            import torch

            keep = torch.from_numpy(keep)
        keypoints = None if self.keypoints is None else self.keypoints[keep]
        return DensePoseResult(self.boxes[keep], self.scores[keep], self.charts[keep],
                               self.image_size, self.timings, keypoints)

    def numpy(self) -> DensePoseResult:
        """The same result with numpy arrays (views of CPU tensors; numpy ones as they are)."""
        if isinstance(self.boxes, np.ndarray):
            return self
        return DensePoseResult(to_numpy(self.boxes), to_numpy(self.scores), self.charts.numpy(),
                               self.image_size, self.timings, to_numpy(self.keypoints))

    def torch(self) -> DensePoseResult:
        """The same result with torch tensors (numpy arrays shared, not copied)."""
        if not isinstance(self.boxes, np.ndarray):
            return self
        return DensePoseResult(to_torch(self.boxes), to_torch(self.scores), self.charts.torch(),
                               self.image_size, self.timings, to_torch(self.keypoints))
