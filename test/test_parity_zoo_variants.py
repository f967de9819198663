"""The model-zoo variants against detectron2: the key layout of all 27 registry models, and
the DensePose outputs of the DeepLab head and the confidence heads on given boxes.

References: test/data/detectron2_zoo (made by detectron2 itself, see its README). The
stand-in weights come from the shared fixture's generator applied to detectron2's key lists.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import pytest
import torch
from model_fixtures import _random_weights_module, parity_image
from test_parity_detectron2 import assert_summary_matches

from densepose_ros.inference.checkpoint import import_detectron2
from densepose_ros.inference.model_zoo import load_registry
from densepose_ros.inference.preprocess import preprocess_image
from densepose_ros.modeling import build_model, get_config

ZOO_DIR = Path(__file__).resolve().parent / "data" / "detectron2_zoo"
VARIANTS = ("R_50_FPN_DL_s1x", "R_50_FPN_WC2M_s1x", "R_50_FPN_DL_WC1_s1x")


def detectron2_keys() -> dict[str, list]:
    with gzip.open(ZOO_DIR / "keys_zoo.json.gz", "rt") as file:
        return json.load(file)


def test_every_registry_model_has_detectron2s_key_layout():
    keys = detectron2_keys()
    entries = load_registry().entries
    assert len(entries) == 27
    for entry in entries:
        cfg = get_config(entry.config)
        assert cfg.detectron2_config == entry.detectron2_name
        ours = {k: list(v.shape) for k, v in build_model(cfg).state_dict().items()
                if not k.endswith("num_batches_tracked")}
        theirs = {k: shape for k, shape, _ in keys[entry.detectron2_name]
                  if not k.endswith("num_batches_tracked")}
        assert ours == theirs, entry.name


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """Factory: a model-zoo style .pkl of stand-in weights for a variant."""
    keys = detectron2_keys()

    def make(config_name: str) -> Path:
        d2_name = get_config(config_name).detectron2_config
        path = tmp_path_factory.mktemp("zoo") / f"{d2_name}.pkl"
        weights = _random_weights_module().make(keys[d2_name])
        path.write_bytes(pickle.dumps({"model": weights}))
        return path

    return make


@pytest.mark.parametrize("config_name", VARIANTS)
def test_densepose_outputs_and_confidences_match_detectron2(config_name, stand_in):
    reference = json.loads(
        (ZOO_DIR / f"densepose_rcnn_{config_name}_on_boxes.json").read_text())
    reference = reference["densepose_on_boxes"]
    cfg = get_config(config_name)
    model = build_model(cfg)
    model.load_state_dict(import_detectron2(stand_in(config_name), config_name))
    model.eval()
    prepared = preprocess_image(parity_image(), cfg.input, color_order="BGR", resize=False)
    with torch.inference_mode():
        features = model.backbone_features(prepared.tensor)
        charts = model.densepose_on_boxes(features, [torch.tensor(reference["boxes"])])
    produced = charts.tensors()
    expected = {k for k in reference if k != "boxes"}
    assert set(produced) == expected
    for name in sorted(expected):
        assert_summary_matches(produced[name], reference[name], f"{config_name} {name}")
