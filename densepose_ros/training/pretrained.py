"""ImageNet-pretrained ResNet backbones to start training from, as every detectron2 recipe
does (``init_weights: imagenet``, or a detectron2 backbone pickle such as ``R-50.pkl``).

Two sources:

- ``imagenet``: torchvision's ImageNet ResNet-18/50/101 (``IMAGENET1K_V1``), through its
  weights API: downloaded once into torch's cache (``$TORCH_HOME/hub/checkpoints``), read
  from there afterwards; offline with an empty cache, a clear error names the file to put
  there. torchvision normalises RGB input by ImageNet's mean and std; this project's models
  take BGR minus the same mean (times 255) with no division, so the first convolution's
  input channels are reordered and divided by 255 x std, which gives exactly the same
  activations. Its bottleneck blocks stride in the 3x3 convolution, so R-50/101 models
  started from it take ``stride_in_1x1: false`` (as detectron2 sets for torchvision
  weights).
- a detectron2 backbone pickle in the MSRA (Caffe2) layout (``R-50.pkl``, ``R-101.pkl``:
  ``conv1_w``, ``res2_0_branch2a_w``, ``res2_0_branch2a_bn_s`` ...): BGR, no std, stride in
  the 1x1 convolution, as the model zoo's R-50/101 configurations already are. Its
  AffineChannel norms (scale, bias) become batch norms with mean 0 and variance 1 - eps.

Only ``backbone.bottom_up`` is loaded; the FPN and the heads keep detectron2's
initialisation (``modeling.init``).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from densepose_ros.modeling.config import InputConfig, ModelConfig

IMAGENET = "imagenet"
# torchvision architecture per ResNet depth
TORCHVISION_RESNETS = {18: "resnet18", 50: "resnet50", 101: "resnet101"}
# torchvision's input normalisation (RGB, 0..1 scale)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
PREFIX = "backbone.bottom_up."


class PretrainedError(ValueError):
    """Pretrained weights that cannot be had or do not fit the model."""


def is_backbone_pickle(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a detectron2 backbone pickle in the MSRA layout (not a model)."""
    if Path(path).suffix != ".pkl":
        return False
    try:
        blobs = _read_pickle(Path(path))
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        return False
    return "conv1_w" in blobs


def model_config_for(model_cfg: ModelConfig, source: str) -> ModelConfig:
    """The model configuration that fits the pretrained ``source`` (``imagenet`` or a
    pickle path): torchvision's bottleneck ResNets stride in the 3x3 convolution."""
    backbone = model_cfg.backbone
    if source == IMAGENET and backbone.depth >= 50 and backbone.stride_in_1x1:
        return dataclasses.replace(
            model_cfg, backbone=dataclasses.replace(backbone, stride_in_1x1=False))
    return model_cfg


def backbone_state(model_cfg: ModelConfig, source: str, progress: bool = True
                   ) -> dict[str, torch.Tensor]:
    """``backbone.bottom_up.*`` tensors of ``source`` for ``model_cfg``'s backbone."""
    if source == IMAGENET:
        return _from_torchvision(model_cfg, torchvision_state(model_cfg.backbone.depth,
                                                              progress))
    return _from_msra(model_cfg, Path(source))


