"""Shared, session-scoped model fixtures for the model tests (imported by those test files).

The detectron2 stand-in checkpoints are generated at run time from the parity fixture's
``keys.json`` with its own ``random_weights.py`` (deterministic: each tensor seeded by its
key), written once per session into a pytest temporary directory and never committed.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from densepose_ros.inference.checkpoint import import_detectron2
from densepose_ros.modeling import build_model, get_config

PARITY_DIR = Path(__file__).resolve().parent / "data" / "detectron2_parity"
PARITY_CONFIGS = ("R_50_FPN_s1x_legacy", "R_50_FPN_s1x")
LIGHT_SEED = 1234


@cache
def _random_weights_module():
    spec = importlib.util.spec_from_file_location("random_weights",
                                                  PARITY_DIR / "random_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def detectron2_reference(config_name: str) -> dict:
    """detectron2's recorded outputs for `config_name` on input_bgr.png."""
    return json.loads((PARITY_DIR / f"densepose_rcnn_{config_name}.json").read_text())


def parity_image() -> np.ndarray:
    image = cv2.imread(str(PARITY_DIR / "input_bgr.png"), cv2.IMREAD_COLOR)
    assert image is not None, "test/data/detectron2_parity/input_bgr.png is missing"
    return image


@pytest.fixture(scope="session")
def d2_checkpoint(tmp_path_factory):
    """Factory: path of the model-zoo style .pkl for a config name (written once)."""
    paths: dict[str, Path] = {}
    rows = json.loads((PARITY_DIR / "keys.json").read_text())

    def make(config_name: str) -> Path:
        if config_name not in paths:
            d2_name = get_config(config_name).detectron2_config
            path = tmp_path_factory.mktemp("d2") / f"{d2_name}.pkl"
            weights = _random_weights_module().make(rows[d2_name])
            with open(path, "wb") as f:
                pickle.dump({"model": weights, "__author__": "random_weights.py",
                             "matching_heuristics": False}, f)
            paths[config_name] = path
        return paths[config_name]

    return make


@pytest.fixture(scope="session")
def d2_model(d2_checkpoint):
    """Factory: the model of a config with the imported stand-in weights (one per session)."""
    models: dict[str, torch.nn.Module] = {}

    def make(config_name: str) -> torch.nn.Module:
        if config_name not in models:
            model = build_model(get_config(config_name))
            model.load_state_dict(import_detectron2(d2_checkpoint(config_name), config_name))
            models[config_name] = model
        return models[config_name]

    return make


@pytest.fixture(scope="session")
def light_model():
    """The light configuration with deterministic default-initialised weights, and its config."""
    torch.manual_seed(LIGHT_SEED)
    cfg = get_config("R_18_FPN_lite")
    return build_model(cfg), cfg


@pytest.fixture(scope="session")
def light_weights(light_model, tmp_path_factory):
    """Our own weights file of the light model."""
    from densepose_ros.inference.checkpoint import save_weights

    model, cfg = light_model
    return save_weights(tmp_path_factory.mktemp("weights") / "lite.pth", model, cfg,
                        metadata={"note": "test weights"})
