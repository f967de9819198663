"""Eager PyTorch backend (CPU or CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from densepose_ros.inference.device import resolve_device
from densepose_ros.inference.structures import DensePoseResult
from densepose_ros.runtime.base import Backend, InferenceSettings


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, predictor, description: str, untrained: bool = False):
        self.predictor = predictor
        self._model_cfg = predictor.cfg  # the model's own defaults, restored by None settings
        self._description = description
        self.untrained = untrained

    @classmethod
    def from_weights(cls, path: Path, device: str = "auto") -> TorchBackend:
        from densepose_ros.inference.predictor import DensePosePredictor

        predictor = DensePosePredictor.from_weights(path, device=str(resolve_device(device)))
        return cls(predictor, f"torch/{predictor.device} {predictor.cfg.name} ({path.name})")

    @classmethod
    def untrained(cls, config_name: str | None, device: str = "auto") -> TorchBackend:
        from densepose_ros.inference.predictor import DensePosePredictor
        from densepose_ros.modeling import build_model
        from densepose_ros.modeling.config import LIGHT_CONFIG_NAME, get_config

        cfg = get_config(config_name or LIGHT_CONFIG_NAME)
        torch.manual_seed(0)
        model = build_model(cfg)
        predictor = DensePosePredictor(model, cfg, device=str(resolve_device(device)))
        return cls(predictor, f"torch/{predictor.device} {cfg.name} UNTRAINED", untrained=True)

    def infer(self, image_bgr: np.ndarray) -> DensePoseResult:
        return self.predictor(image_bgr, color_order="BGR")

    def configure(self, settings: InferenceSettings) -> None:
        resolved = settings.resolve(self._model_cfg)
        predictor = self.predictor
        predictor.score_threshold = resolved.score_threshold
        predictor.nms_threshold = resolved.nms_threshold
        predictor.max_detections = resolved.max_detections
        predictor.resize = resolved.resize
        predictor.cfg = resolved.model_cfg  # the predictor reads its resize sizes from it

    def describe(self) -> str:
        return self._description

    def device_name(self) -> str:
        device = self.predictor.device
        return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"

    def release(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def close(self) -> None:
        self.predictor = None
        self.release()
