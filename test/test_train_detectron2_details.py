"""detectron2's training details, each checked against detectron2's own values: initial
weights, the DensePose head's IoU > 0.7, the training RPN top-k, a flip symmetry that must be
named. (Values from detectron2's configs and code: projects/DensePose/densepose/config.py,
modeling/roi_heads/fast_rcnn.py, modeling/proposal_generator/rpn.py, Base-RCNN-FPN.yaml.)"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou
from train_fixtures import tiny_synth_set

from densepose_ros.modeling.config import get_config
from densepose_ros.modeling.init import initialize_like_detectron2
from densepose_ros.modeling.model import DensePoseRCNN, build_model

REPO_ROOT = Path(__file__).resolve().parent.parent


def _std(tensor: torch.Tensor) -> float:
    return float(tensor.detach().float().std())


def test_initial_weights_are_detectron2s():
    from densepose_ros.training.config import DatasetEntry, TrainConfig
    from densepose_ros.training.trainer import initial_model

    model, _ = initial_model(TrainConfig(
        model="R_50_FPN_s1x", datasets=[DatasetEntry(annotations="a.json", symmetry="anny")]))
    layers = dict(model.named_modules())
    predictor = model.roi_heads.box_predictor
    # FastRCNNOutputLayers: normal(std=0.01) classifier, normal(std=0.001) box regressor
    assert _std(predictor.cls_score.weight) == pytest.approx(0.01, rel=0.05)
    assert _std(predictor.bbox_pred.weight) == pytest.approx(0.001, rel=0.05)
    # StandardRPNHead: normal(std=0.01) everywhere
    assert _std(model.proposal_generator.rpn_head.conv.weight) == pytest.approx(0.01, rel=0.05)
    # DensePose head and predictor: Kaiming normal, fan-out, ReLU gain: std sqrt(2 / fan_out)
    conv = layers["roi_heads.densepose_head.body_conv_fcn1"]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert _std(conv.weight) == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    # FPN and box head: c2_xavier_fill, Kaiming uniform a=1: std 1 / sqrt(fan_in)
    fc = model.roi_heads.box_head.fc1
    assert _std(fc.weight) == pytest.approx(1 / math.sqrt(fc.in_features), rel=0.05)
    lateral = layers["backbone.fpn_lateral2"]
    assert _std(lateral.weight) == pytest.approx(1 / math.sqrt(lateral.in_channels), rel=0.1)
    for name, module in layers.items():
        bias = getattr(module, "bias", None)
        if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear) \
                and bias is not None:
            assert not bias.any(), name


@pytest.mark.parametrize("name", ["R_18_FPN_tiny_kp_xtalk", "R_50_FPN_DL_WC2M_s1x",
                                  "R_101_FPN_s1x_legacy"])
def test_every_layer_of_every_head_has_an_initialisation_rule(name):
    assert initialize_like_detectron2(DensePoseRCNN(get_config(name))) == []


def test_training_uses_detectron2s_larger_rpn_top_k():
    rpn = get_config("R_50_FPN_s1x").rpn
    # Base-RCNN-FPN.yaml: PRE_NMS_TOPK_TRAIN 2000 / TEST 1000, POST_NMS_TOPK 1000 / 1000
    assert (rpn.pre_nms_topk_train, rpn.pre_nms_topk) == (2000, 1000)
    assert (rpn.post_nms_topk_train, rpn.post_nms_topk) == (1000, 1000)
    # and the model follows its mode
    cfg = get_config("R_18_FPN_tiny")
    cfg = dataclasses.replace(cfg, rpn=dataclasses.replace(cfg.rpn, post_nms_topk=20,
                                                           post_nms_topk_train=200))
    torch.manual_seed(0)
    model = build_model(cfg)
    images = torch.randn(1, 3, 256, 320) * 50
    with torch.no_grad():
        features = model.backbone_features(images)
        tested = model.propose(features, [(256, 320)])[0][0]
        model.train()
        trained = model.propose(features, [(256, 320)])[0][0]
    assert len(tested) == 20 and 20 < len(trained) <= 200


def test_the_densepose_head_trains_on_rois_above_iou_0_7(tmp_path_factory):
    from densepose_ros.data.batching import collate_samples
    from densepose_ros.data.dataset import DatasetSpec, DensePoseCocoDataset
    from densepose_ros.inference.checkpoint import load_model
    from densepose_ros.training.detection import DetectionTrainingConfig, training_step_losses

    data = tiny_synth_set(tmp_path_factory)
    dataset = DensePoseCocoDataset(DatasetSpec(data / "annotations.json"), train=False)
    model, model_cfg = load_model(REPO_ROOT / "models" / "densepose_default.pth")
    batch = collate_samples([dataset[k] for k in range(4)], model_cfg.input)
    model.train()

    def dense_rois(iou: float) -> list[float]:
        cfg = dataclasses.replace(DetectionTrainingConfig(), densepose_iou=iou)
        with torch.no_grad():
            output = training_step_losses(model, batch, cfg, torch.Generator().manual_seed(0))
        ious = []
        for boxes, gt_index, targets in zip(output.foreground.boxes, output.foreground.gt_index,
                                            batch.targets, strict=True):
            own = box_iou(boxes, targets.boxes[gt_index]).diagonal()
            ious += own.tolist()
        return ious

    default = dense_rois(DetectionTrainingConfig().densepose_iou)
    assert DetectionTrainingConfig().densepose_iou == 0.7  # FG_IOU_THRESHOLD
    assert default and min(default) > 0.7
    loose = dense_rois(0.5)  # what was trained on before: every foreground RoI
    assert len(loose) > len(default) and min(loose) < 0.7


def test_a_source_without_symmetry_trains_only_without_flips():
    from densepose_ros.training.config import TrainConfigError, load_train_config

    with pytest.raises(TrainConfigError, match="missing key 'symmetry'"):
        load_train_config(None, ["datasets=[{annotations: coco.json}]"])
    # named, or flips off: fine
    load_train_config(None, ["datasets=[{annotations: coco.json, symmetry: null}]"])
    load_train_config(None, ["datasets=[{annotations: coco.json}]",
                             "augmentation.flip_probability=0.0"])
