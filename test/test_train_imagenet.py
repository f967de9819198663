"""`init_weights: imagenet` and detectron2 backbone pickles, as detectron2 recipes start.

Nothing can be downloaded here, so torch's cache is pre-seeded with a file of torchvision's
name and layout (a randomly initialised torchvision ResNet-18, running statistics included),
and a Caffe2-layout R-50.pkl is written blob by blob from ResNet-50's published structure.
"""

from __future__ import annotations

import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from densepose_ros.training.config import DatasetEntry, TrainConfig
from densepose_ros.training.trainer import TrainingError, initial_model


def _config(model: str, init: str) -> TrainConfig:
    return TrainConfig(model=model, init_weights=init,
                       datasets=[DatasetEntry(annotations="unused.json", symmetry="anny")])


def _seed_torch_cache(torch_home: Path) -> torchvision.models.ResNet:
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18()
    for module in resnet.modules():  # statistics that matter, not the 0/1 defaults
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    target = torch_home / "hub" / "checkpoints" / Path(url).name
    target.parent.mkdir(parents=True)
    torch.save(resnet.state_dict(), target)
    return resnet.eval()


def test_imagenet_resnet18_from_torch_cache_computes_what_torchvision_computes(
        tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    resnet = _seed_torch_cache(tmp_path)
    model, model_cfg = initial_model(_config("R_18_FPN_lite", "imagenet"))
    bottom_up = model.backbone.bottom_up.eval()
    image = np.random.default_rng(0).integers(0, 256, (160, 224, 3)).astype(np.float32)  # BGR
    ours_in = torch.from_numpy(image - np.asarray(model_cfg.input.pixel_mean, np.float32))
    rgb = image[:, :, ::-1] / 255.0
    theirs_in = torch.from_numpy(((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
                                 .astype(np.float32).copy())
    with torch.no_grad():
        ours = bottom_up(ours_in.permute(2, 0, 1)[None])[-1]
        x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(theirs_in.permute(2, 0, 1)[None]))))
        theirs = resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(x))))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # the heads are not ImageNet's: detectron2's initialisation, untouched
    assert float(model.roi_heads.box_predictor.bbox_pred.weight.std()) < 0.002


def test_offline_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with socket.socket() as probe:  # a closed port as the proxy: no network at all
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, closed)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(TrainingError, match="cannot get .*resnet50.* copy that file to") as err:
        initial_model(_config("R_50_FPN_s1x", "imagenet"))
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value)


def test_a_backbone_narrower_than_resnet18_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _seed_torch_cache(tmp_path)
    with pytest.raises(TrainingError, match="does not fit this backbone"):
        initial_model(_config("R_18_FPN_tiny", "imagenet"))


def _msra_r50_blobs() -> dict[str, np.ndarray]:
    """Caffe2 blob names and shapes of MSRA's ResNet-50 (as in detectron2's R-50.pkl)."""
    rng = np.random.default_rng(5)

    def blob(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    blobs = {"conv1_w": blob(64, 3, 7, 7), "res_conv1_bn_s": blob(64),
             "res_conv1_bn_b": blob(64), "fc1000_w": blob(1000, 2048),
             "fc1000_b": blob(1000), "conv1_w_momentum": blob(64, 3, 7, 7)}
    in_ch = 64
    for stage, (blocks, mid) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        out = mid * 4
        for b in range(blocks):
            prefix = f"res{stage}_{b}_"
            if b == 0:
                blobs[prefix + "branch1_w"] = blob(out, in_ch, 1, 1)
                blobs[prefix + "branch1_bn_s"], blobs[prefix + "branch1_bn_b"] = \
                    blob(out), blob(out)
            shapes = {"2a": (mid, in_ch, 1, 1), "2b": (mid, mid, 3, 3), "2c": (out, mid, 1, 1)}
            for branch, shape in shapes.items():
                blobs[f"{prefix}branch{branch}_w"] = blob(*shape)
                blobs[f"{prefix}branch{branch}_bn_s"] = blob(shape[0])
                blobs[f"{prefix}branch{branch}_bn_b"] = blob(shape[0])
            in_ch = out
    return blobs


def test_a_detectron2_msra_backbone_pickle_is_accepted(tmp_path):
    blobs = _msra_r50_blobs()
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs}))
    model, model_cfg = initial_model(_config("R_50_FPN_s1x", str(path)))
    assert model_cfg.backbone.stride_in_1x1  # MSRA's layout: as the model zoo's R-50
    state = model.state_dict()
    pairs = {"res3_1_branch2b_w": "res3.1.conv2.weight",
             "res4_0_branch1_w": "res4.0.shortcut.weight",
             "res4_0_branch1_bn_s": "res4.0.shortcut.norm.weight",
             "res5_2_branch2c_bn_b": "res5.2.conv3.norm.bias",
             "res_conv1_bn_s": "stem.conv1.norm.weight", "conv1_w": "stem.conv1.weight"}
    for blob, name in pairs.items():
        np.testing.assert_array_equal(state[f"backbone.bottom_up.{name}"].numpy(), blobs[blob])
    # AffineChannel (scale s, bias b) as a frozen batch norm: scale exactly s
    norm = model.backbone.bottom_up.res2[0].conv1.norm
    scale, shift = norm.scale_and_shift()
    np.testing.assert_allclose(scale.numpy(), blobs["res2_0_branch2a_bn_s"], rtol=1e-6)
    np.testing.assert_allclose(shift.numpy(), blobs["res2_0_branch2a_bn_b"], rtol=1e-6)
