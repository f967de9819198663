"""Initial weights as detectron2 gives them to a model trained from scratch (where no
checkpoint or ImageNet backbone provides them). Each rule names detectron2's choice:

- ResNet and the DensePose decoder: ``c2_msra_fill`` (Kaiming normal, fan-out, ReLU);
- FPN convolutions and the box head's fully connected layers: ``c2_xavier_fill`` (Kaiming
  uniform with a = 1);
- RPN head: normal, std 0.01;
- box predictor: classifier normal std 0.01, box regressor normal std 0.001;
- DensePose head and predictor, keypoint head: ``initialize_module_params`` (Kaiming
  normal, fan-out, ReLU);
- every bias 0; norms keep weight 1, bias 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _msra(weight: torch.Tensor) -> None:
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


def _xavier(weight: torch.Tensor) -> None:
    nn.init.kaiming_uniform_(weight, a=1)


def _normal(std: float) -> Callable[[torch.Tensor], None]:
    return lambda weight: nn.init.normal_(weight, std=std)


# (module-name prefix, weight initialiser), most specific first.
RULES: tuple[tuple[str, Callable[[torch.Tensor], None]], ...] = (
    ("backbone.bottom_up.", _msra),
    ("backbone.fpn_", _xavier),
    ("proposal_generator.rpn_head.", _normal(0.01)),
    ("roi_heads.box_head.", _xavier),
    ("roi_heads.box_predictor.cls_score", _normal(0.01)),
    ("roi_heads.box_predictor.bbox_pred", _normal(0.001)),
    ("roi_heads.decoder.", _msra),
    ("roi_heads.densepose_head.", _msra),
    ("roi_heads.densepose_predictor.", _msra),
    ("roi_heads.keypoint_head.", _msra),
)
_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def initialize_like_detectron2(model: nn.Module) -> list[str]:
    """Initialise every convolution and linear layer of ``model`` by ``RULES``; the names of
    those no rule covers (left at torch's default), which should be none."""
    uncovered = []
    for name, module in model.named_modules():
        if not isinstance(module, _LAYERS):
            continue
        rule = next((init for prefix, init in RULES if name.startswith(prefix)), None)
        if rule is None:
            uncovered.append(name)
            continue
        rule(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return uncovered
