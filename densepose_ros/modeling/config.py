"""Named model configurations of DensePose R-CNN.

Every default lives here once, as a dataclass field with a comment on where it comes from.
The four ``*_FPN_s1x*`` configurations reproduce detectron2's DensePose model-zoo configs
(``densepose_rcnn_R_{50,101}_FPN_s1x[_legacy]``); ``R_18_FPN_lite`` is this project's own
light configuration for CPUs and Jetson-class GPUs.

A configuration round-trips through plain dicts (``to_dict``/``ModelConfig.from_dict``) so
that weight files can carry it and loading needs only the path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Feature pyramid levels and their strides (input pixels per map pixel): the RPN runs on
# p2..p6, RoI pooling uses p2..p5. Here, without torch, so the numpy graph glue shares them.
FPN_LEVELS = ("p2", "p3", "p4", "p5", "p6")
FPN_STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
RPN_LEVELS = FPN_LEVELS
ROI_LEVELS = ("p2", "p3", "p4", "p5")
RPN_STRIDES = tuple(FPN_STRIDES[name] for name in RPN_LEVELS)
ROI_STRIDES = tuple(FPN_STRIDES[name] for name in ROI_LEVELS)


@dataclass
class InputConfig:
    """How an image becomes the model's input tensor (detectron2 test-time defaults)."""

    # Channel order the network was trained with; MSRA-initialised detectron2 models use BGR.
    color_order: str = "BGR"
    # Per-channel mean subtracted from 0..255 pixel values, in `color_order` (ImageNet, BGR).
    pixel_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)
    # Per-channel divisor after the mean; 1.0 because MSRA (Caffe) weights expect raw scale.
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Test-time resize: shortest edge to this many pixels (INPUT.MIN_SIZE_TEST)...
    min_size: int = 800
    # ...unless the longest edge would exceed this (INPUT.MAX_SIZE_TEST).
    max_size: int = 1333
    # The padded input is a multiple of the coarsest FPN stride, so levels align exactly.
    size_divisibility: int = 32


@dataclass
class BackboneConfig:
    """ResNet bottom-up network and the FPN on top of it."""

    # ResNet depth: 18/34 use basic blocks, 50/101/152 bottleneck blocks.
    depth: int = 50
    # "FrozenBN" (fixed affine, detectron2's choice for fine-tuning) or "BN" (trainable).
    norm: str = "FrozenBN"
    # MSRA ResNets put the stride-2 in the first 1x1 conv of a block, not in the 3x3.
    stride_in_1x1: bool = True
    # Channels after the stem; res2 bottleneck width equals this (64 in every ResNet).
    stem_channels: int = 64
    # Output channels of res2; doubles per stage (bottleneck: 256, basic blocks: 64).
    res2_out_channels: int = 256
    # Channels of every FPN level.
    fpn_channels: int = 256
    # Lateral/top-down fusion; detectron2's FPN default sums the two.
    fpn_fuse: str = "sum"


@dataclass
class RPNConfig:
    """Region proposal network (detectron2 StandardRPNHead + test-time proposal selection)."""

    # One anchor size per FPN level p2..p6 (pixels, square-root of the anchor area).
    anchor_sizes: tuple[float, ...] = (32.0, 64.0, 128.0, 256.0, 512.0)
    # Height/width ratios of the anchors at every position.
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    # Anchor centres at offset * stride from each cell's corner (detectron2 default 0.0).
    anchor_offset: float = 0.0
    # Best-scoring anchors kept per level before NMS (RPN.PRE_NMS_TOPK_TEST).
    pre_nms_topk: int = 1000
    # Proposals kept per image after NMS (RPN.POST_NMS_TOPK_TEST).
    post_nms_topk: int = 1000
    # The same while training (model.train()): more candidates for the box head's sampling
    # (RPN.PRE_NMS_TOPK_TRAIN, RPN.POST_NMS_TOPK_TRAIN of detectron2's FPN configs).
    pre_nms_topk_train: int = 2000
    post_nms_topk_train: int = 1000
    # IoU threshold of the per-level NMS (RPN.NMS_THRESH).
    nms_threshold: float = 0.7
    # Proposals whose side is not larger than this many pixels are dropped (0: empty boxes).
    min_box_size: float = 0.0
    # Box-delta weights of the RPN's box coder (dx, dy, dw, dh).
    box_reg_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


