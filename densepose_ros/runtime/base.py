"""The interface every inference backend implements."""

from __future__ import annotations

import dataclasses
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from densepose_ros.inference.structures import DensePoseResult
from densepose_ros.modeling.config import ModelConfig


def cpu_threads() -> int:
    """Threads an inference runtime uses on the CPU: PyTorch's count when torch is loaded
    (the CLI's --threads sets it), else OMP_NUM_THREADS, else the cores this process may
    use, so every backend shares the CPU alike without importing torch to ask."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return max(1, len(os.sched_getaffinity(0)))


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (library missing, no GPU, ...); the message says why."""


# Least score of a person the node publishes and `densepose infer` draws (detectron2's
# `apply_net show --min_score` uses the same); the model's own test threshold is lower.
DEFAULT_SCORE_THRESHOLD = 0.8
# resize_shortest_edge values with a meaning of their own (the node's parameter uses them).
MODEL_DEFAULT_RESIZE = 0
NO_RESIZE = -1


@dataclass
class InferenceSettings:
    """Post-processing settings a backend applies; None (or 0 for the sizes) keeps the
    model's own default."""

    score_threshold: float | None = None
    nms_threshold: float | None = None
    max_detections: int | None = None
    # Shortest edge of the network input in pixels: MODEL_DEFAULT_RESIZE (0) the model's,
    # NO_RESIZE (-1) none (the image runs at its own size).
    resize_shortest_edge: int = MODEL_DEFAULT_RESIZE
    # Cap on the longer side after resizing; 0: the model's.
    resize_max_size: int = 0

    def resolve(self, cfg: ModelConfig) -> ResolvedSettings:
        """These settings with the model's defaults filled in."""
        box = cfg.box_head
        pick = lambda value, default: default if value is None else value  # noqa: E731
        input_cfg = dataclasses.replace(
            cfg.input,
            min_size=self.resize_shortest_edge if self.resize_shortest_edge > 0
            else cfg.input.min_size,
            max_size=self.resize_max_size or cfg.input.max_size)
        return ResolvedSettings(
            score_threshold=float(pick(self.score_threshold, box.score_threshold)),
            nms_threshold=float(pick(self.nms_threshold, box.nms_threshold)),
            max_detections=int(pick(self.max_detections, box.max_detections)),
            resize=self.resize_shortest_edge != NO_RESIZE,
            model_cfg=dataclasses.replace(cfg, input=input_cfg))


@dataclass(frozen=True)
class ResolvedSettings:
    """``InferenceSettings`` for one model: every value concrete.

    model_cfg: the model's configuration with the resize sizes applied to its input config.
    resize: whether images are resized at all.
    """

    score_threshold: float
    nms_threshold: float
    max_detections: int
    resize: bool
    model_cfg: ModelConfig


class Backend(ABC):
    """Runs DensePose R-CNN on one BGR image and returns a typed result."""

    #: short name: "torch", "onnxruntime" or "tensorrt"
    name: str = ""

    @abstractmethod
    def infer(self, image_bgr: np.ndarray) -> DensePoseResult:
        """Detect persons and their charts in ``image_bgr`` (H, W, 3) uint8 BGR."""

    @abstractmethod
    def configure(self, settings: InferenceSettings) -> None:
        """Apply new post-processing settings (cheap; called at run time)."""

    def describe(self) -> str:
        """One line for logs and diagnostics: backend, device, model."""
        return self.name

    def device_name(self) -> str:
        """The hardware inference runs on: 'cpu' or the GPU's name (diagnostics hardware_id)."""
        return "cpu"

    def release(self) -> None:  # noqa: B027 - optional hook
        """Free accelerator memory held for inference (the model may stay loaded)."""

    def close(self) -> None:
        """Free everything; the backend is unusable afterwards."""
        self.release()


class GraphBackend(Backend):
    """A backend whose work is a split pipeline (``runtime.numpy_pipeline`` on the CPU
    runtimes, ``runtime.split_pipeline`` for TensorRT): subclasses set ``self.pipeline``
    (image -> ``DensePoseResult``, with a ``configure(settings)``) and ``self._description``."""

    pipeline: Callable[[np.ndarray], DensePoseResult]
    _description: str = ""

    def infer(self, image_bgr: np.ndarray) -> DensePoseResult:
        return self.pipeline(image_bgr)

    def configure(self, settings: InferenceSettings) -> None:
        self.pipeline.configure(settings)

    def describe(self) -> str:
        return self._description
