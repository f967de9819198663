"""Eager PyTorch backend (CPU or CUDA)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from densepose_ros.inference.device import resolve_device
from densepose_ros.inference.structures import DensePoseResult
from densepose_ros.runtime.base import Backend, InferenceSettings


def _or(value, default):
    return default if value is None else value


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
        predictor, cfg = self.predictor, self._model_cfg
        box = cfg.box_head
        predictor.score_threshold = _or(settings.score_threshold, box.score_threshold)
        predictor.nms_threshold = _or(settings.nms_threshold, box.nms_threshold)
        predictor.max_detections = _or(settings.max_detections, box.max_detections)
        predictor.resize = settings.resize_shortest_edge != 0
        if predictor.resize:
            # The predictor reads its resize sizes from the input config: swap in a copy.
            predictor.cfg = dataclasses.replace(cfg, input=dataclasses.replace(
                cfg.input,
                min_size=_or(settings.resize_shortest_edge, cfg.input.min_size),
                max_size=_or(settings.resize_max_size, cfg.input.max_size),
            ))

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