@dataclass
class BoxHeadConfig:
    """Fast R-CNN box head on p2..p5 and the test-time detection filter."""

    # RoIAlign output size of the box head.
    pooler_resolution: int = 7
    # Bilinear samples per RoIAlign bin edge (DensePose configs set 2; 0 would be adaptive).
    pooler_sampling_ratio: int = 2
    # detectron2 pooler type "ROIAlign" (aligned=False); "ROIAlignV2" would be True.
    pooler_aligned: bool = False
    # Width of the fully connected layers; how many of them.
    fc_dim: int = 1024
    num_fc: int = 2
    # Foreground classes (person only).
    num_classes: int = 1
    # Box-delta weights of the second stage (detectron2 ROI_BOX_HEAD.BBOX_REG_WEIGHTS).
    box_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    # Detections scoring at or below this are dropped (ROI_HEADS.SCORE_THRESH_TEST).
    score_threshold: float = 0.05
    # IoU threshold of the final NMS (ROI_HEADS.NMS_THRESH_TEST).
    nms_threshold: float = 0.5
    # At most this many detections per image (TEST.DETECTIONS_PER_IMAGE).
    max_detections: int = 100


@dataclass
class DensePoseHeadConfig:
    """DensePoseV1ConvXHead, its chart predictor and the optional Panoptic-FPN decoder."""

    # RoIAlign output size (28 in the s1x configs, 14 in the legacy ones).
    pooler_resolution: int = 28
    # Bilinear samples per bin edge (ROI_DENSEPOSE_HEAD.POOLER_SAMPLING_RATIO).
    pooler_sampling_ratio: int = 2
    # The DensePose configs use pooler type "ROIAlign", i.e. aligned=False.
    pooler_aligned: bool = False
    # Stacked 3x3 convolutions of the head, their width and kernel size.
    num_convs: int = 8
    conv_channels: int = 512
    conv_kernel: int = 3
    # Kernel of the stride-2 transposed convolution of every predictor output.
    deconv_kernel: int = 4
    # Bilinear upscale after the transposed convolution.
    upscale: int = 2
    # Coarse segmentation channels: 2 (background/foreground) or 15 (legacy: 14 parts + bg).
    num_coarse_segm_channels: int = 2
    # Surface charts; fine segmentation/U/V have one more channel (background).
    num_patches: int = 24
    # Head on the pooled features: "convx" (DensePoseV1ConvXHead: stacked 3x3 convs) or
    # "deeplab" (DensePoseDeepLabHead: ASPP, then stacked 3x3 convs with GroupNorm).
    head: str = "convx"
    # Per-pixel U/V confidence of the WC models: "" (none), "iid_iso" (WC1: sigma_2) or
    # "indep_aniso" (WC2: sigma_2, kappa_u, kappa_v).
    uv_confidence: str = ""
    # Coarse and fine segmentation confidences (the "M" models); they scale the logits.
    segm_confidence: bool = False
    # Lower bound added to the softplus of the confidences (UV_/SEGM_CONFIDENCE.EPSILON).
    confidence_epsilon: float = 0.01
    # Panoptic-FPN style decoder fusing p2..p5 before pooling (non-legacy s1x configs).
    decoder_on: bool = True
    # Decoder conv width, output channels and the stride of its single output map.
    decoder_channels: int = 256
    decoder_out_channels: int = 256
    decoder_common_stride: int = 4

    @property
    def confidence_outputs(self) -> tuple[str, ...]:
        """Names of the confidence outputs this head predicts (see DensePoseChartOutput)."""
        names = {"": (), "iid_iso": ("sigma_2",),
                 "indep_aniso": ("sigma_2", "kappa_u", "kappa_v")}[self.uv_confidence]
        if self.segm_confidence:
            names += ("fine_segm_confidence", "coarse_segm_confidence")
        return names

    @property
    def heatmap_size(self) -> int:
        """Side of the predictor outputs: pooled size x2 (deconv) x upscale."""
        return self.pooler_resolution * 2 * self.upscale


