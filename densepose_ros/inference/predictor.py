"""DensePosePredictor: image in, ``DensePoseResult`` in source-image pixels out."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from densepose_ros.inference.precision import PREDICTOR_PRECISIONS, check_precision
from densepose_ros.inference.preprocess import PreparedImage, preprocess_image
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult, StageClock
from densepose_ros.modeling.config import ModelConfig
from densepose_ros.modeling.keypoint_head import heatmaps_to_keypoints, no_heatmaps
from densepose_ros.modeling.model import ROI_LEVELS


class DensePosePredictor:
    """Runs DensePose R-CNN on single images.

    Thresholds left as None use the configuration's test defaults; the attributes
    ``score_threshold``, ``nms_threshold``, ``max_detections`` and ``resize`` may be changed
    between calls. With ``fold_norms`` (default) the model's frozen norms are merged into its
    convolutions in place: faster, same results, but that model can no longer be saved.
    ``channels_last`` (default) stores weights and activations NHWC, the layout oneDNN's CPU
    convolutions and cuDNN's tensor cores run fastest on; results are unchanged up to float
    rounding. ``precision="bf16"`` runs convolutions and linear layers in bfloat16 (box
    decoding, NMS and outputs stay float32): about 3x faster on CPUs with AVX512-BF16/AMX,
    slower on CPUs without; results then differ slightly from float32 (not detectron2-exact).
    """

    def __init__(self, model: nn.Module, cfg: ModelConfig, device: str | torch.device = "cpu",
                 score_threshold: float | None = None, nms_threshold: float | None = None,
                 max_detections: int | None = None, resize: bool = True,
                 fold_norms: bool = True, channels_last: bool = True,
                 precision: str = "fp32"):
        self.device = torch.device(device)
        self.cfg = cfg
        self.model = model.to(self.device).eval()
        if fold_norms and not getattr(self.model, "norms_folded", False):
            self.model.fold_norms()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.score_threshold = cfg.box_head.score_threshold if score_threshold is None \
            else score_threshold
        self.nms_threshold = cfg.box_head.nms_threshold if nms_threshold is None \
            else nms_threshold
        self.max_detections = cfg.box_head.max_detections if max_detections is None \
            else max_detections
        self.resize = resize
        self.precision = check_precision(precision, PREDICTOR_PRECISIONS, "predictor")

    @classmethod
    def from_weights(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                     **overrides) -> DensePosePredictor:
        """Predictor for one of our weight files (see ``densepose_ros.inference.checkpoint``)."""
        from densepose_ros.inference.checkpoint import load_model

        model, cfg = load_model(path, device=device)
        return cls(model, cfg, device=device, **overrides)

    # -- public API ---------------------------------------------------------------------------
    def __call__(self, image: np.ndarray, color_order: str = "BGR") -> DensePoseResult:
        """Detect persons in an H x W x 3 uint8 image and predict their charts."""
        clock = StageClock(self.device)
        with torch.inference_mode(), self._autocast():
            prepared = self._prepare(image, color_order)
            clock.lap("preprocess")
            features = self.model.backbone_features(prepared.tensor)
            clock.lap("backbone")
            proposals = self.model.propose(features, [prepared.input_size])
            features = self._for_pooling(features)
            clock.lap("rpn")
            (boxes, scores), = self.model.detect(
                features, [proposals[0][0]], [prepared.input_size],
                score_threshold=float(self.score_threshold),
                nms_threshold=float(self.nms_threshold),
                max_detections=int(self.max_detections),
            )
            clock.lap("box_head")
            heatmaps = self._keypoint_heatmaps(features, boxes)
            charts = self._densepose(features, boxes, heatmaps)
            clock.lap("densepose_head")
            result = prepared.result_in_source(boxes, scores, charts,
                                               self._keypoints(heatmaps, boxes))
            clock.lap("postprocess")
        result.timings = clock.timings
        return result

    def _for_pooling(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The RoI levels in the standard layout, converted once: RoIAlign reads only that
        and converted channels-last maps on each call (box, keypoint and DensePose poolers:
        130 ms of copies per R-50 frame at 1067x800). The values are the same."""
        if self.memory_format != torch.channels_last:
            return features
        return {name: value.contiguous() if name in ROI_LEVELS else value
                for name, value in features.items()}

    def predict_on_boxes(self, image: np.ndarray, boxes_xyxy, color_order: str = "BGR"
                         ) -> DensePoseResult:
        """DensePose charts for caller-given person boxes ([N, 4] xyxy, source pixels).

        Only the backbone and the DensePose branch run; the result keeps the given boxes
        (as float32) in their order, with scores of 1.0.
        """
        boxes = torch.as_tensor(np.asarray(boxes_xyxy, dtype=np.float32))
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            if boxes.numel() == 0:
                boxes = boxes.reshape(0, 4)
            else:
                raise ValueError(f"boxes must have shape [N, 4] (x1, y1, x2, y2), got "
                                 f"{tuple(boxes.shape)}")
        if not torch.isfinite(boxes).all():
            raise ValueError("boxes must be finite")
        clock = StageClock(self.device)
        with torch.inference_mode(), self._autocast():
            prepared = self._prepare(image, color_order)
            clock.lap("preprocess")
            sx, sy = prepared.scale_xy
            to_input = torch.tensor([1 / sx, 1 / sy, 1 / sx, 1 / sy])
            input_boxes = (boxes * to_input).to(self.device)
            features = (self.model.backbone_features(prepared.tensor) if len(boxes) else None)
            clock.lap("backbone")
            heatmaps = self._keypoint_heatmaps(features, input_boxes)
            charts = self._densepose(features, input_boxes, heatmaps)
            clock.lap("densepose_head")
            keypoints = self._keypoints(heatmaps, input_boxes)
            if keypoints is not None:
                keypoints = keypoints.cpu() * torch.tensor([sx, sy, 1.0])
            result = DensePoseResult(boxes.clone(), torch.ones(len(boxes)), charts.to("cpu"),
                                     prepared.source_size, keypoints=keypoints)
            clock.lap("postprocess")
        result.timings = clock.timings
        return result

    # -- internals ----------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def _prepare(self, image: np.ndarray, color_order: str) -> PreparedImage:
        prepared = preprocess_image(image, self.cfg.input, color_order=color_order,
                                    resize=self.resize, device=self.device)
        prepared.tensor = prepared.tensor.contiguous(memory_format=self.memory_format)
        return prepared

    def _densepose(self, features, boxes: torch.Tensor,
                   heatmaps: torch.Tensor | None = None) -> DensePoseChartOutput:
        if boxes.shape[0] == 0:  # convolutions on an empty batch are not supported everywhere
            dp = self.cfg.densepose
            return DensePoseChartOutput.empty(dp.num_coarse_segm_channels, dp.heatmap_size,
                                              dp.confidence_outputs)
        return self.model.densepose_on_boxes(features, [boxes], heatmaps)

    def _keypoint_heatmaps(self, features, boxes: torch.Tensor) -> torch.Tensor | None:
        """Heatmap logits of the boxes, for a model with a keypoint head (else None)."""
        kp = self.cfg.keypoints
        if not kp.enabled:
            return None
        if boxes.shape[0] == 0:
            return no_heatmaps(kp, boxes.device)
        return self.model.keypoint_heatmaps(features, [boxes])

    @staticmethod
    def _keypoints(heatmaps: torch.Tensor | None, boxes: torch.Tensor) -> torch.Tensor | None:
        return None if heatmaps is None else heatmaps_to_keypoints(heatmaps, boxes)
