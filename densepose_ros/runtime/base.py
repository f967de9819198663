"""The interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from densepose_ros.inference.structures import DensePoseResult


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (library missing, no GPU, ...); the message says why."""


@dataclass
class InferenceSettings:
    """Post-processing settings a backend applies; None keeps the model's own default."""

    score_threshold: float | None = None
    nms_threshold: float | None = None
    max_detections: int | None = None
    # Shortest-edge resize and its longer-side cap (None: the model's default); a shortest
    # edge of 0 disables resizing (the image runs at its own size).
    resize_shortest_edge: int | None = None
    resize_max_size: int | None = None


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