@dataclass
class KeypointHeadConfig:
    """Mask R-CNN's keypoint head (detectron2's KRCNNConvDeconvUpsampleHead, keys
    ``roi_heads.keypoint_head.*``) and the DensePose paper's cross-talk (Güler et al. 2018,
    "multi-task cross-cascading": the keypoint heatmaps join the DensePose head's input)."""

    # Off in every detectron2 DensePose config; a multi-task model turns it on.
    enabled: bool = False
    # COCO's 17 keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
    num_keypoints: int = 17
    # Stacked 3x3 convolutions (ROI_KEYPOINT_HEAD.CONV_DIMS: 8 x 512).
    num_convs: int = 8
    conv_channels: int = 512
    deconv_kernel: int = 4
    upscale: int = 2
    # ROIAlignV2 (aligned) 14x14 with adaptive sampling, as detectron2's keypoint pooler.
    pooler_resolution: int = 14
    pooler_sampling_ratio: int = 0
    pooler_aligned: bool = True
    # Cross-talk: the K heatmap logits, resized to the DensePose pooled size, are
    # concatenated to the DensePose head's input.
    cross_talk: bool = False

    @property
    def heatmap_size(self) -> int:
        """Side of the heatmaps: pooled size x2 (deconv) x upscale (56 with the defaults)."""
        return self.pooler_resolution * 2 * self.upscale


@dataclass(frozen=True)
class PoolerGeometry:
    """Where a (multi-level) RoIAlign samples, shared by the torch pooler
    (``box_ops.MultiLevelRoIAlign``) and the numpy glue's: output side, the levels' strides
    (4, 8, 16, 32 for p2..p5, or one map's), sampling points per bin and axis (0: adaptive,
    detectron2's ROIAlignV2 keypoint pooler) and torchvision's ``aligned`` (half-pixel)."""

    output_size: int
    strides: tuple[int, ...]
    sampling_ratio: int
    aligned: bool

    @property
    def scales(self) -> tuple[float, ...]:
        return tuple(1.0 / s for s in self.strides)

    @property
    def min_level(self) -> int:
        return int(round(math.log2(self.strides[0])))

    @property
    def max_level(self) -> int:
        return int(round(math.log2(self.strides[-1])))


def densepose_pooler_geometry(dp: DensePoseHeadConfig) -> PoolerGeometry:
    """The DensePose branch's RoIAlign: on the decoder's map, or on p2..p5."""
    strides = (dp.decoder_common_stride,) if dp.decoder_on else ROI_STRIDES
    return PoolerGeometry(dp.pooler_resolution, strides, dp.pooler_sampling_ratio,
                          dp.pooler_aligned)


def keypoint_pooler_geometry(kp: KeypointHeadConfig) -> PoolerGeometry:
    """The keypoint branch's RoIAlign (ROIAlignV2, adaptive sampling) on p2..p5."""
    return PoolerGeometry(kp.pooler_resolution, ROI_STRIDES, kp.pooler_sampling_ratio,
                          kp.pooler_aligned)


def box_pooler_geometry(box: BoxHeadConfig) -> PoolerGeometry:
    """The box head's RoIAlign on p2..p5."""
    return PoolerGeometry(box.pooler_resolution, ROI_STRIDES, box.pooler_sampling_ratio,
                          box.pooler_aligned)


