"""Image -> network input: colour order, shortest-edge resize, normalisation, padding.

As a torch tensor (``preprocess_image``: the eager model, training) or a numpy array
(``preprocess_image_numpy``: the graph backends, without PyTorch); the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from densepose_ros.inference.structures import Array, DensePoseChartOutput, DensePoseResult
from densepose_ros.modeling.config import InputConfig

if TYPE_CHECKING:
    import torch

COLOR_ORDERS = ("BGR", "RGB")


@dataclass
class PreparedImage:
    """One image ready for the network.

    Attributes:
        tensor: [1, 3, Hp, Wp] float32, normalised, zero-padded to the size divisibility
            (a torch tensor, or a numpy array from ``preprocess_image_numpy``).
        input_size: (height, width) of the unpadded network input (after any resize).
        source_size: (height, width) of the caller's image.
    """

    tensor: Array
    input_size: tuple[int, int]
    source_size: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Source pixels per input pixel along x and y (1.0 without resize)."""
        return (self.source_size[1] / self.input_size[1], self.source_size[0] / self.input_size[0])

    def result_in_source(self, boxes: Array, scores: Array, charts: DensePoseChartOutput,
                         keypoints: Array | None = None) -> DensePoseResult:
        """Detections in network-input pixels -> a result in source pixels (boxes and
        keypoints scaled, boxes clamped to the image), everything on the CPU."""
        sx, sy = self.scale_xy
        height, width = self.source_size
        if isinstance(boxes, np.ndarray):
            boxes = boxes.astype(np.float32) * np.array([sx, sy, sx, sy], np.float32)
            np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
            np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
            if keypoints is not None:
                keypoints = keypoints.astype(np.float32) * np.array([sx, sy, 1.0], np.float32)
            return DensePoseResult(boxes, scores.astype(np.float32), charts, self.source_size,
                                   keypoints=keypoints)
        import torch

        boxes = boxes.to("cpu", torch.float32) * torch.tensor([sx, sy, sx, sy])
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        if keypoints is not None:
            keypoints = keypoints.to("cpu", torch.float32) * torch.tensor([sx, sy, 1.0])
        return DensePoseResult(boxes, scores.to("cpu", torch.float32), charts.to("cpu"),
                               self.source_size, keypoints=keypoints)


def check_image(image: object) -> np.ndarray:
    """The image if it is an H x W x 3 uint8 array, else a TypeError/ValueError saying why."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H x W x 3 uint8), got {type(image)}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape H x W x 3, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image


def check_color_order(color_order: str) -> str:
    if color_order not in COLOR_ORDERS:
        raise ValueError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    return color_order


def resized_shape(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(height, width) with the shortest edge at `min_size`, the longest at most `max_size`."""
    scale = min_size / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def network_batch(images: list[np.ndarray], cfg: InputConfig, color_order: str = "BGR",
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 uint8 images (already at network size) -> [B, 3, Hp, Wp] float32 in the
    model's colour order, normalised with its mean/std and zero-padded at the bottom/right to
    its size divisibility. Inference and training both use this, so they cannot drift apart."""
    flip = check_color_order(color_order) != cfg.color_order
    div = cfg.size_divisibility
    padded_h = -(-max(image.shape[0] for image in images) // div) * div
    padded_w = -(-max(image.shape[1] for image in images) // div) * div
    import torch

    batch = torch.zeros((len(images), 3, padded_h, padded_w), device=device)
    mean = torch.tensor(cfg.pixel_mean, device=device).view(3, 1, 1)
    std = torch.tensor(cfg.pixel_std, device=device).view(3, 1, 1)
    for index, image in enumerate(images):
        pixels = np.ascontiguousarray(image[:, :, ::-1] if flip else image)
        tensor = torch.from_numpy(pixels).to(device).permute(2, 0, 1)
        batch[index, :, :image.shape[0], :image.shape[1]] = (tensor.float() - mean) / std
    return batch


def network_array(image: np.ndarray, cfg: InputConfig, color_order: str = "BGR") -> np.ndarray:
    """``network_batch`` of one image in numpy: [1, 3, Hp, Wp] float32 (the same numbers)."""
    flip = check_color_order(color_order) != cfg.color_order
    div = cfg.size_divisibility
    height, width = image.shape[:2]
    batch = np.zeros((1, 3, -(-height // div) * div, -(-width // div) * div), np.float32)
    pixels = (image[:, :, ::-1] if flip else image).transpose(2, 0, 1)
    mean = np.array(cfg.pixel_mean, np.float32)[:, None, None]
    std = np.array(cfg.pixel_std, np.float32)[:, None, None]
    np.divide(np.subtract(pixels, mean, dtype=np.float32), std,
              out=batch[0, :, :height, :width])
    return batch


def _resized(image: np.ndarray, cfg: InputConfig, color_order: str, resize: bool
             ) -> tuple[np.ndarray, tuple[int, int]]:
    image = check_image(image)
    check_color_order(color_order)
    source_size = (image.shape[0], image.shape[1])
    if resize:
        height, width = resized_shape(*source_size, cfg.min_size, cfg.max_size)
        if (height, width) != source_size:
            # INTER_AREA when shrinking: antialiased like the PIL resize detectron2 uses.
            shrinking = height < source_size[0]
            image = cv2.resize(np.ascontiguousarray(image), (width, height),
                               interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image, source_size


def preprocess_image(image: np.ndarray, cfg: InputConfig, color_order: str = "BGR",
                     resize: bool = True, device: torch.device | str = "cpu") -> PreparedImage:
    """Turn an H x W x 3 uint8 image into the network's input (see ``PreparedImage``)."""
    image, source_size = _resized(image, cfg, color_order, resize)
    tensor = network_batch([image], cfg, color_order, device)
    return PreparedImage(tensor, (image.shape[0], image.shape[1]), source_size)


def preprocess_image_numpy(image: np.ndarray, cfg: InputConfig, color_order: str = "BGR",
                           resize: bool = True) -> PreparedImage:
    """``preprocess_image`` with a numpy array as the network input (no torch)."""
    image, source_size = _resized(image, cfg, color_order, resize)
    return PreparedImage(network_array(image, cfg, color_order),
                         (image.shape[0], image.shape[1]), source_size)