def torchvision_state(depth: int, progress: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet state dict: from torch's cache, else downloaded."""
    import torchvision

    if depth not in TORCHVISION_RESNETS:
        raise PretrainedError(f"imagenet: no ImageNet ResNet-{depth} in torchvision "
                              f"(depths {sorted(TORCHVISION_RESNETS)})")
    weights = torchvision.models.get_model_weights(TORCHVISION_RESNETS[depth]).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise PretrainedError(
            f"imagenet: cannot get {weights.url} ({error}); offline, copy that file to "
            f"{cached} (torch's cache, $TORCH_HOME) or give a backbone file "
            "(init_weights: PATH/R-50.pkl)") from error


def _from_torchvision(model_cfg: ModelConfig, state: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
    _check_input(model_cfg.input)
    out = {}
    for key, value in state.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        name = key
        name = re.sub(r"^conv1\.", "stem.conv1.", name)
        name = re.sub(r"^bn1\.", "stem.conv1.norm.", name)
        name = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", name)
        name = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", name)
        name = name.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.",
                                                                    ".shortcut.norm.")
        out[PREFIX + name] = value
    # torchvision: conv1((rgb / 255 - mean) / std); ours: conv1(bgr - 255 * mean)
    stem = out[PREFIX + "stem.conv1.weight"]
    divisor = 255.0 * torch.tensor(TORCHVISION_STD, dtype=stem.dtype)
    out[PREFIX + "stem.conv1.weight"] = (stem / divisor[None, :, None, None]).flip(1)
    return out


def _check_input(input_cfg: InputConfig) -> None:
    expected = tuple(255.0 * m for m in reversed(TORCHVISION_MEAN))
    if input_cfg.color_order != "BGR" or not np.allclose(input_cfg.pixel_mean, expected,
                                                         atol=1e-3) \
            or tuple(input_cfg.pixel_std) != (1.0, 1.0, 1.0):
        raise PretrainedError("imagenet: the model's input normalisation is not BGR minus "
                              "the ImageNet mean, so torchvision's first layer cannot be "
                              "carried over exactly")


def _read_pickle(path: Path) -> dict:
    with path.open("rb") as handle:
        data = pickle.load(handle, encoding="latin1")
    if isinstance(data, dict) and "blobs" in data:
        data = data["blobs"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a dict of arrays")
    return data


def _from_msra(model_cfg: ModelConfig, path: Path) -> dict[str, torch.Tensor]:
    try:
        blobs = _read_pickle(path)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise PretrainedError(f"cannot read {path}: {error}") from error
    eps = 1e-5  # FrozenBatchNorm2d's: variance 1 - eps makes the scale exactly bn_s
    out = {}
    for key, value in blobs.items():
        if key.endswith("_momentum") or key.startswith("fc1000") or key.startswith("pred"):
            continue
        name = _msra_name(key)
        if name is None:
            raise PretrainedError(f"{path}: unexpected blob {key!r} for a ResNet backbone")
        tensor = torch.as_tensor(np.asarray(value), dtype=torch.float32)
        out[PREFIX + name] = tensor
        if name.endswith("norm.weight"):
            out[PREFIX + name.replace("weight", "running_mean")] = torch.zeros_like(tensor)
            out[PREFIX + name.replace("weight", "running_var")] = \
                torch.full_like(tensor, 1.0 - eps)
    return out


def _msra_name(key: str) -> str | None:
    """This project's name of a Caffe2 ResNet blob, or None."""
    suffixes = {"_w": "weight", "_bn_s": "norm.weight", "_bn_b": "norm.bias"}
    if key == "conv1_w":
        return "stem.conv1.weight"
    match = re.fullmatch(r"res_conv1_bn_([sb])", key)
    if match:
        return "stem.conv1.norm." + ("weight" if match.group(1) == "s" else "bias")
    match = re.fullmatch(r"res(\d)_(\d+)_branch(1|2a|2b|2c)(_w|_bn_s|_bn_b)", key)
    if not match:
        return None
    stage, block, branch, suffix = match.groups()
    layer = {"1": "shortcut", "2a": "conv1", "2b": "conv2", "2c": "conv3"}[branch]
    name = suffixes[suffix]
    if layer == "shortcut" and suffix != "_w":
        return f"res{stage}.{block}.shortcut.{name}"
    return f"res{stage}.{block}.{layer}.{name}"


def load_backbone(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str
                  ) -> int:
    """Copy ``state`` into the model's ``backbone.bottom_up``: every weight of it must be
    given with its shape (batch-norm counters excepted). The number of tensors loaded."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith(PREFIX)
           and not k.endswith("num_batches_tracked")}
    missing = sorted(own.keys() - state.keys())
    extra = sorted(state.keys() - own.keys())
    if missing or extra:
        raise PretrainedError(
            f"{source} does not fit this backbone: missing {missing[:4]}"
            f"{' ...' if len(missing) > 4 else ''}, unexpected {extra[:4]}"
            f"{' ...' if len(extra) > 4 else ''} (a narrower backbone such as "
            "R_18_FPN_tiny has no ImageNet weights)")
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
             if state[k].shape != v.shape]
    if wrong:
        raise PretrainedError(f"{source} does not fit this backbone: shapes {wrong[:3]}")
    model.load_state_dict({k: state[k] for k in own}, strict=False)
    return len(own)
