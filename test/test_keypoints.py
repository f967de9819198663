"""The keypoint head: detectron2's key layout, its heatmap decoding, the predictor's
keypoints, cross-talk into the DensePose head, and the ONNX export of all of it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from densepose_ros.export.names import KEYPOINT_HEAD, graph_names
from densepose_ros.export.onnx_export import ExportOptions, export_model
from densepose_ros.export.op_check import check_onnx_for_tensorrt, load_trt_op_list
from densepose_ros.inference.predictor import DensePosePredictor
from densepose_ros.modeling import build_model, get_config
from densepose_ros.modeling.config import KeypointHeadConfig
from densepose_ros.modeling.keypoint_head import heatmaps_to_keypoints
from densepose_ros.runtime import InferenceSettings
from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
from densepose_ros.runtime.torch_backend import TorchBackend

ZOO_DIR = Path(__file__).resolve().parent / "data" / "detectron2_zoo"


def test_keypoint_head_has_detectron2s_key_layout():
    """With detectron2's head size, keys and shapes equal keypoint_rcnn_R_50_FPN's."""
    reference = json.loads((ZOO_DIR / "keypoint_head_keys.json").read_text())
    cfg = get_config("R_50_FPN_s1x_kp")  # any configuration + _kp: detectron2's head
    assert cfg == dataclasses.replace(get_config("R_50_FPN_s1x"), name="R_50_FPN_s1x_kp",
                                      keypoints=KeypointHeadConfig(enabled=True))
    ours = {k: list(v.shape) for k, v in build_model(cfg).state_dict().items()
            if "keypoint_head" in k}
    assert ours == {k: shape for k, shape, _ in reference["keys"]}
    pooler = reference["pooler"]
    assert (pooler["resolution"], pooler["sampling_ratio"], pooler["type"]) == (
        cfg.keypoints.pooler_resolution, cfg.keypoints.pooler_sampling_ratio, "ROIAlignV2")
    assert cfg.keypoints.pooler_aligned  # ROIAlignV2 is the aligned RoIAlign


def test_heatmaps_decode_as_detectron2_decodes_them():
    data = np.load(ZOO_DIR / "keypoint_decoding.npz")
    ours = heatmaps_to_keypoints(torch.from_numpy(data["heatmaps"]),
                                 torch.from_numpy(data["boxes"])).numpy()
    theirs = data["keypoints"]  # (x, y, logit, score)
    np.testing.assert_allclose(ours[..., :2], theirs[..., :2], atol=1e-4)
    np.testing.assert_allclose(ours[..., 2], theirs[..., 3], rtol=1e-4, atol=1e-7)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(2)]


@pytest.mark.parametrize("name", ["R_18_FPN_tiny_kp", "R_18_FPN_tiny_kp_xtalk"])
def test_predictor_gives_keypoints_and_the_export_matches(name, images, tmp_path):
    torch.manual_seed(0)
    cfg = get_config(name)
    model = build_model(cfg).eval()
    assert (cfg.keypoints.cross_talk
            == (model.roi_heads.densepose_head.body_conv_fcn1.in_channels
                == cfg.backbone.fpn_channels + 17))
    predictor = DensePosePredictor(model, cfg, score_threshold=0.0)
    result = predictor(images[0])
    assert len(result) > 0 and result.keypoints.shape == (len(result), 17, 3)
    boxes, keypoints = result.boxes.numpy(), result.keypoints.numpy()
    inside = ((keypoints[..., 0] >= boxes[:, None, 0] - 1)
              & (keypoints[..., 0] <= boxes[:, None, 2] + 1)
              & (keypoints[..., 1] >= boxes[:, None, 1] - 1)
              & (keypoints[..., 1] <= boxes[:, None, 3] + 1))
    assert inside.all() and ((keypoints[..., 2] > 0) & (keypoints[..., 2] <= 1)).all()
    on_boxes = predictor.predict_on_boxes(images[0], boxes)
    np.testing.assert_allclose(on_boxes.keypoints.numpy(), keypoints, atol=1e-3)

    bundle = export_model(model, cfg, tmp_path / "onnx", ExportOptions(input_size=(256, 320)),
                          progress=lambda _: None)
    assert KEYPOINT_HEAD in graph_names(cfg) and bundle.path(KEYPOINT_HEAD).is_file()
    op_list = load_trt_op_list()
    assert all(check_onnx_for_tensorrt(bundle.path(g), op_list).ok for g in graph_names(cfg))
    exported = OnnxRuntimeBackend(bundle, "cpu")
    reference = TorchBackend(DensePosePredictor(model, cfg), "torch")
    settings = InferenceSettings(score_threshold=0.0, max_detections=5)
    exported.configure(settings)
    reference.configure(settings)
    for image in images:
        a, b = reference.infer(image).numpy(), exported.infer(image).numpy()
        assert len(a) == len(b)
        np.testing.assert_allclose(b.keypoints[..., :2], a.keypoints[..., :2], atol=2.0)