@dataclass
class ModelConfig:
    """A complete DensePose R-CNN configuration."""

    name: str = "R_50_FPN_s1x"
    input: InputConfig = field(default_factory=InputConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    box_head: BoxHeadConfig = field(default_factory=BoxHeadConfig)
    densepose: DensePoseHeadConfig = field(default_factory=DensePoseHeadConfig)
    keypoints: KeypointHeadConfig = field(default_factory=KeypointHeadConfig)
    # detectron2 config this one reproduces (its keys are the importer's expectations), or "".
    detectron2_config: str = ""
    # Scale clamp of box decoding: no box grows more than 1000/16 times per step.
    box_scale_clamp: float = math.log(1000.0 / 16)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a configuration from ``to_dict`` output; unknown fields are an error."""
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a dict, got {type(data).__name__}")
        return _from_dict(cls, data, "config")


def _from_dict(cls, data: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _r50_s1x() -> ModelConfig:
    return ModelConfig(name="R_50_FPN_s1x", detectron2_config="densepose_rcnn_R_50_FPN_s1x")


def _r50_legacy() -> ModelConfig:
    return ModelConfig(
        name="R_50_FPN_s1x_legacy",
        detectron2_config="densepose_rcnn_R_50_FPN_s1x_legacy",
        densepose=DensePoseHeadConfig(
            pooler_resolution=14, num_coarse_segm_channels=15, decoder_on=False
        ),
    )


def _r101(base: ModelConfig) -> ModelConfig:
    cfg = dataclasses.replace(
        base,
        name=base.name.replace("R_50", "R_101"),
        detectron2_config=base.detectron2_config.replace("R_50", "R_101"),
        backbone=dataclasses.replace(base.backbone, depth=101),
    )
    return cfg


def _variant(base: ModelConfig, tag: str, head: str = "convx", uv_confidence: str = "",
             segm_confidence: bool = False) -> ModelConfig:
    """An s1x model-zoo variant: its name adds `tag` (DL, WC1, DL_WC2M, ...) before "_s1x"."""
    return dataclasses.replace(
        base,
        name=base.name.replace("_s1x", f"_{tag}_s1x"),
        detectron2_config=base.detectron2_config.replace("_s1x", f"_{tag}_s1x"),
        densepose=dataclasses.replace(base.densepose, head=head, uv_confidence=uv_confidence,
                                      segm_confidence=segm_confidence),
    )


def _zoo_variants() -> dict[str, Callable[[], ModelConfig]]:
    """The DeepLab-head and confidence models of detectron2's model zoo, R-50 and R-101:
    DL (DeepLabV3 head), WC1 / WC2 (U/V confidence iid_iso / indep_aniso), WC1M / WC2M
    (also segmentation confidence), and their DL_ combinations."""
    kinds = {"WC1": ("iid_iso", False), "WC2": ("indep_aniso", False),
             "WC1M": ("iid_iso", True), "WC2M": ("indep_aniso", True)}
    builders: dict[str, Callable[[], ModelConfig]] = {}
    for depth_base in (_r50_s1x, lambda: _r101(_r50_s1x())):
        for deeplab in (False, True):
            head = "deeplab" if deeplab else "convx"
            prefix = "DL_" if deeplab else ""
            specs = [(prefix + kind, uv, segm) for kind, (uv, segm) in kinds.items()]
            if deeplab:
                specs.insert(0, ("DL", "", False))
            for tag, uv, segm in specs:
                cfg = _variant(depth_base(), tag, head, uv, segm)
                builders[cfg.name] = (lambda b=depth_base, t=tag, h=head, u=uv, s=segm:
                                      _variant(b(), t, h, u, s))
    return builders


# detectron2's bootstrapping (chimpanzee) models: the R_50_FPN_DL_WC1M architecture, trained
# class-agnostically on animals (Sanakoyeu et al. 2020).
_BOOTSTRAP_SUFFIXES = ("", "_B_uniform", "_B_uv", "_B_finesegm", "_B_coarsesegm")


def _bootstrap(suffix: str) -> ModelConfig:
    base = _variant(_r50_s1x(), "DL_WC1M", "deeplab", "iid_iso", True)
    name = f"R_50_FPN_DL_WC1M_3x_Atop10P_CA{suffix}"
    return dataclasses.replace(base, name=name, detectron2_config=f"densepose_{name}")


def _r18_lite() -> ModelConfig:
    # Light model trained from scratch at 320-480 px: trainable BN (folded at inference),
    # narrower FPN and heads, fewer proposals. Same structure, so the same code runs it.
    return ModelConfig(
        name="R_18_FPN_lite",
        input=InputConfig(min_size=480, max_size=800),
        backbone=BackboneConfig(
            depth=18, norm="BN", stride_in_1x1=False, res2_out_channels=64, fpn_channels=128
        ),
        rpn=RPNConfig(pre_nms_topk=300, post_nms_topk=100, pre_nms_topk_train=600,
                      post_nms_topk_train=100),
        box_head=BoxHeadConfig(fc_dim=512, max_detections=20),
        densepose=DensePoseHeadConfig(
            pooler_resolution=14, num_convs=4, conv_channels=128, decoder_on=False
        ),
    )


def _r18_tiny() -> ModelConfig:
    # The bundled default model: R_18_FPN_lite at half the backbone width and narrower FPN and
    # heads (5.0 M parameters instead of 16.3 M), so that its weights fit in git (10 MB
    # stored as float16) and a CPU can train it from scratch in an afternoon. Test size 320:
    # the synthetic training images are 320x240.
    return ModelConfig(
        name="R_18_FPN_tiny",
        input=InputConfig(min_size=320, max_size=640),
        backbone=BackboneConfig(
            depth=18, norm="BN", stride_in_1x1=False, stem_channels=32, res2_out_channels=32,
            fpn_channels=96,
        ),
        rpn=RPNConfig(pre_nms_topk=300, post_nms_topk=100, pre_nms_topk_train=600,
                      post_nms_topk_train=100),
        box_head=BoxHeadConfig(fc_dim=256, max_detections=20),
        densepose=DensePoseHeadConfig(
            pooler_resolution=14, num_convs=4, conv_channels=96, decoder_on=False
        ),
    )


def _with_keypoints(base: ModelConfig, suffix: str, cross_talk: bool) -> ModelConfig:
    """The light model plus a keypoint head (narrow like its DensePose head), optionally with
    cross-talk into the DensePose head: the multi-task variants of the paper's ablation."""
    return dataclasses.replace(
        base, name=base.name + suffix,
        keypoints=KeypointHeadConfig(enabled=True, num_convs=4,
                                     conv_channels=base.densepose.conv_channels,
                                     cross_talk=cross_talk))


_BUILDERS = {
    "R_50_FPN_s1x_legacy": _r50_legacy,
    "R_101_FPN_s1x_legacy": lambda: _r101(_r50_legacy()),
    "R_50_FPN_s1x": _r50_s1x,
    "R_101_FPN_s1x": lambda: _r101(_r50_s1x()),
    "R_18_FPN_lite": _r18_lite,
    "R_18_FPN_tiny": _r18_tiny,
    "R_18_FPN_tiny_kp": lambda: _with_keypoints(_r18_tiny(), "_kp", cross_talk=False),
    "R_18_FPN_tiny_kp_xtalk": lambda: _with_keypoints(_r18_tiny(), "_kp_xtalk", cross_talk=True),
    **_zoo_variants(),
    **{f"R_50_FPN_DL_WC1M_3x_Atop10P_CA{s}": (lambda s=s: _bootstrap(s))
       for s in _BOOTSTRAP_SUFFIXES},
}
CONFIG_NAMES: tuple[str, ...] = tuple(_BUILDERS)
# The configuration meant for CPUs and embedded GPUs.
LIGHT_CONFIG_NAME = "R_18_FPN_lite"


# Any configuration with a keypoint head: NAME + one of these (e.g. R_50_FPN_s1x_kp_xtalk).
KEYPOINT_SUFFIXES = {"_kp": False, "_kp_xtalk": True}  # suffix -> cross-talk


def get_config(name: str) -> ModelConfig:
    """A fresh copy of the named configuration; detectron2 names are accepted too, and any
    name + ``_kp`` / ``_kp_xtalk`` gives that model with detectron2's keypoint head (8 x 512
    convs), without / with cross-talk (the R_18_FPN_tiny ones have a narrow head)."""
    key = name.removeprefix("densepose_rcnn_").removeprefix("densepose_")
    if key in _BUILDERS:
        return _BUILDERS[key]()
    for suffix, cross_talk in KEYPOINT_SUFFIXES.items():
        base = key.removesuffix(suffix)
        if base != key and base in _BUILDERS:
            cfg = _BUILDERS[base]()
            return dataclasses.replace(cfg, name=cfg.name + suffix, keypoints=KeypointHeadConfig(
                enabled=True, cross_talk=cross_talk))
    raise ValueError(f"unknown model config '{name}'; known: {', '.join(CONFIG_NAMES)} "
                     f"(each also with {' or '.join(KEYPOINT_SUFFIXES)} for a keypoint head)")
